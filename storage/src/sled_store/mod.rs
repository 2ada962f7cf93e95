//! [`Store`] on sled 0.34. See the crate docs for the durability contract and
//! [`crate::layout`] for the on-disk layout.
//!
//! Here: opening, the writes and the [`Store`] implementation; `dir` checks
//! and initialises the data directory, `verify` cross-checks the records.

use crate::anchor::{self, Anchor, AnchorState, ANCHOR_FILE};
use crate::codec::{self, corrupt, seal, u64_key, unseal};
use crate::layout::{ATT_INDEX, BLOCKS, COMMITS, EPOCHS, GUARD, GUARD_KEY, HASH_INDEX, HEAD_KEY, META, STATE_KEY, WAL};
use crate::records::{self, Compaction};
use crate::{
    check_guard, collect_range, decide_put, decide_update, prepare_finalized, DataDirIdentity, PutAction, SignPosition,
    Store, StoreError, WalEntry,
};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

#[cfg(test)]
mod compact_tests;
mod dir;
#[cfg(test)]
mod tests;
mod verify;
use dir::{describe_mismatch, init_dir, inspect_dir, DirState};

/// The on-disk [`Store`] of one validator (sled 0.34).
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    blocks: sled::Tree,
    commits: sled::Tree,
    hash_index: sled::Tree,
    att_index: sled::Tree,
    wal: sled::Tree,
    guard: sled::Tree,
    epochs: sled::Tree,
    identity: DataDirIdentity,
    /// The validator set for compact block and commit records (ADR 0021):
    /// with it they are written compactly and either form is read; without
    /// it they are written in full and a compact one is reported corrupt.
    compaction: Option<Compaction>,
    path: PathBuf,
    /// Serialises the writers of finalized data (put_finalized, update_commit).
    chain_lock: Mutex<()>,
    /// Serialises guard read-check-write.
    guard_lock: Mutex<()>,
    /// Held while a WAL entry is inserted so that key order is append order.
    wal_cursor: Mutex<WalCursor>,
    /// Lower bounds of what was acknowledged as durable (see `anchor.rs`).
    anchor: Mutex<Anchor>,
}

struct WalCursor {
    /// Sequence number of the next entry.
    next: u64,
    /// (sequence, height) of the last entry inserted.
    last: Option<(u64, u64)>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every guarded value is only changed after the operation it describes
    // succeeded (or is `()`), so a lock poisoned by a panic is still sound.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn sled_err(what: &str, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::Io(format!("{what}: {io}")),
        sled::Error::Corruption { at, .. } => StoreError::Corrupt(match at {
            Some(at) => format!("{what}: sled detected corruption in its log at {at:?}"),
            None => format!("{what}: sled detected corruption in its log"),
        }),
        sled::Error::Unsupported(s) => StoreError::Backend(format!("{what}: unsupported: {s}")),
        sled::Error::ReportableBug(s) => StoreError::Backend(format!("{what}: sled bug: {s}")),
        sled::Error::CollectionNotFound(name) => StoreError::Backend(format!(
            "{what}: sled tree {:?} not found",
            String::from_utf8_lossy(&name)
        )),
    }
}

fn tx_err(what: &str, e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => sled_err(what, e),
    }
}

/// Runs `f`, turning a panic inside sled (which it does on some corrupt
/// inputs) into an error instead of taking the node down with it.
fn no_panic<T>(what: &str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(StoreError::Corrupt(format!(
                "{what}: the storage engine panicked ({msg}); the data directory is probably damaged"
            )))
        }
    }
}

/// sled's page cache ceiling (its default is 1 GiB): keeps a validator's RSS
/// small, e.g. under a 128 MiB container limit at alpha-100 scale.
pub const CACHE_BYTES: u64 = 32 << 20;

/// How long `open` waits for sled's directory lock. A `SledStore` that was
/// just dropped (in this process or one that just exited) releases the lock
/// only once sled's background threads have finished.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let what = format!("opening sled database {}", path.display());
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new().path(path).cache_capacity(cache_bytes).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Io(format!(
                        "{what}: {e} (waited {LOCK_WAIT:?}; is another process using this data directory?)"
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(sled_err(&what, e)),
        }
    }
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

