//! The fixed world every fuzz target runs against, also used by the node's
//! unit tests: a 4-validator genesis with deterministic keys, a 3-block
//! finalized chain crossing an epoch boundary (held in a store as a node
//! holds it), attestations no block carries yet, and signed proposals for
//! the next height. What only a node can add (a synced driver, the
//! attestation pool) is in `bizra-fuzz`.
//!
//! The fuzz seeds in `fuzz/seeds/` are generated from this world: changing
//! it changes them (the test `seeds_on_disk_match_the_generator` says so).

use crate::chain::ChainBuilder;
use crate::genesis::GenesisBuilder;
use crate::keys::signer;
use crate::votes;
use bizra_consensus::chain::ChainState;
use bizra_consensus::driver::{Driver, Timeouts};
use bizra_consensus::genesis::Genesis;
use bizra_consensus::messages::{block_hash, sign_proposal};
use bizra_consensus::poi;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::{hash_bytes, Hash, Round};
use bizra_proto::{Block, CommitCertificate, Envelope, Proposal, SignedProposal, SignedVote, VoteKind};
use bizra_storage::MemStore;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

/// Chain id of the world.
pub const CHAIN_ID: &str = "bizra-fuzz";
/// `genesis_time_ms` of the world.
pub const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
/// Block `h` of the world chain has `time_ms = GENESIS_TIME_MS + h * BLOCK_SPACING_MS`.
pub const BLOCK_SPACING_MS: u64 = 1_000;
/// The clock every target runs at (after the world chain's last block).
pub const NOW_MS: u64 = GENESIS_TIME_MS + 60_000;
/// Validators of the world genesis.
pub const VALIDATORS: usize = 4;
/// Epoch length of the world genesis: small, so the 3-block chain crosses an epoch boundary.
pub const EPOCH_LENGTH: u64 = 2;
/// Finalized blocks of the world chain (heights 1..=CHAIN_LEN).
pub const CHAIN_LEN: u64 = 3;

/// A deterministic genesis, its signers and a finalized chain.
pub struct World {
    /// The genesis file.
    pub genesis_bytes: Vec<u8>,
    /// The parsed genesis.
    pub genesis: Arc<Genesis>,
    /// Validator `i`'s key ([`world_signer`]), in genesis order.
    pub signers: Vec<Signer>,
    /// `blocks[i]` is the finalized block at height `i + 1`, its hash and its commit.
    pub blocks: Vec<(Block, Hash, CommitCertificate)>,
    /// `states[h]` is the chain state after height `h` (`states[0]` is genesis).
    pub states: Vec<ChainState>,
    /// The world chain, as a node's store holds it.
    pub store: MemStore,
    /// Valid attestations that no block carries yet.
    pub pending: Vec<Envelope>,
    /// Signed proposals for the next height (round 0 without, round 1 with a proof-of-lock round).
    pub next_proposals: Vec<SignedProposal>,
}

/// The signing key of world validator `i`.
pub fn world_signer(i: usize) -> Signer {
    signer(0x51 + i as u8)
}

/// A valid attestation by validator `attester` about validator `subject`, window ending at genesis time.
pub fn world_attestation(signers: &[Signer], attester: usize, subject: usize, nonce: u8) -> Envelope {
    let names = ["accuracy", "latency"];
    let dimensions: BTreeMap<String, u32> = names.iter().map(|n| n.to_string()).zip([9000, 7001]).collect();
    let weights: BTreeMap<String, u32> = names.iter().map(|n| n.to_string()).zip([6000, 4000]).collect();
    poi::build(
        &signers[attester],
        poi::Draft {
            chain_id: CHAIN_ID.to_string(),
            subject: signers[subject].id().to_string(),
            evidence_digest: hash_bytes(&[nonce]),
            evidence_len: 1,
            dimensions,
            weights,
            window_start_ms: GENESIS_TIME_MS - 3_600_000,
            window_end_ms: GENESIS_TIME_MS,
            nonce: vec![nonce; 16],
        },
    )
    .expect("world attestation draft is valid")
}

/// A commit certificate for `hash` at (`height`, `round`) signed by `who`.
pub fn world_commit(signers: &[Signer], height: u64, round: Round, hash: Hash, who: &[usize]) -> CommitCertificate {
    votes::commit(signers, CHAIN_ID, height, round, hash, who)
}

