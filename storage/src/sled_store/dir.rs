//! The data directory around the sled database: what a directory holds
//! before it is opened (fresh, a bizra data directory, or something else
//! that is refused), its initialisation, and the check of the recorded
//! identity against the expected one.

use super::{sled_err, SledStore};
use crate::anchor::{self, Anchor, AnchorState, ANCHOR_FILE, IDENTITY_FILE, IDENTITY_TMP};
use crate::codec::{self, corrupt, seal};
use crate::layout::{FORMAT_KEY, FORMAT_V1_FULL_RECORDS, FORMAT_VERSION, IDENTITY_KEY, META};
use crate::{DataDirIdentity, StoreError};
use std::path::Path;

pub(super) enum DirState {
    /// Absent or empty (or the leftovers of an interrupted initialisation).
    Fresh,
    /// Has an identity file.
    Initialized,
}

/// Classifies `path`, refusing anything that is not a bizra data directory.
pub(super) fn inspect_dir(path: &Path) -> Result<DirState, StoreError> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirState::Fresh),
        Err(e) => return Err(StoreError::Io(format!("cannot inspect {shown}: {e}"))),
        Ok(m) if !m.is_dir() => {
            return Err(StoreError::Corrupt(format!(
                "{shown} is not a data directory: it exists and is not a directory"
            )))
        }
        Ok(_) => {}
    }
    let mut names = Vec::new();
    let entries = std::fs::read_dir(path).map_err(|e| StoreError::Io(format!("cannot list {shown}: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::Io(format!("cannot list {shown}: {e}")))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    if names.iter().any(|n| n == IDENTITY_FILE) {
        return Ok(DirState::Initialized);
    }
    let mut unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != ANCHOR_FILE && *n != IDENTITY_TMP)
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let sled_hint = if unknown.contains(&"db") {
            " (a sled `db` file without a bizra identity is not a bizra data directory)"
        } else {
            ""
        };
        return Err(StoreError::Corrupt(format!(
            "{shown} is not a bizra data directory: it has no {IDENTITY_FILE} file but contains {}{sled_hint}; \
             refusing to initialise over unknown files",
            unknown.join(", ")
        )));
    }
    if names.iter().any(|n| n == ANCHOR_FILE) {
        if let Ok(a) = Anchor::open(&path.join(ANCHOR_FILE)) {
            if !a.state().is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "{shown}: {IDENTITY_FILE} is missing but {ANCHOR_FILE} records acknowledged writes; \
                     refusing to re-initialise"
                )));
            }
        }
    }
    // Empty, or the leftovers of an initialisation that never completed.
    Ok(DirState::Fresh)
}

/// Creates the files that make `path` a bizra data directory. The identity
/// file is written last: its presence means initialisation completed.
pub(super) fn init_dir(path: &Path, identity: &DataDirIdentity) -> Result<(), StoreError> {
    let shown = path.display();
    let existed = path.exists();
    std::fs::create_dir_all(path).map_err(|e| StoreError::Io(format!("cannot create {shown}: {e}")))?;
    if !existed {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            anchor::sync_dir(parent)?;
        }
    }
    Anchor::create(&path.join(ANCHOR_FILE))?;
    anchor::write_identity(path, identity)
}

pub(super) fn describe_mismatch(expected: &DataDirIdentity, found: &DataDirIdentity) -> Option<(String, String)> {
    let mut exp = Vec::new();
    let mut fnd = Vec::new();
    if expected.chain_id != found.chain_id {
        exp.push(format!("chain_id {:?}", expected.chain_id));
        fnd.push(format!("chain_id {:?}", found.chain_id));
    }
    if expected.genesis_hash != found.genesis_hash {
        exp.push(format!("genesis_hash {}", hex::encode(expected.genesis_hash)));
        fnd.push(format!("genesis_hash {}", hex::encode(found.genesis_hash)));
    }
    if expected.validator != found.validator {
        exp.push(format!("validator {:?}", expected.validator));
        fnd.push(format!("validator {:?}", found.validator));
    }
    if exp.is_empty() {
        None
    } else {
        Some((exp.join(", "), fnd.join(", ")))
    }
}

impl SledStore {
    pub(super) fn check_identity(&self, identity: &DataDirIdentity, anchored: &AnchorState) -> Result<(), StoreError> {
        match self.read(&self.meta, META, IDENTITY_KEY, codec::decode_identity)? {
            Some(found) => {
                if let Some((expected, found)) = describe_mismatch(identity, &found) {
                    return Err(corrupt(
                        META,
                        IDENTITY_KEY,
                        format!("records {found} but {IDENTITY_FILE} records {expected}"),
                    ));
                }
                match self.read(&self.meta, META, FORMAT_KEY, codec::decode_format)? {
                    Some(FORMAT_VERSION) => Ok(()),
                    // Version 1 holds full records only. A store that will
                    // write compact ones records version 2 first, durably, so
                    // a build that reads only version 1 refuses the
                    // directory instead of failing on a record later.
                    Some(FORMAT_V1_FULL_RECORDS) if self.compaction.is_none() => Ok(()),
                    Some(FORMAT_V1_FULL_RECORDS) => {
                        self.meta
                            .insert(FORMAT_KEY, seal(META, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes()))
                            .map_err(|e| sled_err("recording the storage format version", e))?;
                        self.make_durable(|_| ())
                    }
                    Some(v) => Err(corrupt(
                        META,
                        FORMAT_KEY,
                        format!(
                            "storage format version {v} is not supported by this build (it reads versions \
                             {FORMAT_V1_FULL_RECORDS} and {FORMAT_VERSION})"
                        ),
                    )),
                    None => Err(corrupt(META, FORMAT_KEY, "missing although the identity is recorded")),
                }
            }
            None => {
                // Only a database without any data may be initialised.
                for (tree, name) in self.trees() {
                    let first = tree.first().map_err(|e| sled_err(&format!("reading tree {name}"), e))?;
                    if let Some((k, _)) = first {
                        return Err(corrupt(
                            META,
                            IDENTITY_KEY,
                            format!(
                                "missing, but the data directory holds data ({}); refusing to re-initialise it",
                                codec::label(name, &k)
                            ),
                        ));
                    }
                }
                if !anchored.is_empty() {
                    return Err(corrupt(
                        META,
                        IDENTITY_KEY,
                        format!(
                            "missing: the sled database holds no data at all, although {ANCHOR_FILE} \
                             records acknowledged writes ({anchored:?}); the database file was lost or damaged"
                        ),
                    ));
                }
                let mut batch = sled::Batch::default();
                batch.insert(
                    IDENTITY_KEY,
                    seal(META, IDENTITY_KEY, &codec::encode_identity(identity)),
                );
                batch.insert(FORMAT_KEY, seal(META, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes()));
                self.meta
                    .apply_batch(batch)
                    .map_err(|e| sled_err("recording the data directory identity", e))?;
                self.make_durable(|_| ())
            }
        }
    }
}