impl SledStore {
    /// Open or create a data dir. A new dir records `identity`. An existing dir whose recorded chain_id / genesis_hash / validator differs -> StoreError::ForeignChain (say which field and both values). A dir that is not a sled db, or whose records fail to decode, or whose head/index is inconsistent (e.g. head height without a block, block hash not matching its height index) -> StoreError::Corrupt with a precise message. Never panic, never silently reset.
    ///
    /// A directory is initialised only if it does not exist or is empty (or
    /// holds only the leftovers of an initialisation that a crash
    /// interrupted); a non-empty directory without an [`IDENTITY_FILE`](crate::IDENTITY_FILE) —
    /// e.g. a stray sled `db` — is `Corrupt`. On open the head, its block,
    /// commit, indexes, parent link and state are cross-checked, the whole
    /// WAL and the guard are decoded, and the database must hold at least
    /// what the [`ANCHOR_FILE`] says was acknowledged;
    /// [`SledStore::verify_full`] checks every block.
    ///
    /// sled takes an exclusive lock on the directory: a second open while
    /// one is in use (by this or another process) is `StoreError::Io`.
    pub fn open(path: &Path, identity: &DataDirIdentity) -> Result<Self, StoreError> {
        Self::open_with_cache(path, identity, CACHE_BYTES)
    }

