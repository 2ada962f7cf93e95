//! Block and commit records, in the full or the compact form
//! (docs/adr/0021).
//!
//! A commit certificate at 100 validators is ~18.6 KB in full: every
//! precommit repeats the chain id, height, round, kind, block hash and the
//! 64-character validator id next to its signature. A node stores one per
//! height twice (the height's commit, and the next block's last commit), and
//! sled keeps recently written records in memory. A store opened with its
//! chain's [`Compaction`] writes both in the form of ADR 0018 instead: a
//! signer bitmap over the genesis order and the signatures (~6.5 KB).
//!
//! The compact form is exact: [`compact_commit`] refuses any certificate
//! it could not rebuild byte for byte, which is then stored in full, and
//! reading rebuilds the very certificate that was written. Records of both
//! forms can sit side by side (a data dir written before this form keeps
//! its full records); the version byte of the sealed value says which
//! ([`FORMAT_V1`] full, [`FORMAT_COMPACT`] compact), and a compact record
//! read by a store without the validator set is reported as corrupt with
//! that reason, never guessed at.

use crate::codec::{self, corrupt, seal_as, unseal_as, FORMAT_COMPACT, FORMAT_V1};
use crate::layout::{BLOCKS, COMMITS};
use crate::StoreError;
use bizra_consensus::compact::{compact_commit, expand_commit};
use bizra_consensus::validators::Membership;
use bizra_proto::{Block, CommitCertificate, CompactCommit};
use prost::Message;
use std::sync::Arc;

/// What a store needs to write and read certificates compactly: the chain
/// id and the genesis validator set (which never changes).
#[derive(Clone, Debug)]
pub struct Compaction {
    chain_id: String,
    members: Arc<Membership>,
}

impl Compaction {
    /// The compaction of chain `chain_id` with validators `members` (genesis order).
    pub fn new(chain_id: impl Into<String>, members: impl Into<Arc<Membership>>) -> Self {
        Compaction {
            chain_id: chain_id.into(),
            members: members.into(),
        }
    }

    pub(crate) fn chain_id(&self) -> &str {
        &self.chain_id
    }
}

/// A block record's payload after its 32-byte hash, in the compact form:
/// the block without its last commit, and that commit compact.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct CompactBlockRecord {
    #[prost(message, optional, tag = "1")]
    pub(crate) block: Option<Block>,
    #[prost(message, optional, tag = "2")]
    pub(crate) last_commit: Option<CompactCommit>,
}

/// The sealed record of `block` (hash `hash`) under `key`: compact when
/// `c` is given and can express its last commit exactly, else full.
pub(crate) fn seal_block(c: Option<&Compaction>, key: &[u8], hash: &[u8; 32], block: &Block) -> Vec<u8> {
    let compact = c.and_then(|c| compact_commit(&c.chain_id, &c.members, block.last_commit.as_ref()?));
    let Some(compact) = compact else {
        return codec::seal(BLOCKS, key, &codec::encode_block(hash, block));
    };
    // The block's fields but its last commit, as `Block` encodes them (in
    // field order), without cloning its attestations.
    let mut inner = Vec::with_capacity(block.encoded_len());
    if let Some(h) = &block.header {
        prost::encoding::message::encode(1, h, &mut inner);
    }
    for a in &block.attestations {
        prost::encoding::message::encode(3, a, &mut inner);
    }
    for e in &block.evidence {
        prost::encoding::message::encode(4, e, &mut inner);
    }
    let mut payload = Vec::with_capacity(32 + inner.len() + compact.encoded_len() + 16);
    payload.extend_from_slice(hash);
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut payload);
    prost::encoding::encode_varint(inner.len() as u64, &mut payload);
    payload.extend_from_slice(&inner);
    prost::encoding::message::encode(2, &compact, &mut payload);
    seal_as(FORMAT_COMPACT, BLOCKS, key, &payload)
}

/// The sealed record of `commit` under `key`: compact when `c` is given and
/// can express it exactly, else full.
pub(crate) fn seal_commit(c: Option<&Compaction>, key: &[u8], commit: &CommitCertificate) -> Vec<u8> {
    match c.and_then(|c| compact_commit(&c.chain_id, &c.members, commit)) {
        Some(compact) => seal_as(FORMAT_COMPACT, COMMITS, key, &compact.encode_to_vec()),
        None => codec::seal(COMMITS, key, &commit.encode_to_vec()),
    }
}

/// The stored hash of a block record of either form, without decoding the block.
pub(crate) fn open_block_hash(key: &[u8], raw: &[u8]) -> Result<[u8; 32], StoreError> {
    let (_, payload) = unseal_as(&[FORMAT_V1, FORMAT_COMPACT], BLOCKS, key, raw)?;
    codec::split_block_record(key, payload).map(|(hash, _)| hash)
}

fn needs_validators(tree: &str, key: &[u8]) -> StoreError {
    corrupt(
        tree,
        key,
        "compact record, but this store was opened without the validator set to rebuild it",
    )
}

/// Decodes and checks the block record at `height` (either form).
pub(crate) fn open_block(
    c: Option<&Compaction>,
    height: u64,
    key: &[u8],
    raw: &[u8],
) -> Result<([u8; 32], Block), StoreError> {
    let (format, payload) = unseal_as(&[FORMAT_V1, FORMAT_COMPACT], BLOCKS, key, raw)?;
    if format == FORMAT_V1 {
        return codec::decode_block(height, key, payload);
    }
    let c = c.ok_or_else(|| needs_validators(BLOCKS, key))?;
    let (stored, rest) = codec::split_block_record(key, payload)?;
    let record = CompactBlockRecord::decode(rest)
        .map_err(|e| corrupt(BLOCKS, key, format!("compact block does not decode: {e}")))?;
    let (Some(mut block), Some(compact)) = (record.block, record.last_commit) else {
        return Err(corrupt(
            BLOCKS,
            key,
            "compact block record without its block or last commit",
        ));
    };
    if block.last_commit.is_some() {
        return Err(corrupt(
            BLOCKS,
            key,
            "compact block record holds a full last commit too",
        ));
    }
    let last = expand_commit(&c.chain_id, &c.members, &compact)
        .map_err(|e| corrupt(BLOCKS, key, format!("compact last commit: {e}")))?;
    block.last_commit = Some(last);
    codec::check_block(height, key, stored, block)
}

/// Decodes and checks the commit record at `height` (either form).
pub(crate) fn open_commit(
    c: Option<&Compaction>,
    height: u64,
    key: &[u8],
    raw: &[u8],
) -> Result<CommitCertificate, StoreError> {
    let (format, payload) = unseal_as(&[FORMAT_V1, FORMAT_COMPACT], COMMITS, key, raw)?;
    if format == FORMAT_V1 {
        return codec::decode_commit(height, key, payload);
    }
    let c = c.ok_or_else(|| needs_validators(COMMITS, key))?;
    let compact = CompactCommit::decode(payload)
        .map_err(|e| corrupt(COMMITS, key, format!("compact commit certificate does not decode: {e}")))?;
    let commit = expand_commit(&c.chain_id, &c.members, &compact)
        .map_err(|e| corrupt(COMMITS, key, format!("compact commit certificate: {e}")))?;
    codec::check_commit_height(height, key, commit)
}
