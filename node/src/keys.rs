//! Validator key files: JSON `{"type":"ed25519","id":<hex pubkey>,"secret":<hex>}`,
//! written with mode 0600.

use bizra_consensus::signing::Signer;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    secret: String,
}

pub fn generate() -> Signer {
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    Signer::from_secret(secret)
}

/// Writes a key file with mode 0600. Refuses to overwrite an existing file.
pub fn write(path: &Path, signer: &Signer) -> anyhow::Result<()> {
    use std::io::Write;
    let body = serde_json::to_string_pretty(&KeyFile {
        kind: "ed25519".into(),
        id: signer.id().to_string(),
        secret: hex::encode(signer.secret_bytes()),
    })?;
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

pub fn read(path: &Path) -> anyhow::Result<Signer> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read key file {}: {e}", path.display()))?;
    let k: KeyFile =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("key file {} is malformed: {e}", path.display()))?;
    if k.kind != "ed25519" {
        anyhow::bail!("key file {}: unsupported key type {:?}", path.display(), k.kind);
    }
    let bytes: [u8; 32] = hex::decode(&k.secret)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("key file {}: secret must be 64 hex digits", path.display()))?;
    let s = Signer::from_secret(bytes);
    if s.id() != k.id {
        anyhow::bail!("key file {}: id does not match the secret key", path.display());
    }
    Ok(s)
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