    /// [`SledStore::open`] with sled's page cache capped at `cache_bytes`
    /// instead of the default 32 MiB (the node's `storage.cache_mib`).
    pub fn open_with_cache(path: &Path, identity: &DataDirIdentity, cache_bytes: u64) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        no_panic(&format!("opening {shown}"), || {
            Self::open_inner(path, identity, cache_bytes, None)
        })
    }

    /// [`SledStore::open_with_cache`] for a node of the chain `compaction`
    /// describes: blocks and commits are written compactly, and records of
    /// either form are read (docs/adr/0021). The compaction's chain id must
    /// be the identity's.
    pub fn open_compact(
        path: &Path,
        identity: &DataDirIdentity,
        cache_bytes: u64,
        compaction: Compaction,
    ) -> Result<Self, StoreError> {
        if compaction.chain_id() != identity.chain_id {
            return Err(StoreError::Conflict(format!(
                "compaction for chain {:?} given to a store of chain {:?}",
                compaction.chain_id(),
                identity.chain_id
            )));
        }
        let shown = path.display().to_string();
        no_panic(&format!("opening {shown}"), || {
            Self::open_inner(path, identity, cache_bytes, Some(compaction))
        })
    }

    fn open_inner(
        path: &Path,
        identity: &DataDirIdentity,
        cache_bytes: u64,
        compaction: Option<Compaction>,
    ) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        match inspect_dir(path)? {
            DirState::Fresh => init_dir(path, identity)?,
            DirState::Initialized => {
                let found = anchor::read_identity(path)?;
                if let Some((expected, found)) = describe_mismatch(identity, &found) {
                    return Err(StoreError::ForeignChain { expected, found });
                }
            }
        }
        let db = open_sled(path, cache_bytes)?;
        let open_tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| sled_err(&format!("opening tree {name} in {shown}"), e))
        };
        // Read only once sled holds its exclusive lock on the directory.
        let anchor = Anchor::open(&path.join(ANCHOR_FILE))?;
        let anchored = anchor.state();
        let store = SledStore {
            meta: open_tree(META)?,
            blocks: open_tree(BLOCKS)?,
            commits: open_tree(COMMITS)?,
            hash_index: open_tree(HASH_INDEX)?,
            att_index: open_tree(ATT_INDEX)?,
            wal: open_tree(WAL)?,
            guard: open_tree(GUARD)?,
            epochs: open_tree(EPOCHS)?,
            db,
            identity: identity.clone(),
            compaction,
            path: path.to_path_buf(),
            chain_lock: Mutex::new(()),
            guard_lock: Mutex::new(()),
            wal_cursor: Mutex::new(WalCursor { next: 0, last: None }),
            anchor: Mutex::new(anchor),
        };
        store.check_identity(identity, &anchored)?;
        store.verify_head()?;
        let guard = store.guard_position()?;
        // Decode the whole WAL now so damage shows up at open, not mid-replay.
        let mut next = 0u64;
        for item in store.wal.iter() {
            let (k, v) = item.map_err(|e| sled_err("reading the WAL", e))?;
            codec::decode_wal(&k, unseal(WAL, &k, &v)?)?;
            next = codec::decode_u64_key(WAL, &k)?
                .checked_add(1)
                .ok_or_else(|| corrupt(WAL, &k, "sequence number at u64::MAX"))?;
        }
        store.check_anchor(&anchored)?;
        if let Some((seq, _)) = anchored.wal_synced {
            // Never reuse the sequence number of an acknowledged entry, even
            // if everything was pruned since.
            next = next.max(seq.saturating_add(1));
        }
        lock(&store.wal_cursor).next = next;
        // Tighten the anchor to what the database durably holds now.
        let head = store.head()?;
        lock(&store.anchor).update(|s| {
            if let Some((h, hash)) = head {
                s.raise_head(h, hash);
            }
            if let Some(g) = guard {
                s.raise_guard(g);
            }
        })?;
        Ok(store)
    }

    /// The database must hold at least what the anchor says was acknowledged.
    fn check_anchor(&self, a: &AnchorState) -> Result<(), StoreError> {
        let lost = |what: String| {
            StoreError::Corrupt(format!(
                "the database lost acknowledged writes: {what}. The sled log is damaged \
                 (sled stops reading its log at the first unreadable record); restore this \
                 data directory from a backup or re-sync it, and do not sign with it"
            ))
        };
        if let Some((height, hash)) = a.head {
            let head = self.head()?;
            if head.is_none_or(|(h, _)| h < height) {
                return Err(lost(format!(
                    "{ANCHOR_FILE} records block {height} ({}) as finalized, but the head is {}",
                    hex::encode(hash),
                    head.map_or_else(|| "empty".to_string(), |(h, _)| format!("at height {h}"))
                )));
            }
            let stored = self.block_hash(height)?;
            if stored != Some(hash) {
                return Err(lost(format!(
                    "{ANCHOR_FILE} records block {height} as {}, but the database holds {}",
                    hex::encode(hash),
                    stored.map_or_else(|| "nothing".to_string(), hex::encode)
                )));
            }
        }
        if let Some(g) = a.guard {
            let stored = self.guard_position()?;
            if stored.is_none_or(|s| s < g) {
                return Err(lost(format!(
                    "{ANCHOR_FILE} records that this validator signed at {g}, but the double-sign guard is at {}",
                    stored.map_or_else(|| "nothing".to_string(), |s| s.to_string())
                )));
            }
        }
        if let Some((seq, height)) = a.wal_synced {
            if height >= a.prune_floor {
                let key = u64_key(seq);
                let entry = self.read(&self.wal, WAL, &key, codec::wal_height)?;
                if entry != Some(height) {
                    return Err(lost(format!(
                        "{ANCHOR_FILE} records {} (height {height}) as synced, but the WAL holds {}",
                        codec::label(WAL, &key),
                        entry.map_or_else(|| "nothing there".to_string(), |h| format!("an entry for height {h}"))
                    )));
                }
            }
        }
        Ok(())
    }

    /// Flushes sled, then raises the anchor: `f` plus the last WAL entry
    /// inserted before the flush started.
    fn make_durable(&self, f: impl FnOnce(&mut AnchorState)) -> Result<(), StoreError> {
        let last_wal = lock(&self.wal_cursor).last;
        no_panic("flushing", || {
            self.db
                .flush()
                .map(|_| ())
                .map_err(|e| sled_err(&format!("flushing {}", self.path.display()), e))
        })?;
        lock(&self.anchor).update(|s| {
            if let Some((seq, height)) = last_wal {
                s.raise_wal(seq, height);
            }
            f(s);
        })
    }

    /// Inserts `entry` at the WAL's next sequence number, without flushing.
    fn wal_insert(&self, entry: &WalEntry) -> Result<(), StoreError> {
        self.wal_insert_record(entry.height, &codec::encode_wal(entry))
    }

    /// Inserts one encoded WAL record for `height` at the next sequence number.
    fn wal_insert_record(&self, height: u64, payload: &[u8]) -> Result<(), StoreError> {
        no_panic("appending to the WAL", || {
            let mut cursor = lock(&self.wal_cursor);
            let seq = cursor.next;
            let key = u64_key(seq);
            let bumped = seq
                .checked_add(1)
                .ok_or_else(|| StoreError::Backend("WAL sequence number exhausted".into()))?;
            self.wal
                .insert(key, seal(WAL, &key, payload))
                .map_err(|e| sled_err(&format!("writing {}", codec::label(WAL, &key)), e))?;
            cursor.next = bumped;
            cursor.last = Some((seq, height));
            Ok(())
        })
    }

    /// Checks and writes the sign guard position, without flushing.
    fn guard_insert(&self, pos: SignPosition) -> Result<(), StoreError> {
        no_panic("advancing the double-sign guard", || {
            let _g = lock(&self.guard_lock);
            check_guard(self.guard_position()?, pos)?;
            self.guard
                .insert(GUARD_KEY, seal(GUARD, GUARD_KEY, &codec::encode_guard(pos)))
                .map_err(|e| sled_err("writing the double-sign guard", e))?;
            Ok(())
        })
    }

    /// `put_finalized`, flushed (and the head anchored) only with `sync`.
    /// Stores consecutive finalized blocks in one sled transaction (each
    /// checked as `put_finalized` checks one), then `state` as the state
    /// after the last; flushed when `sync`.
    fn finalize(
        &self,
        items: &[(&bizra_proto::Block, &bizra_proto::CommitCertificate)],
        state: &[u8],
        sync: bool,
    ) -> Result<(), StoreError> {
        struct Row {
            height: u64,
            hash: [u8; 32],
            key: [u8; 8],
            parent: Vec<u8>,
            block: Vec<u8>,
            commit: Vec<u8>,
            index: Vec<u8>,
            atts: Vec<([u8; 32], Vec<u8>)>,
        }
        let mut rows = Vec::with_capacity(items.len());
        for (block, commit) in items {
            let p = prepare_finalized(block, commit, Some(&self.identity.chain_id))?;
            let key = u64_key(p.height);
            rows.push(Row {
                height: p.height,
                hash: p.hash,
                key,
                parent: block.header.as_ref().expect("checked by prepare").parent_hash.clone(),
                block: records::seal_block(self.compaction.as_ref(), &key, &p.hash, block),
                commit: records::seal_commit(self.compaction.as_ref(), &key, commit),
                index: seal(HASH_INDEX, &p.hash, &p.height.to_be_bytes()),
                atts: p
                    .attestations
                    .iter()
                    .map(|(id, i)| (*id, seal(ATT_INDEX, id, &codec::encode_att(p.height, *i))))
                    .collect(),
            });
        }
        let Some(last) = rows.last() else { return Ok(()) };
        let (last_height, last_hash) = (last.height, last.hash);
        let head_value = seal(META, HEAD_KEY, &codec::encode_head(last_height, &last_hash));
        let state_value = seal(META, STATE_KEY, &codec::encode_state(last_height, state));
        let what = if rows.len() == 1 {
            format!("finalizing block {last_height}")
        } else {
            format!("finalizing blocks {}..={last_height}", rows[0].height)
        };
        no_panic(&what, || {
            let _g = lock(&self.chain_lock);
            let trees = (
                &self.meta,
                &self.blocks,
                &self.commits,
                &self.hash_index,
                &self.att_index,
            );
            trees
                .transaction(|(meta, blocks, commits, hidx, aidx)| {
                    let mut head = match meta.get(HEAD_KEY)? {
                        None => None,
                        Some(raw) => match unseal(META, HEAD_KEY, &raw).and_then(|v| codec::decode_head(HEAD_KEY, v)) {
                            Ok(h) => Some(h),
                            Err(e) => return abort(e),
                        },
                    };
                    let mut appended = false;
                    for r in &rows {
                        let existing = match blocks.get(r.key)? {
                            None => None,
                            Some(raw) => match records::open_block_hash(&r.key, &raw) {
                                Ok(h) => Some(h),
                                Err(e) => return abort(e),
                            },
                        };
                        match decide_put(head, r.height, &r.hash, &r.parent, existing) {
                            Err(e) => return abort(e),
                            Ok(PutAction::AlreadyFinalized) => continue,
                            Ok(PutAction::Append) => {}
                        }
                        if hidx.get(r.hash)?.is_some() {
                            return abort(corrupt(
                                HASH_INDEX,
                                &r.hash,
                                format!("already present while block {} is being appended", r.height),
                            ));
                        }
                        blocks.insert(&r.key[..], r.block.as_slice())?;
                        commits.insert(&r.key[..], r.commit.as_slice())?;
                        hidx.insert(&r.hash[..], r.index.as_slice())?;
                        for (id, v) in &r.atts {
                            if aidx.get(id)?.is_none() {
                                aidx.insert(&id[..], v.as_slice())?;
                            }
                        }
                        head = Some((r.height, r.hash));
                        appended = true;
                    }
                    // The state belongs to the last block: written only if
                    // that one was appended (an all-idempotent re-put changes
                    // nothing).
                    if appended && head == Some((last_height, last_hash)) {
                        meta.insert(HEAD_KEY, head_value.as_slice())?;
                        meta.insert(STATE_KEY, state_value.as_slice())?;
                    } else if appended {
                        return abort(StoreError::Conflict(format!(
                            "block {last_height} was not appended after the blocks before it"
                        )));
                    }
                    Ok(())
                })
                .map_err(|e| tx_err(&what, e))
        })?;
        if !sync {
            return Ok(());
        }
        // Flush even for an idempotent re-put: a previous attempt may have
        // committed in memory and then failed to flush.
        self.make_durable(|a| a.raise_head(last_height, last_hash))
    }

    /// Where this store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity recorded in (and checked against) this data directory.
    pub fn identity(&self) -> &DataDirIdentity {
        &self.identity
    }

    fn trees(&self) -> [(&sled::Tree, &'static str); 7] {
        [
            (&self.meta, META),
            (&self.blocks, BLOCKS),
            (&self.commits, COMMITS),
            (&self.hash_index, HASH_INDEX),
            (&self.att_index, ATT_INDEX),
            (&self.wal, WAL),
            (&self.guard, GUARD),
        ]
    }

    /// Reads, unseals and decodes one value.
    fn read<T>(
        &self,
        tree: &sled::Tree,
        name: &str,
        key: &[u8],
        decode: impl FnOnce(&[u8], &[u8]) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.read_record(tree, name, key, |k, raw| decode(k, unseal(name, k, raw)?))
    }

    /// Reads one value and hands its sealed bytes to `decode` (block and
    /// commit records, which come in two forms, unseal themselves).
    fn read_record<T>(
        &self,
        tree: &sled::Tree,
        name: &str,
        key: &[u8],
        decode: impl FnOnce(&[u8], &[u8]) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let raw = tree
            .get(key)
            .map_err(|e| sled_err(&format!("reading {}", codec::label(name, key)), e))?;
        raw.map(|raw| decode(key, &raw)).transpose()
    }

    fn read_block(&self, height: u64) -> Result<Option<([u8; 32], bizra_proto::Block)>, StoreError> {
        self.read_record(&self.blocks, BLOCKS, &u64_key(height), |k, raw| {
            records::open_block(self.compaction.as_ref(), height, k, raw)
        })
    }

    /// The stored hash of block `height`, without decoding the block.
    fn read_block_hash(&self, height: u64) -> Result<Option<[u8; 32]>, StoreError> {
        self.read_record(&self.blocks, BLOCKS, &u64_key(height), records::open_block_hash)
    }

    fn last_key(&self, tree: &sled::Tree, name: &str) -> Result<Option<u64>, StoreError> {
        let last = tree.last().map_err(|e| sled_err(&format!("reading tree {name}"), e))?;
        last.map(|(k, _)| codec::decode_u64_key(name, &k)).transpose()
    }

    fn first_key_label(&self, tree: &sled::Tree, name: &str) -> Result<Option<String>, StoreError> {
        let first = tree.first().map_err(|e| sled_err(&format!("reading tree {name}"), e))?;
        Ok(first.map(|(k, _)| codec::label(name, &k)))
    }
}

