//! A finalized chain of `k` signed blocks with commit certificates: each
//! block built by its proposer on the previous state and validated by
//! [`ChainState::validate_block`], each certificate verified, the chain
//! states after each height, and the chain in a [`MemStore`] as a node
//! stores it.

use crate::votes::commit;
use bizra_consensus::certificate;
use bizra_consensus::chain::ChainState;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::Hash;
use bizra_proto::{Block, CommitCertificate, Envelope, FinalizedBlock};
use bizra_storage::{MemStore, Store};
use std::sync::Arc;

/// A signed, finalized chain on a genesis.
pub struct SignedChain {
    /// `blocks[i]` is the finalized block at height `i + 1`, its hash and its commit.
    pub blocks: Vec<(Block, Hash, CommitCertificate)>,
    /// `states[h]` is the chain state after height `h` (`states[0]` is genesis).
    pub states: Vec<ChainState>,
    /// The chain, as a node's store holds it (blocks, commits, the state snapshot).
    pub store: MemStore,
}

impl SignedChain {
    /// The chain state after the last block.
    pub fn head(&self) -> &ChainState {
        self.states.last().expect("head state")
    }

    /// The commit certificate of the last block; panics on an empty chain.
    pub fn head_commit(&self) -> &CommitCertificate {
        &self.blocks.last().expect("head block").2
    }

    /// The blocks with their commits, as a sync peer serves them.
    pub fn finalized_blocks(&self) -> Vec<FinalizedBlock> {
        self.blocks
            .iter()
            .map(|(b, _, c)| FinalizedBlock {
                block: Some(b.clone()),
                commit: Some(c.clone()),
            })
            .collect()
    }
}

/// Builds a [`SignedChain`]: block `h` is stamped `genesis_time_ms + h *
/// spacing` (1000 ms unless set), carries the attestations the
/// [`attestations`](ChainBuilder::attestations) function gives for `h` (none
/// unless set), and is committed in round 0 by the chosen validators (all
/// unless set). `signers` must be the genesis validators' keys in genesis
/// order.
pub struct ChainBuilder<'a> {
    genesis: Arc<Genesis>,
    signers: &'a [Signer],
    spacing_ms: u64,
    signed_by: Vec<usize>,
    attestations: Box<dyn FnMut(u64) -> Vec<Envelope> + 'a>,
}

impl<'a> ChainBuilder<'a> {
    /// A chain on `genesis`, signed with `signers` (validator `i` is `signers[i]`).
    pub fn new(genesis: Arc<Genesis>, signers: &'a [Signer]) -> Self {
        ChainBuilder {
            genesis,
            signers,
            spacing_ms: 1_000,
            signed_by: (0..signers.len()).collect(),
            attestations: Box::new(|_| Vec::new()),
        }
    }

    /// Milliseconds between blocks (and between genesis and block 1).
    pub fn block_spacing_ms(mut self, ms: u64) -> Self {
        self.spacing_ms = ms;
        self
    }

    /// The attestations block `h` carries.
    pub fn attestations(mut self, at: impl FnMut(u64) -> Vec<Envelope> + 'a) -> Self {
        self.attestations = Box::new(at);
        self
    }

    /// The validators whose precommits make each commit certificate; they
    /// must reach the fast threshold.
    pub fn signed_by(mut self, who: &[usize]) -> Self {
        self.signed_by = who.to_vec();
        self
    }

    /// Builds heights `1..=len`; panics if a block or a certificate is not valid.
    pub fn build(mut self, len: u64) -> SignedChain {
        let g = &self.genesis;
        let chain_id = g.chain_id();
        let store = MemStore::new();
        let mut states = vec![ChainState::genesis(g)];
        let mut blocks: Vec<(Block, Hash, CommitCertificate)> = Vec::new();
        for h in 1..=len {
            let st = states.last().expect("state");
            let atts = (self.attestations)(h);
            let proposer = self.signers[st.proposer(0)].id();
            let last_commit = blocks.last().map(|b| b.2.clone());
            let time_ms = g.doc.genesis_time_ms + h * self.spacing_ms;
            let block = st.build_block(g, proposer, time_ms, last_commit, atts);
            let hash = st.validate_block(g, &block).expect("test block is valid");
            let cert = commit(self.signers, chain_id, h, 0, hash, &self.signed_by);
            certificate::verify(
                chain_id,
                &g.members,
                &st.weights,
                g.params().fast_threshold_bps,
                &cert,
                Some((h, hash)),
            )
            .expect("test commit is valid");
            let mut next = st.clone();
            next.apply(g, &block, hash);
            store
                .put_finalized(&block, &cert, &next.to_bytes())
                .expect("test store");
            states.push(next);
            blocks.push((block, hash, cert));
        }
        SignedChain { blocks, states, store }
    }
}
