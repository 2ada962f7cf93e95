//! Validator key files: JSON `{"type":"ed25519","id":<hex pubkey>,"secret":<hex>}`,
//! written with mode 0600. A key file that the group or others may read (or
//! write) is refused (issue 14, H6), and the copies of the secret made while
//! reading or writing one are zeroed when dropped (the signing key itself
//! zeroes its bytes on drop, ed25519-dalek's `zeroize` feature).

use bizra_consensus::signing::Signer;
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    secret: String,
}

/// A new random validator key (`bizra keygen`), from `rand`'s thread-local
/// CSPRNG, which the OS seeds.
pub fn generate() -> Signer {
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    Signer::from_secret(secret)
}

/// Writes a key file with mode 0600. Refuses to overwrite an existing file.
pub fn write(path: &Path, signer: &Signer) -> anyhow::Result<()> {
    use std::io::Write;
    let secret = Zeroizing::new(signer.secret_bytes());
    let file = KeyFile {
        kind: "ed25519".into(),
        id: signer.id().to_string(),
        secret: hex::encode(*secret),
    };
    let body = Zeroizing::new(serde_json::to_string_pretty(&file)?);
    drop(Zeroizing::new(file.secret));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create key file {}: {e}", path.display()))?;
    f.write_all(body.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

/// Reads a key file. Refuses, naming the file: (on unix) a mode with any
/// permission bit for the group or others (the error says `chmod 600`), a
/// `type` other than `ed25519`, a `secret` that is not 64 hex digits, and an
/// `id` that is not the secret's public key.
pub fn read(path: &Path) -> anyhow::Result<Signer> {
    check_mode(path)?;
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?,
    );
    let k: KeyFile =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("key file {} is malformed: {e}", path.display()))?;
    let secret = Zeroizing::new(k.secret);
    if k.kind != "ed25519" {
        anyhow::bail!("key file {}: unsupported key type {:?}", path.display(), k.kind);
    }
    let decoded = Zeroizing::new(hex::decode(secret.as_str()).unwrap_or_default());
    let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
        decoded
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("key file {}: secret must be 64 hex digits", path.display()))?,
    );
    let s = Signer::from_secret(*bytes);
    if s.id() != k.id {
        anyhow::bail!("key file {}: id does not match the secret key", path.display());
    }
    Ok(s)
}

/// Refuses a key file the group or others may access: anyone who reads it
/// can sign as this validator (and get it slashed for equivocation).
#[cfg(unix)]
fn check_mode(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "key file {} has mode {mode:04o}: the group or others may read it; run `chmod 600 {}` (or 400)",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_roundtrip_mode_and_refusals() {
        let dir = std::env::temp_dir().join(format!("bizra-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k.json");
        let _ = std::fs::remove_file(&p);
        let s = generate();
        write(&p, &s).unwrap();
        assert_eq!(read(&p).unwrap().id(), s.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(write(&p, &s).is_err(), "must not overwrite");
        std::fs::write(&p, "{\"type\":\"ed25519\",\"id\":\"00\",\"secret\":\"zz\"}").unwrap();
        assert!(read(&p).unwrap_err().to_string().contains("64 hex"));
        // H6: readable by the group or others: refused, with the fix named.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let q = dir.join("open.json");
            write(&q, &s).unwrap();
            for mode in [0o644, 0o640, 0o604, 0o660] {
                std::fs::set_permissions(&q, std::fs::Permissions::from_mode(mode)).unwrap();
                let e = read(&q).unwrap_err().to_string();
                assert!(e.contains("chmod 600"), "{mode:o}: {e}");
            }
            std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o400)).unwrap();
            assert_eq!(read(&q).unwrap().id(), s.id());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