impl Store for SledStore {
    fn put_finalized(
        &self,
        block: &bizra_proto::Block,
        commit: &bizra_proto::CommitCertificate,
        state: &[u8],
    ) -> Result<(), StoreError> {
        self.finalize(&[(block, commit)], state, true)
    }

    fn put_finalized_unsynced(
        &self,
        block: &bizra_proto::Block,
        commit: &bizra_proto::CommitCertificate,
        state: &[u8],
    ) -> Result<(), StoreError> {
        self.finalize(&[(block, commit)], state, false)
    }

    fn put_finalized_range(
        &self,
        blocks: &[(&bizra_proto::Block, &bizra_proto::CommitCertificate)],
        state: &[u8],
    ) -> Result<(), StoreError> {
        self.finalize(blocks, state, false)
    }

    fn update_commit(&self, commit: &bizra_proto::CommitCertificate) -> Result<(), StoreError> {
        self.update_commit_unsynced(commit)?;
        self.make_durable(|_| ())
    }

    fn update_commit_unsynced(&self, commit: &bizra_proto::CommitCertificate) -> Result<(), StoreError> {
        no_panic(&format!("updating commit {}", commit.height), || {
            let _g = lock(&self.chain_lock);
            let key = u64_key(commit.height);
            let stored_hash = self.read_block_hash(commit.height)?;
            let stored = self.commit(commit.height)?;
            if decide_update(commit, stored_hash, stored.as_ref())? {
                self.commits
                    .insert(key, records::seal_commit(self.compaction.as_ref(), &key, commit))
                    .map_err(|e| sled_err(&format!("writing {}", codec::label(COMMITS, &key)), e))?;
            }
            Ok(())
        })
    }

