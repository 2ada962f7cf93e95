//! The identity file and the anchor file: small files next to the sled
//! database that sled cannot silently lose.
//!
//! sled 0.34 treats the first unreadable record of its log as the end of the
//! log (that is how it recovers from a torn write), so bit rot in the middle
//! of the log makes it open *successfully* with everything after that point
//! gone, and a garbage `db` file opens as an empty database. Checksummed
//! values cannot detect data that is simply not there. The anchor records,
//! after each flush, lower bounds of what has been acknowledged as durable:
//! the head, the double-sign guard and the last synced WAL entry. On open the
//! database must reach at least those, else [`StoreError::Corrupt`].
//!
//! The anchor file holds two fixed-size checksummed slots written
//! alternately, so a torn write of one slot leaves the other (an older, still
//! valid lower bound).

use crate::codec::{self, TAG_LEN};
use crate::{DataDirIdentity, SignPosition, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the identity file inside a data directory.
pub const IDENTITY_FILE: &str = "bizra-identity";
/// Name of the anchor file inside a data directory.
pub const ANCHOR_FILE: &str = "bizra-anchor";
pub(crate) const IDENTITY_TMP: &str = "bizra-identity.tmp";

const IDENTITY_MAGIC: &[u8] = b"bizra-storage identity v1\n";
const ANCHOR_MAGIC: &[u8; 8] = b"BZANCHR1";
const SLOT: usize = 128;
const BODY: usize = 95;
const TAG_CONTEXT: &str = "bizra-storage 2024 anchor slot v1";

/// Lower bounds of what was acknowledged as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AnchorState {
    pub head: Option<(u64, [u8; 32])>,
    pub guard: Option<SignPosition>,
    /// (sequence, height) of the last WAL entry known to be flushed.
    pub wal_synced: Option<(u64, u64)>,
    /// Largest height passed to `wal_prune_below`, recorded before pruning.
    pub prune_floor: u64,
}

impl AnchorState {
    pub fn is_empty(&self) -> bool {
        *self == AnchorState::default()
    }

    pub fn raise_head(&mut self, height: u64, hash: [u8; 32]) {
        if self.head.is_none_or(|(h, _)| height > h) {
            self.head = Some((height, hash));
        }
    }

    pub fn raise_guard(&mut self, pos: SignPosition) {
        if self.guard.is_none_or(|g| pos > g) {
            self.guard = Some(pos);
        }
    }

    pub fn raise_wal(&mut self, seq: u64, height: u64) {
        if self.wal_synced.is_none_or(|(s, _)| seq > s) {
            self.wal_synced = Some((seq, height));
        }
    }
}

fn io(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

fn slot_tag(body: &[u8]) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_derive_key(TAG_CONTEXT);
    h.update(body);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
    out
}

fn encode_slot(seq: u64, s: &AnchorState) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0..8].copy_from_slice(ANCHOR_MAGIC);
    b[8..16].copy_from_slice(&seq.to_be_bytes());
    if let Some((h, hash)) = s.head {
        b[16..24].copy_from_slice(&h.to_be_bytes());
        b[24..56].copy_from_slice(&hash);
    }
    if let Some(g) = s.guard {
        b[56] = 1;
        b[57..70].copy_from_slice(&codec::encode_guard(g));
    }
    if let Some((seq, h)) = s.wal_synced {
        b[70] = 1;
        b[71..79].copy_from_slice(&seq.to_be_bytes());
        b[79..87].copy_from_slice(&h.to_be_bytes());
    }
    b[87..95].copy_from_slice(&s.prune_floor.to_be_bytes());
    let tag = slot_tag(&b[..BODY]);
    b[BODY..BODY + TAG_LEN].copy_from_slice(&tag);
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `None` if the slot fails its checksum (torn or rotten).
fn decode_slot(b: &[u8]) -> Option<(u64, AnchorState)> {
    if b.len() != SLOT || &b[0..8] != ANCHOR_MAGIC || b[BODY..BODY + TAG_LEN] != slot_tag(&b[..BODY]) {
        return None;
    }
    let head_height = u64_at(b, 16);
    let head = (head_height > 0).then(|| (head_height, b[24..56].try_into().expect("32 bytes")));
    let guard = match b[56] {
        0 => None,
        1 => Some(codec::decode_guard(b"anchor", &b[57..70]).ok()?),
        _ => return None,
    };
    let wal_synced = match b[70] {
        0 => None,
        1 => Some((u64_at(b, 71), u64_at(b, 79))),
        _ => return None,
    };
    Some((
        u64_at(b, 8),
        AnchorState {
            head,
            guard,
            wal_synced,
            prune_floor: u64_at(b, 87),
        },
    ))
}

/// The open anchor file and its current state.
pub(crate) struct Anchor {
    file: File,
    path: PathBuf,
    seq: u64,
    state: AnchorState,
}

impl Anchor {
    /// Creates (or truncates) the anchor file with an empty state, durably.
    pub fn create(path: &Path) -> Result<(), StoreError> {
        let mut f = File::create(path).map_err(|e| io(path, "cannot create", e))?;
        let empty = AnchorState::default();
        let mut both = Vec::with_capacity(2 * SLOT);
        both.extend_from_slice(&encode_slot(0, &empty));
        both.extend_from_slice(&encode_slot(0, &empty));
        f.write_all(&both)
            .and_then(|()| f.sync_all())
            .map_err(|e| io(path, "cannot write", e))
    }