fn build_world() -> World {
    let signers: Vec<Signer> = (0..VALIDATORS).map(world_signer).collect();
    let genesis = GenesisBuilder::new(CHAIN_ID, &signers)
        .genesis_time_ms(GENESIS_TIME_MS)
        .epoch_length(EPOCH_LENGTH)
        .stakes(|i| 1_000 + 3_000 * i as u64)
        .names("fuzz-")
        .build();
    let g = genesis.genesis;
    let chain = ChainBuilder::new(g.clone(), &signers)
        .block_spacing_ms(BLOCK_SPACING_MS)
        .attestations(|h| match h {
            2 => vec![world_attestation(&signers, 0, 1, 2)],
            3 => vec![
                world_attestation(&signers, 2, 3, 3),
                world_attestation(&signers, 1, 0, 4),
            ],
            _ => Vec::new(),
        })
        .build(CHAIN_LEN);
    let pending = vec![
        world_attestation(&signers, 3, 2, 7),
        world_attestation(&signers, 0, 2, 8),
    ];
    let head = chain.head();
    let head_commit = chain.blocks.last().map(|b| b.2.clone());
    let next_proposals = [(0u32, -1i64), (1, 0)]
        .iter()
        .map(|&(round, pol_round)| {
            let p = head.proposer(round);
            let block = head.build_block(&g, signers[p].id(), NOW_MS, head_commit.clone(), pending.clone());
            let hash = block_hash(&block).expect("header");
            let proposal = Proposal {
                chain_id: CHAIN_ID.to_string(),
                height: head.next_height(),
                round,
                pol_round,
                block_hash: hash.to_vec(),
                proposer: signers[p].id().to_string(),
            };
            sign_proposal(&signers[p], proposal, block)
        })
        .collect();
    World {
        genesis_bytes: genesis.bytes,
        genesis: g,
        signers,
        blocks: chain.blocks,
        states: chain.states,
        store: chain.store,
        pending,
        next_proposals,
    }
}

/// The world (built once per process).
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build_world)
}

impl World {
    /// The chain state after the last world block.
    pub fn head(&self) -> &ChainState {
        self.states.last().expect("head state")
    }

    /// The commit certificate of the last world block.
    pub fn head_commit(&self) -> &CommitCertificate {
        &self.blocks.last().expect("head block").2
    }

    /// A driver at genesis, without a key: a node about to sync the world chain.
    pub fn genesis_driver(&self) -> Driver {
        Driver::new(
            self.genesis.clone(),
            ChainState::genesis(&self.genesis),
            None,
            None,
            None,
            Timeouts::default(),
        )
    }

    /// A driver at the height after the world chain, as a restarted node has
    /// it (unlike a node that synced the chain in this process, it does not
    /// know the round the head was decided in).
    pub fn driver(&self, signer: Option<Signer>) -> Driver {
        Driver::new(
            self.genesis.clone(),
            self.head().clone(),
            Some(self.head_commit().clone()),
            signer,
            None,
            Timeouts::default(),
        )
    }

    /// A signed vote of validator `i`.
    pub fn vote(&self, i: usize, height: u64, round: Round, kind: VoteKind, value: Option<Hash>) -> SignedVote {
        votes::vote(&self.signers[i], CHAIN_ID, height, round, kind, value)
    }

    /// Every (height, block hash) that the world's validators precommitted.
    pub fn precommitted(&self) -> BTreeSet<(u64, Hash)> {
        let mut set: BTreeSet<(u64, Hash)> = self.blocks.iter().map(|(b, h, _)| (header_height(b), *h)).collect();
        for p in &self.next_proposals {
            if let Some(b) = &p.block {
                set.insert((header_height(b), block_hash(b).expect("header")));
            }
        }
        set
    }

    /// The block the world signed with this (height, hash), if any.
    pub fn signed_block(&self, height: u64, hash: &Hash) -> Option<&Block> {
        self.blocks
            .iter()
            .find(|(b, h, _)| header_height(b) == height && h == hash)
            .map(|(b, _, _)| b)
            .or_else(|| {
                self.next_proposals
                    .iter()
                    .filter_map(|p| p.block.as_ref())
                    .find(|b| header_height(b) == height && block_hash(b).as_ref() == Some(hash))
            })
    }
}

/// The height in a block's header (0 without a header).
pub fn header_height(b: &Block) -> u64 {
    b.header.as_ref().map(|h| h.height).unwrap_or(0)
}