    fn head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        no_panic("reading the head", || {
            self.read(&self.meta, META, HEAD_KEY, codec::decode_head)
        })
    }

    fn block(&self, height: u64) -> Result<Option<bizra_proto::Block>, StoreError> {
        no_panic(&format!("reading block {height}"), || {
            Ok(self.read_block(height)?.map(|(_, b)| b))
        })
    }

    fn block_hash(&self, height: u64) -> Result<Option<[u8; 32]>, StoreError> {
        no_panic(&format!("reading block hash {height}"), || self.read_block_hash(height))
    }

    fn height_of(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        no_panic("reading the hash index", || {
            self.read(&self.hash_index, HASH_INDEX, hash, |k, p| {
                codec::decode_height(HASH_INDEX, k, p)
            })
        })
    }

    fn commit(&self, height: u64) -> Result<Option<bizra_proto::CommitCertificate>, StoreError> {
        no_panic(&format!("reading commit {height}"), || {
            self.read_record(&self.commits, COMMITS, &u64_key(height), |k, raw| {
                records::open_commit(self.compaction.as_ref(), height, k, raw)
            })
        })
    }

    fn blocks_range(
        &self,
        from: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<(bizra_proto::Block, bizra_proto::CommitCertificate)>, StoreError> {
        collect_range(from, max, max_bytes, |h| {
            let Some(block) = self.block(h)? else {
                return Ok(None);
            };
            let commit = self
                .commit(h)?
                .ok_or_else(|| corrupt(COMMITS, &u64_key(h), "missing for a finalized block"))?;
            Ok(Some((block, commit)))
        })
    }

    fn chain_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        no_panic("reading the chain state", || {
            self.read(&self.meta, META, STATE_KEY, |k, p| {
                codec::decode_state(k, p).map(|(_, s)| s.to_vec())
            })
        })
    }

    fn attestation_location(&self, id: &[u8; 32]) -> Result<Option<(u64, u32)>, StoreError> {
        no_panic("reading the attestation index", || {
            self.read(&self.att_index, ATT_INDEX, id, codec::decode_att)
        })
    }

    fn wal_append(&self, entry: &WalEntry, sync: bool) -> Result<(), StoreError> {
        self.wal_insert(entry)?;
        if sync {
            // make_durable anchors the last entry inserted before its flush,
            // which is this one or a later one.
            self.make_durable(|_| ())?;
        }
        Ok(())
    }

    fn persist_own(&self, pos: SignPosition, entry: &WalEntry) -> Result<(), StoreError> {
        self.guard_insert(pos)?;
        self.wal_insert(entry)?;
        // One flush makes both durable; the anchor then records the guard
        // position and the WAL entry together.
        self.make_durable(|a| a.raise_guard(pos))
    }

    fn wal_append_received(&self, height: u64, msgs: &[bizra_proto::ConsensusMessage]) -> Result<(), StoreError> {
        if msgs.is_empty() {
            return Ok(());
        }
        self.wal_insert_record(height, &codec::encode_wal_received(height, msgs))
    }

    fn wal_entries_from(&self, height: u64) -> Result<Vec<WalEntry>, StoreError> {
        no_panic("reading the WAL", || {
            let mut out = Vec::new();
            for item in self.wal.iter() {
                let (k, v) = item.map_err(|e| sled_err("reading the WAL", e))?;
                let payload = unseal(WAL, &k, &v)?;
                if codec::wal_height(&k, payload)? >= height {
                    out.extend(codec::decode_wal(&k, payload)?);
                }
            }
            Ok(out)
        })
    }

    fn wal_prune_below(&self, height: u64) -> Result<(), StoreError> {
        // Record the floor first, so that on open an anchored WAL entry below
        // it is known to be pruned rather than lost.
        lock(&self.anchor).update(|a| a.prune_floor = a.prune_floor.max(height))?;
        no_panic("pruning the WAL", || {
            let mut batch = sled::Batch::default();
            for item in self.wal.iter() {
                let (k, v) = item.map_err(|e| sled_err("reading the WAL", e))?;
                // Open checked every record in full; the height decides.
                if codec::wal_height(&k, unseal(WAL, &k, &v)?)? < height {
                    batch.remove(k);
                }
            }
            self.wal.apply_batch(batch).map_err(|e| sled_err("pruning the WAL", e))
        })
    }

    fn guard_advance(&self, pos: SignPosition) -> Result<(), StoreError> {
        self.guard_insert(pos)?;
        // Always flush, even for an equal position: the earlier write of it
        // may not have reached the disk if its flush failed.
        self.make_durable(|a| a.raise_guard(pos))
    }

    fn put_epoch_weights(&self, epoch: u64, weights: &[u8]) -> Result<(), StoreError> {
        let key = codec::u64_key(epoch);
        no_panic("writing epoch weights", || {
            self.epochs
                .insert(key, seal(EPOCHS, &key, weights))
                .map(|_| ())
                .map_err(|e| sled_err(&format!("writing {}", codec::label(EPOCHS, &key)), e))
        })
    }

    fn epoch_weights(&self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError> {
        no_panic("reading epoch weights", || {
            self.read(&self.epochs, EPOCHS, &codec::u64_key(epoch), |_, p| Ok(p.to_vec()))
        })
    }

    fn guard_position(&self) -> Result<Option<SignPosition>, StoreError> {
        no_panic("reading the double-sign guard", || {
            self.read(&self.guard, GUARD, GUARD_KEY, codec::decode_guard)
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // The head read before the flush is durable after it: anchor it, so
        // that blocks written by put_finalized_unsynced are covered too.
        let head = self.head()?;
        self.make_durable(|a| {
            if let Some((height, hash)) = head {
                a.raise_head(height, hash);
            }
        })
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: sled also flushes when its last handle goes away.
        let _ = catch_unwind(AssertUnwindSafe(|| self.db.flush()));
    }
}