    /// Reads the anchor file: the valid slot with the highest sequence.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::Corrupt(format!(
                    "{} is missing: it records what this data directory acknowledged as durable \
                         and must not be deleted",
                    path.display()
                ))
            } else {
                io(path, "cannot open", e)
            }
        })?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(|e| io(path, "cannot read", e))?;
        if buf.len() != 2 * SLOT {
            return Err(StoreError::Corrupt(format!(
                "{}: has {} bytes, expected {}",
                path.display(),
                buf.len(),
                2 * SLOT
            )));
        }
        let best = [decode_slot(&buf[..SLOT]), decode_slot(&buf[SLOT..])]
            .into_iter()
            .flatten()
            .max_by_key(|(seq, _)| *seq);
        let Some((seq, state)) = best else {
            return Err(StoreError::Corrupt(format!(
                "{}: both copies fail their checksum",
                path.display()
            )));
        };
        Ok(Anchor {
            file,
            path: path.to_path_buf(),
            seq,
            state,
        })
    }

    pub fn state(&self) -> AnchorState {
        self.state
    }

    /// Applies `f`; if the state changed, writes it durably to the older slot.
    pub fn update(&mut self, f: impl FnOnce(&mut AnchorState)) -> Result<(), StoreError> {
        let mut next = self.state;
        f(&mut next);
        if next == self.state {
            return Ok(());
        }
        let seq = self.seq + 1;
        let offset = (seq % 2) * SLOT as u64;
        let bytes = encode_slot(seq, &next);
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(&bytes))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io(&self.path, "cannot update", e))?;
        self.seq = seq;
        self.state = next;
        Ok(())
    }
}

/// Writes the identity file atomically (temp file, fsync, rename, fsync dir).
pub(crate) fn write_identity(dir: &Path, id: &DataDirIdentity) -> Result<(), StoreError> {
    let tmp = dir.join(IDENTITY_TMP);
    let dst = dir.join(IDENTITY_FILE);
    let mut bytes = IDENTITY_MAGIC.to_vec();
    bytes.extend_from_slice(&codec::seal(IDENTITY_FILE, b"", &codec::encode_identity(id)));
    let mut f = File::create(&tmp).map_err(|e| io(&tmp, "cannot create", e))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&tmp, "cannot write", e))?;
    drop(f);
    std::fs::rename(&tmp, &dst).map_err(|e| io(&dst, "cannot rename into place", e))?;
    sync_dir(dir)
}

pub(crate) fn read_identity(dir: &Path) -> Result<DataDirIdentity, StoreError> {
    let path = dir.join(IDENTITY_FILE);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, "cannot read", e))?;
    let Some(sealed) = bytes.strip_prefix(IDENTITY_MAGIC) else {
        return Err(StoreError::Corrupt(format!(
            "{}: not a bizra-storage identity file (bad header)",
            path.display()
        )));
    };
    let payload = codec::unseal(IDENTITY_FILE, b"", sealed)?;
    codec::decode_identity(b"", payload)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, "cannot fsync directory", e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_roundtrip_and_survive_a_torn_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(ANCHOR_FILE);
        Anchor::create(&p).unwrap();
        let mut a = Anchor::open(&p).unwrap();
        assert!(a.state().is_empty());
        a.update(|s| s.raise_head(3, [3; 32])).unwrap();
        a.update(|s| {
            s.raise_guard(SignPosition {
                height: 4,
                round: 1,
                step: bizra_consensus::types::SignStep::Precommit,
            })
        })
        .unwrap();
        a.update(|s| s.raise_wal(9, 4)).unwrap();
        a.update(|s| s.raise_head(2, [2; 32])).unwrap(); // lower: ignored
        let want = a.state();
        assert_eq!(want.head, Some((3, [3; 32])));
        assert_eq!(want.wal_synced, Some((9, 4)));
        drop(a);
        assert_eq!(Anchor::open(&p).unwrap().state(), want);

        // Tear the newest slot: the previous state is returned.
        let mut bytes = std::fs::read(&p).unwrap();
        let newest = if decode_slot(&bytes[..SLOT]).unwrap().0 > decode_slot(&bytes[SLOT..]).unwrap().0 {
            0
        } else {
            SLOT
        };
        bytes[newest + 20] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let older = Anchor::open(&p).unwrap().state();
        assert_eq!(older.wal_synced, None);
        assert_eq!(older.head, Some((3, [3; 32])));

        // Both torn: Corrupt.
        let other = SLOT - newest;
        bytes[other + 20] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(Anchor::open(&p), Err(StoreError::Corrupt(_))));
        std::fs::write(&p, &bytes[..10]).unwrap();
        assert!(matches!(Anchor::open(&p), Err(StoreError::Corrupt(_))));
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(Anchor::open(&p), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn identity_file_roundtrip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let id = DataDirIdentity {
            chain_id: "c\nwith newline".into(),
            genesis_hash: [9; 32],
            validator: "v".into(),
        };
        write_identity(dir.path(), &id).unwrap();
        assert_eq!(read_identity(dir.path()).unwrap(), id);
        assert!(!dir.path().join(IDENTITY_TMP).exists());
        let p = dir.path().join(IDENTITY_FILE);
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        b[n - 1] ^= 0x40;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(read_identity(dir.path()), Err(StoreError::Corrupt(_))));
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(read_identity(dir.path()), Err(StoreError::Corrupt(_))));
    }
}
