//! Durable state of one bizra validator: finalized blocks with their commit
//! certificates, the opaque chain-state blob of the head, the consensus
//! write-ahead log (WAL), the double-sign guard and an attestation index.
//!
//! Two implementations of [`Store`]: [`SledStore`] (on disk, sled 0.34) and
//! [`MemStore`] (in memory, for simulation and benches, same semantics).
//!
//! # Durability guarantees of [`SledStore`]
//!
//! "Durable" means: the data was written to sled's log and `fsync`ed
//! (`sled::Db::flush`), and then the anchor file (below) was raised and
//! `fdatasync`ed, before the call returned `Ok`. sled recovers its log as a
//! prefix, so everything flushed survives `kill -9` (and, given an honest
//! disk, power loss), and everything written before a flushed write survives
//! with it. `tests/crash.rs` checks this by SIGKILLing a writer at random
//! instants.
//!
//! | call | atomic | flushed before `Ok` |
//! |------|--------|---------------------|
//! | [`Store::put_finalized`] | yes: block, commit, hash index, attestation index, head and state in one sled transaction | yes |
//! | [`Store::put_finalized_range`] | yes: every block of the range as above, one head and state, in one sled transaction | no: durable at the next flush |
//! | [`Store::update_commit`] | yes (one key) | yes |
//! | [`Store::guard_advance`] | yes (one key) | **always** |
//! | [`Store::wal_append`] with `sync = true` | yes (one key) | yes |
//! | [`Store::wal_append`] with `sync = false` | yes (one key) | no: durable at the next flush of any kind, or by sled's background flusher (every 500 ms) |
//! | [`Store::wal_prune_below`] | yes (one batch) | no (only the prune floor in the anchor is): losing a prune only replays entries the caller filters by height anyway |
//! | [`Store::flush`] | — | yes, everything written before it |
//!
//! A crash therefore leaves either all of a finalized block or none of it; the
//! WAL as a prefix of what was appended that contains every synced entry; and
//! a guard position at least as high as the last one acknowledged.
//!
//! # Why the guard is flushed before a signature leaves the node
//!
//! A validator that signs two different votes for the same (height, round,
//! step) equivocates and can be slashed. The guard is the only thing that
//! remembers, across a crash, what this node has already signed. If a vote
//! were broadcast first and the guard written afterwards, a `kill -9` between
//! the two would restart the node with an older guard; consensus would then
//! happily sign a *different* vote at the same position, and both signatures
//! are out in the network. So the order is: `guard_advance(pos)` (flushed),
//! then sign, then `wal_append(own, sync = true)`, then broadcast. A crash
//! after the guard but before the broadcast only costs a missed vote, never a
//! double sign. `guard_advance` refuses to go backwards, and accepts an equal
//! position so that an identical message can be re-signed after a restart
//! (replayed from the WAL).
//!
//! # Never silently reset, never silently roll back
//!
//! A data directory holds sled's files plus two small files of ours:
//!
//! * [`IDENTITY_FILE`] — chain id, genesis hash and validator, written once
//!   (temp file, fsync, rename, fsync dir) when the directory is created. Its
//!   presence is what makes a directory a bizra data directory.
//! * [`ANCHOR_FILE`] — after each flush, lower bounds of what was acknowledged
//!   as durable: head (height, hash), guard position, last synced WAL entry
//!   (and the WAL prune floor). Two checksummed slots written alternately.
//!
//! The anchor exists because sled 0.34 treats the first unreadable record of
//! its log as the end of the log (its torn-write recovery): bit rot in the
//! middle of the log makes sled open *successfully* without everything that
//! followed, and a garbage `db` file opens as an empty database. Per-value
//! checksums cannot notice data that is simply absent; the anchor can. For a
//! validator a silently older guard is how double signs happen.
//!
//! [`SledStore::open`] therefore refuses:
//! * a directory recorded for another chain, genesis or validator
//!   ([`StoreError::ForeignChain`], naming the differing fields);
//! * a non-empty directory without an identity file (e.g. a stray sled
//!   `db`), a damaged identity or anchor file, a database that decodes
//!   wrongly or is inconsistent (head without its block, commit, hash index
//!   entry or state; block above the head; broken parent link), or one that
//!   holds less than the anchor says was acknowledged ([`StoreError::Corrupt`]).
//!
//! It only initialises a directory that is absent or empty (or holds nothing
//! but the leftovers of an initialisation that never completed). Every stored
//! value carries a BLAKE3 tag bound to its tree and key, so bit rot that sled
//! does not catch surfaces as `Corrupt("blocks/00000012: ...")` instead of
//! garbage. Nothing is ever repaired or reset automatically.

