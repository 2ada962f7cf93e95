//! Fixtures shared by the integration tests.
#![allow(dead_code)]

use bizra_proto::{
    consensus_message, Block, BlockHeader, CommitCertificate, ConsensusMessage, Envelope, SignedVote, Vote,
};
use bizra_storage::{block_hash_of, DataDirIdentity, WalEntry, WalKind};
use prost::Message;

pub const CHAIN: &str = "bizra-test";

pub fn identity() -> DataDirIdentity {
    DataDirIdentity {
        chain_id: CHAIN.into(),
        genesis_hash: [0x11; 32],
        validator: "aa".repeat(32),
    }
}

pub fn precommit(height: u64, round: u32, hash: &[u8; 32], who: u8) -> SignedVote {
    SignedVote {
        vote: Some(Vote {
            chain_id: CHAIN.into(),
            height,
            round,
            kind: bizra_proto::VoteKind::Precommit as i32,
            block_hash: hash.to_vec(),
            validator: hex_of(&[who; 32]),
        }),
        signature: vec![who; 64],
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn commit_for(height: u64, hash: &[u8; 32], signers: u8) -> CommitCertificate {
    CommitCertificate {
        height,
        round: 0,
        block_hash: hash.to_vec(),
        precommits: (0..signers).map(|w| precommit(height, 0, hash, w)).collect(),
    }
}

pub fn envelope(tag: &str) -> Envelope {
    Envelope {
        payload_type: bizra_proto::payload_type::POI.into(),
        payload: tag.as_bytes().to_vec(),
        signatures: vec![],
    }
}

/// Block at `height` on top of `parent` (hash of the previous block), with
/// `n_att` attestations whose payloads are unique to (height, index) plus
/// `salt` (to build competing blocks).
pub fn block_on(
    height: u64,
    parent: Option<&[u8; 32]>,
    last_commit: Option<CommitCertificate>,
    n_att: usize,
    salt: &str,
) -> Block {
    let header = BlockHeader {
        chain_id: CHAIN.into(),
        height,
        parent_hash: parent.map(|p| p.to_vec()).unwrap_or_default(),
        proposer: format!("proposer-{salt}"),
        time_ms: 1_700_000_000_000 + height * 1000,
        payload_root: vec![7; 32],
        last_commit_hash: last_commit
            .as_ref()
            .map(|c| blake3::hash(&c.encode_to_vec()).as_bytes().to_vec())
            .unwrap_or_default(),
        epoch: 0,
        evidence_root: vec![],
    };
    Block {
        header: Some(header),
        last_commit,
        attestations: (0..n_att)
            .map(|i| envelope(&format!("att-{height}-{i}-{salt}")))
            .collect(),
        evidence: vec![],
    }
}

pub fn hash(b: &Block) -> [u8; 32] {
    block_hash_of(b.header.as_ref().unwrap())
}

/// A linked chain of `n` blocks with commits (3 precommits each).
pub fn chain(n: u64, n_att: usize) -> Vec<(Block, CommitCertificate)> {
    let mut out: Vec<(Block, CommitCertificate)> = Vec::new();
    for h in 1..=n {
        let (parent, last) = match out.last() {
            Some((b, c)) => (Some(hash(b)), Some(c.clone())),
            None => (None, None),
        };
        let b = block_on(h, parent.as_ref(), last, n_att, "main");
        let c = commit_for(h, &hash(&b), 3);
        out.push((b, c));
    }
    out
}

pub fn state_for(height: u64) -> Vec<u8> {
    format!("state-at-{height}").into_bytes()
}

pub fn wal_vote(height: u64, round: u32, kind: WalKind, who: u8) -> WalEntry {
    WalEntry {
        height,
        kind,
        msg: ConsensusMessage {
            attempt: 0,
            msg: Some(consensus_message::Msg::Vote(precommit(height, round, &[who; 32], who))),
        },
    }
}

pub fn wal_proposal(height: u64, round: u32) -> WalEntry {
    let b = block_on(height, None, None, 1, "proposal");
    WalEntry {
        height,
        kind: WalKind::Own,
        msg: ConsensusMessage {
            attempt: 0,
            msg: Some(consensus_message::Msg::Proposal(bizra_proto::SignedProposal {
                proposal: Some(bizra_proto::Proposal {
                    chain_id: CHAIN.into(),
                    height,
                    round,
                    pol_round: -1,
                    block_hash: hash(&b).to_vec(),
                    proposer: "p".into(),
                }),
                signature: vec![1; 64],
                block: Some(b),
                compact_last_commit: None,
            })),
        },
    }
}