#![warn(missing_docs)]

mod anchor;
mod codec;
mod mem;
mod records;
mod sled_store;

pub use anchor::{ANCHOR_FILE, IDENTITY_FILE};
pub use mem::MemStore;
pub use records::Compaction;
pub use sled_store::{SledStore, CACHE_BYTES as DEFAULT_CACHE_BYTES};

pub use bizra_consensus::types::SignStep;
use prost::Message;

/// Names of the sled trees and of the keys in the `meta` tree: the on-disk
/// layout of a data directory.
pub mod layout {
    /// Identity, format version, head and chain state.
    pub const META: &str = "meta";
    /// height (u64 BE) -> block hash ++ encoded `Block`.
    pub const BLOCKS: &str = "blocks";
    /// height (u64 BE) -> encoded `CommitCertificate`.
    pub const COMMITS: &str = "commits";
    /// block hash -> height (u64 BE).
    pub const HASH_INDEX: &str = "hash_index";
    /// BLAKE3(envelope payload) -> height (u64 BE) ++ index in block (u32 BE).
    pub const ATT_INDEX: &str = "att_index";
    /// sequence (u64 BE) -> height (u64 BE) ++ kind (u8) ++ encoded
    /// `ConsensusMessage` (kind 0 own, 1 received); or, kind 2, several
    /// received messages of that height, each as length (u32 BE) ++ encoded
    /// `ConsensusMessage` (written since session 11; a build before it reads
    /// kind 2 as an unknown kind and refuses to open the directory).
    pub const WAL: &str = "wal";
    /// [`GUARD_KEY`] -> height (u64 BE) ++ round (u32 BE) ++ step (u8).
    pub const GUARD: &str = "guard";
    /// epoch (u64 BE) -> that epoch's weights as the node encodes them
    /// (opaque here; derived from the chain, so a lost entry is recomputed
    /// at the next start). Written since session 14; older builds ignore it.
    pub const EPOCHS: &str = "epochs";

    /// `meta` key of the [`DataDirIdentity`](crate::DataDirIdentity).
    pub const IDENTITY_KEY: &[u8] = b"identity";
    /// `meta` key of the storage format version (u32 BE).
    pub const FORMAT_KEY: &[u8] = b"format";
    /// `meta` key of the head: height (u64 BE) ++ hash.
    pub const HEAD_KEY: &[u8] = b"head";
    /// `meta` key of the chain state of the head: height (u64 BE) ++ blob.
    pub const STATE_KEY: &[u8] = b"state";
    /// `guard` key of the last signed position.
    pub const GUARD_KEY: &[u8] = b"position";

    /// Version of this layout, recorded under [`FORMAT_KEY`]: blocks and
    /// commits may be stored compactly (docs/adr/0021). New directories get
    /// it; a version-1 directory is raised to it when a store that writes
    /// compact records opens it.
    pub const FORMAT_VERSION: u32 = 2;
    /// The layout before compact records: every block and commit in full.
    /// Still read, and kept by a store that writes full records.
    pub const FORMAT_V1_FULL_RECORDS: u32 = 1;
}

/// Errors of the storage layer. Messages are meant for operators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Stored data cannot be read back or is inconsistent. Names the record
    /// (`tree/key`) and what is wrong. Never repaired automatically.
    #[error("storage is corrupt: {0}")]
    Corrupt(String),
    /// The data directory was created for another chain, genesis or validator.
    /// `expected` is what the caller asked for, `found` what the directory
    /// records; both name the differing field(s).
    #[error("data directory belongs to another chain or validator: expected {expected}, found {found}")]
    ForeignChain {
        /// The differing field(s) as the caller asked for them.
        expected: String,
        /// The differing field(s) as the directory records them.
        found: String,
    },
    /// The operating system refused an operation (permissions, disk full,
    /// lock held by another process, ...).
    #[error("storage I/O error: {0}")]
    Io(String),
    /// The write contradicts what is stored: out-of-order height, a different
    /// block at a finalized height, or a double-sign guard moving backwards.
    #[error("storage conflict: {0}")]
    Conflict(String),
    /// The caller passed something malformed (block without header, commit
    /// certificate for another block, unknown step, wrong chain id, ...).
    #[error("invalid argument to storage: {0}")]
    Invalid(String),
    /// sled reported an internal error that is neither I/O nor corruption.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// Who a data directory belongs to. Recorded when the directory is created
/// and checked on every open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirIdentity {
    /// Chain id from the genesis file.
    pub chain_id: String,
    /// Hash of the genesis (32 bytes).
    pub genesis_hash: [u8; 32],
    /// Id of the validator whose node owns the directory (its signer id).
    pub validator: String,
}

/// Whether a WAL entry was produced by this validator or received from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalKind {
    /// Signed by this validator (appended before it is broadcast).
    Own,
    /// Received from a peer.
    Received,
}

/// One consensus message in the write-ahead log.
#[derive(Debug, Clone, PartialEq)]
pub struct WalEntry {
    /// Consensus height the message belongs to (used to replay and prune).
    pub height: u64,
    /// Whether this validator produced the message or received it.
    pub kind: WalKind,
    /// The message itself.
    pub msg: bizra_proto::ConsensusMessage,
}

/// The byte on disk of [`SignStep::Proposal`] in a stored [`SignPosition`].
pub const STEP_PROPOSAL: u8 = SignStep::Proposal as u8;
/// The byte on disk of [`SignStep::Prevote`].
pub const STEP_PREVOTE: u8 = SignStep::Prevote as u8;
/// The byte on disk of [`SignStep::Precommit`].
pub const STEP_PRECOMMIT: u8 = SignStep::Precommit as u8;

/// Last thing this validator signed: the double-sign guard, ordered by
/// (height, round, step). The consensus core's type; on disk the step is the
/// byte [`STEP_PROPOSAL`], [`STEP_PREVOTE`] or [`STEP_PRECOMMIT`] (a store
/// may hold an unknown one; decoding rejects it as corrupt).
pub use bizra_consensus::types::SignPosition;

/// The durable state of one validator. See the crate docs for durability.
pub trait Store: Send + Sync + 'static {
    /// Atomically store block+commit at header.height, index hash->height, index each attestation id (BLAKE3 of the envelope payload, 32 bytes) -> (height, index), set head, and store `state` (opaque bytes) — all in ONE sled transaction/batch, then flush. Heights must be appended in order: height == head+1 (or 1 when empty), else StoreError::Conflict. Re-putting the same height with the same block hash is idempotent Ok; a different hash at an existing height is Conflict (never overwrite finalized data).
    ///
    /// Also: a block above height 1 must have `parent_hash` == the head hash
    /// (else `Conflict`); the commit must be for this block's height and hash
    /// (else `Invalid`). An idempotent re-put changes nothing (neither commit
    /// nor state; use [`Store::update_commit`] for a larger certificate).
    /// An attestation id already indexed keeps its first location.
    fn put_finalized(
        &self,
        block: &bizra_proto::Block,
        commit: &bizra_proto::CommitCertificate,
        state: &[u8],
    ) -> Result<(), StoreError>;
    /// [`Store::put_finalized`] without waiting for the disk: the block is
    /// visible at once and durable after the next [`Store::flush`] (or any
    /// other synced write). For blocks fetched by sync, which a crash would
    /// only make the node fetch again; never for a block this node voted to
    /// finalize.
    fn put_finalized_unsynced(
        &self,
        block: &bizra_proto::Block,
        commit: &bizra_proto::CommitCertificate,
        state: &[u8],
    ) -> Result<(), StoreError> {
        self.put_finalized(block, commit, state)
    }
    /// Consecutive finalized blocks (a synced range) in one atomic write,
    /// each checked as [`Store::put_finalized`] checks one; `state` is the
    /// chain state after the last block (the head's). All or nothing, not
    /// flushed: durable after the next [`Store::flush`]. Blocks already
    /// finalized with the same hash are skipped.
    fn put_finalized_range(
        &self,
        blocks: &[(&bizra_proto::Block, &bizra_proto::CommitCertificate)],
        state: &[u8],
    ) -> Result<(), StoreError>;
    /// Replace the stored commit for an already finalized height with a larger certificate (late precommits for economic finality). Must be for the same block hash; else Conflict.
    ///
    /// A certificate with no more precommits than the stored one is ignored
    /// (`Ok`, nothing written): a stored certificate never shrinks. No
    /// finalized block at `commit.height` is `Conflict`. Flushed.
    fn update_commit(&self, commit: &bizra_proto::CommitCertificate) -> Result<(), StoreError>;

    /// [`Store::update_commit`] without the flush: the certificate becomes
    /// durable with the next flush (the node writes late precommits at most
    /// once per height, just before it stores the next block).
    fn update_commit_unsynced(&self, commit: &bizra_proto::CommitCertificate) -> Result<(), StoreError> {
        self.update_commit(commit)
    }
    /// Keeps the encoded weights of `epoch` (opaque to the store: the node
    /// writes its `EpochWeights`), replacing what was there. Not flushed:
    /// durable with the next synced write. They are derived from the chain,
    /// so a node that loses them recomputes them at start.
    fn put_epoch_weights(&self, epoch: u64, weights: &[u8]) -> Result<(), StoreError>;
    /// The bytes [`Store::put_epoch_weights`] kept for `epoch`, if any.
    fn epoch_weights(&self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Height and hash of the last finalized block, `None` when empty.
    fn head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError>;
    /// The finalized block at `height`, `None` if there is none.
    fn block(&self, height: u64) -> Result<Option<bizra_proto::Block>, StoreError>;
    /// Hash of the finalized block at `height`, `None` if there is none.
    fn block_hash(&self, height: u64) -> Result<Option<[u8; 32]>, StoreError>;
    /// Height of the finalized block with hash `hash`, `None` if unknown.
    fn height_of(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError>;
    /// The stored (largest seen) commit certificate of `height`, `None` if
    /// the height is not finalized.
    fn commit(&self, height: u64) -> Result<Option<bizra_proto::CommitCertificate>, StoreError>;
    /// For serving sync: consecutive finalized blocks with their commits from
    /// `from` (0 is treated as 1), at most `max` of them, stopping before the
    /// total encoded size of blocks and commits would exceed `max_bytes` —
    /// except that the first block is always returned if it exists, so a
    /// peer can make progress past a block larger than `max_bytes`.
    fn blocks_range(
        &self,
        from: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<(bizra_proto::Block, bizra_proto::CommitCertificate)>, StoreError>;
    /// The blob stored with the head
    fn chain_state(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// (height, index in `block.attestations`) of the attestation whose id
    /// (BLAKE3 of the envelope payload) is `id`.
    fn attestation_location(&self, id: &[u8; 32]) -> Result<Option<(u64, u32)>, StoreError>;
    /// (height, index) of the first finalized attestation by `attester` with
    /// `nonce` ([`nonce_key`]; in the attestation index). Data written before
    /// the nonce index existed has no nonce keys.
    fn nonce_location(&self, attester: &str, nonce: &[u8]) -> Result<Option<(u64, u32)>, StoreError> {
        self.attestation_location(&nonce_key(attester, nonce))
    }
    /// Append to the WAL. With `sync` the call returns only after the entry is durable (flush). Own votes/proposals are appended with sync=true BEFORE they are broadcast.
    fn wal_append(&self, entry: &WalEntry, sync: bool) -> Result<(), StoreError>;
    /// Appends received messages of one height to the WAL, unsynced, in
    /// order: the same as a [`WalKind::Received`] entry for each, but a store
    /// may keep them as one record (the sled store does: one insert for a
    /// height's worth of votes instead of one per vote).
    fn wal_append_received(&self, height: u64, msgs: &[bizra_proto::ConsensusMessage]) -> Result<(), StoreError> {
        for msg in msgs {
            let entry = WalEntry {
                height,
                kind: WalKind::Received,
                msg: msg.clone(),
            };
            self.wal_append(&entry, false)?;
        }
        Ok(())
    }
    /// All WAL entries with entry.height >= height, in append order.
    fn wal_entries_from(&self, height: u64) -> Result<Vec<WalEntry>, StoreError>;
    /// Removes every WAL entry with entry.height < height.
    fn wal_prune_below(&self, height: u64) -> Result<(), StoreError>;
    /// Record (durably, flushed) that this validator is about to sign at `pos`. Refuses (Conflict) if pos < the stored position. Equal is allowed (re-sign identical).
    ///
    /// A step above 2 is `Invalid`.
    fn guard_advance(&self, pos: SignPosition) -> Result<(), StoreError>;
    /// The last position recorded by [`Store::guard_advance`], `None` if
    /// this validator has never signed.
    fn guard_position(&self) -> Result<Option<SignPosition>, StoreError>;
    /// Advances the sign guard to `pos` and appends `entry` (our own signed
    /// message) to the WAL, durably, before returning: what must happen
    /// before a signature leaves the node. Same checks as
    /// [`Store::guard_advance`]; on a refusal nothing is written. A backend
    /// may make both durable with one flush.
    fn persist_own(&self, pos: SignPosition, entry: &WalEntry) -> Result<(), StoreError> {
        self.guard_advance(pos)?;
        self.wal_append(entry, true)
    }
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// BLAKE3 of the protobuf encoding of `header`: the block hash (the
/// consensus core's [`bizra_consensus::messages::header_hash`]).
pub fn block_hash_of(header: &bizra_proto::BlockHeader) -> [u8; 32] {
    bizra_consensus::messages::header_hash(header)
}

/// The attestation id: BLAKE3 of the envelope payload (the consensus core's
/// [`bizra_consensus::poi::attestation_id`]).
pub fn attestation_id(envelope: &bizra_proto::Envelope) -> [u8; 32] {
    bizra_consensus::poi::attestation_id(&envelope.payload)
}

/// The index key of an attester's nonce: BLAKE3 in derive-key mode (its own
/// domain, so it never equals an attestation id) of the attester id, a zero
/// byte and the nonce. The attestation index maps it to the location of the
/// first finalized attestation that used the nonce (issue 14, H2): nonce
/// uniqueness then holds exactly, whatever the pool remembers.
pub fn nonce_key(attester: &str, nonce: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("bizra 2026-12 attestation nonce key v1");
    h.update(attester.as_bytes());
    h.update(&[0]);
    h.update(nonce);
    *h.finalize().as_bytes()
}

/// The nonce key of a finalized envelope, if its payload decodes.
pub fn envelope_nonce_key(envelope: &bizra_proto::Envelope) -> Option<[u8; 32]> {
    use prost::Message;
    let att = bizra_proto::PoiAttestation::decode(envelope.payload.as_slice()).ok()?;
    Some(nonce_key(&att.attester, &att.nonce))
}

// ---- Rules shared by both implementations ----

/// A finalized block checked against its commit, ready to be written.
pub(crate) struct Prepared {
    pub height: u64,
    pub hash: [u8; 32],
    /// (attestation id, index in block), first occurrence of each id only;
    /// then (nonce key, index in block), first occurrence of each nonce.
    pub attestations: Vec<([u8; 32], u32)>,
}

pub(crate) fn prepare_finalized(
    block: &bizra_proto::Block,
    commit: &bizra_proto::CommitCertificate,
    chain_id: Option<&str>,
) -> Result<Prepared, StoreError> {
    let header = block
        .header
        .as_ref()
        .ok_or_else(|| StoreError::Invalid("block has no header".into()))?;
    let height = header.height;
    if height == 0 {
        return Err(StoreError::Invalid(
            "block height 0 is not a finalizable height (the first block is height 1)".into(),
        ));
    }
    if let Some(chain_id) = chain_id {
        if header.chain_id != chain_id {
            return Err(StoreError::Invalid(format!(
                "block {height} is for chain {:?} but this store belongs to chain {chain_id:?}",
                header.chain_id
            )));
        }
    }
    let hash = block_hash_of(header);
    if commit.height != height {
        return Err(StoreError::Invalid(format!(
            "commit certificate is for height {} but the block is at height {height}",
            commit.height
        )));
    }
    if commit.block_hash != hash {
        return Err(StoreError::Invalid(format!(
            "commit certificate at height {height} is for block {} but the block hashes to {}",
            hex::encode(&commit.block_hash),
            hex::encode(hash)
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut attestations = Vec::new();
    for (i, env) in block.attestations.iter().enumerate() {
        let index = u32::try_from(i)
            .map_err(|_| StoreError::Invalid(format!("block {height} has more than 2^32 attestations")))?;
        let id = attestation_id(env);
        if seen.insert(id) {
            attestations.push((id, index));
        }
        if let Some(key) = envelope_nonce_key(env) {
            if seen.insert(key) {
                attestations.push((key, index));
            }
        }
    }
    Ok(Prepared {
        height,
        hash,
        attestations,
    })
}

/// What `put_finalized` has to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PutAction {
    /// Append at head + 1.
    Append,
    /// The same block is already finalized at this height: nothing to write.
    AlreadyFinalized,
}

/// Decides a `put_finalized` from the current head and the hash stored at
/// the block's height (if any).
pub(crate) fn decide_put(
    head: Option<(u64, [u8; 32])>,
    height: u64,
    hash: &[u8; 32],
    parent_hash: &[u8],
    existing: Option<[u8; 32]>,
) -> Result<PutAction, StoreError> {
    let head_height = head.map_or(0, |h| h.0);
    if height <= head_height {
        return match existing {
            Some(e) if &e == hash => Ok(PutAction::AlreadyFinalized),
            Some(e) => Err(StoreError::Conflict(format!(
                "height {height} is already finalized with block {}; refusing to overwrite it with block {}",
                hex::encode(e),
                hex::encode(hash)
            ))),
            None => Err(StoreError::Corrupt(format!(
                "{}: missing although the head is at height {head_height}",
                codec::label(layout::BLOCKS, &codec::u64_key(height))
            ))),
        };
    }
    if existing.is_some() {
        return Err(StoreError::Corrupt(format!(
            "{}: a block is stored above the head (height {head_height})",
            codec::label(layout::BLOCKS, &codec::u64_key(height))
        )));
    }
    if height != head_height + 1 {
        return Err(StoreError::Conflict(format!(
            "finalized blocks must be appended in order: the next height is {}, got {height}",
            head_height + 1
        )));
    }
    if let Some((_, head_hash)) = head {
        if parent_hash != head_hash {
            return Err(StoreError::Conflict(format!(
                "block {height} has parent {} but the head at height {head_height} is {}",
                hex::encode(parent_hash),
                hex::encode(head_hash)
            )));
        }
    }
    Ok(PutAction::Append)
}

/// Decides an `update_commit`: `Ok(true)` to replace the stored certificate.
pub(crate) fn decide_update(
    new: &bizra_proto::CommitCertificate,
    stored_hash: Option<[u8; 32]>,
    stored: Option<&bizra_proto::CommitCertificate>,
) -> Result<bool, StoreError> {
    let height = new.height;
    let Some(stored_hash) = stored_hash else {
        return Err(StoreError::Conflict(format!(
            "cannot update the commit at height {height}: no block is finalized there"
        )));
    };
    if new.block_hash != stored_hash {
        return Err(StoreError::Conflict(format!(
            "commit certificate at height {height} is for block {} but the finalized block is {}",
            hex::encode(&new.block_hash),
            hex::encode(stored_hash)
        )));
    }
    let Some(stored) = stored else {
        return Err(StoreError::Corrupt(format!(
            "{}: missing for a finalized block",
            codec::label(layout::COMMITS, &codec::u64_key(height))
        )));
    };
    Ok(new.precommits.len() > stored.precommits.len())
}

pub(crate) fn check_guard(stored: Option<SignPosition>, pos: SignPosition) -> Result<(), StoreError> {
    match stored {
        Some(s) if pos < s => Err(StoreError::Conflict(format!(
            "double-sign guard: refusing to sign at {pos} because this validator already signed at {s}"
        ))),
        _ => Ok(()),
    }
}

/// Collects `blocks_range` from a per-height fetch.
pub(crate) fn collect_range<F>(
    from: u64,
    max: usize,
    max_bytes: usize,
    mut fetch: F,
) -> Result<Vec<(bizra_proto::Block, bizra_proto::CommitCertificate)>, StoreError>
where
    F: FnMut(u64) -> Result<Option<(bizra_proto::Block, bizra_proto::CommitCertificate)>, StoreError>,
{
    let mut out = Vec::new();
    let mut total = 0usize;
    let mut height = from.max(1);
    while out.len() < max {
        let Some((block, commit)) = fetch(height)? else {
            break;
        };
        let size = block.encoded_len() + commit.encoded_len();
        if !out.is_empty() && total.saturating_add(size) > max_bytes {
            break;
        }
        total = total.saturating_add(size);
        out.push((block, commit));
        let Some(next) = height.checked_add(1) else {
            break;
        };
        height = next;
    }
    Ok(out)
}
