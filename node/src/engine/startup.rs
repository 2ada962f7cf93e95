//! Start-up from the chain-state snapshot (issue 14, H1).
//!
//! The chain state (weights, accumulators, proposer priorities) is stored
//! with every head, in the same write. A node starts from it: reading the
//! head and the snapshot, and checking that they agree, costs the same at
//! height 10 and at height 10 million. Nothing else is loaded into memory at
//! start: finalized attestation ids and nonces are answered by the store's
//! index (`Store::attestation_location`, `Store::nonce_location`).
//!
//! What still needs history runs after consensus has started, on a blocking
//! thread: [`replay_history`] re-applies every stored block from genesis,
//! collects the weights of past epochs (for the gRPC API) and checks that
//! the blocks lead to the snapshot. A mismatch stops the node with "data dir
//! is corrupt", as it did when this check ran before start.

use bizra_consensus::chain::ChainState;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::messages::block_hash;
use bizra_consensus::validators::EpochWeights;
use bizra_storage::Store;
use std::collections::BTreeMap;

/// The chain state to start from: genesis, or the snapshot stored with the
/// head, which must be the state *at* that head.
pub fn load_chain(g: &Genesis, head: Option<(u64, [u8; 32])>, snapshot: Option<Vec<u8>>) -> anyhow::Result<ChainState> {
    let Some((height, hash)) = head else {
        if snapshot.is_some() {
            anyhow::bail!("data dir is corrupt: a chain state is stored but no head");
        }
        return Ok(ChainState::genesis(g));
    };
    let blob = snapshot.ok_or_else(|| anyhow::anyhow!("data dir is corrupt: no chain state stored with the head"))?;
    let state = ChainState::from_bytes(&blob).map_err(|e| anyhow::anyhow!("data dir is corrupt: chain state: {e}"))?;
    if state.height != height || state.last_hash != hash {
        anyhow::bail!(
            "data dir is corrupt: the stored chain state is for B{} {}, the head is B{height} {}",
            state.height,
            hex::encode(&state.last_hash[..4]),
            hex::encode(&hash[..4])
        );
    }
    Ok(state)
}

/// The epoch weights a node knows at start: the current and the previous
/// epoch's (the snapshot carries both), and epoch 0's.
pub fn initial_epochs(g: &Genesis, state: &ChainState) -> BTreeMap<u64, EpochWeights> {
    let mut epochs = BTreeMap::new();
    epochs.insert(0, ChainState::genesis(g).weights);
    epochs.insert(state.last_weights.epoch, state.last_weights.clone());
    epochs.insert(state.weights.epoch, state.weights.clone());
    epochs
}

/// What [`replay_history`] learns from the blocks behind the snapshot.
#[derive(Debug)]
pub struct History {
    /// The weights of epoch 0 and the newest epochs
    /// ([`crate::state::keep_newest_epochs`]); every epoch's are in the store.
    pub epochs: BTreeMap<u64, EpochWeights>,
    /// How many epochs the blocks span.
    pub epoch_count: u64,
    /// (offending validator, height, index in block) of committed evidence.
    pub evidence: Vec<(usize, u64, u32)>,
}

/// Re-applies blocks 1..=`snapshot.height` from genesis: the weights of
/// every epoch (written to the store where it lacks them; the newest kept
/// in memory) and where committed evidence is, and an error if the blocks
/// do not lead to `snapshot`.
pub fn replay_history(g: &Genesis, store: &dyn Store, snapshot: &ChainState) -> anyhow::Result<History> {
    let mut state = ChainState::genesis(g);
    let mut epochs = BTreeMap::new();
    let mut evidence = Vec::new();
    let mut epoch_count = 1;
    store_epoch(store, &state.weights);
    epochs.insert(0, state.weights.clone());
    for h in 1..=snapshot.height {
        let b = store
            .block(h)?
            .ok_or_else(|| anyhow::anyhow!("data dir is corrupt: block {h} is missing"))?;
        let hash = block_hash(&b).ok_or_else(|| anyhow::anyhow!("data dir is corrupt: block {h} has no header"))?;
        for (i, e) in b.evidence.iter().enumerate() {
            if let Ok(s) = bizra_consensus::evidence::check_shape(g.chain_id(), &g.members, e) {
                evidence.push((s.validator(), h, i as u32));
            }
        }
        state.apply(g, &b, hash);
        if let std::collections::btree_map::Entry::Vacant(slot) = epochs.entry(state.weights.epoch) {
            epoch_count += 1;
            store_epoch(store, &state.weights);
            slot.insert(state.weights.clone());
            crate::state::keep_newest_epochs(&mut epochs);
        }
    }
    if &state != snapshot {
        anyhow::bail!(
            "data dir is corrupt: the stored chain state does not match its blocks at height {}",
            snapshot.height
        );
    }
    Ok(History {
        epochs,
        epoch_count,
        evidence,
    })
}

/// Writes `w` to the store unless it already holds exactly these weights.
/// A failed write is a warning: the weights are derived from the chain, and
/// the next start writes them again.
fn store_epoch(store: &dyn Store, w: &EpochWeights) {
    let bytes = crate::state::encode_epoch(w);
    if store.epoch_weights(w.epoch).ok().flatten().as_deref() != Some(bytes.as_slice()) {
        if let Err(e) = store.put_epoch_weights(w.epoch, &bytes) {
            tracing::warn!(epoch = w.epoch, error = %e, "storing epoch weights");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_world::world;

    /// H1: start-up takes the snapshot and the head only (`load_chain` has
    /// no store to read blocks from); a snapshot that is not the head's
    /// state is refused; history is checked afterwards by `replay_history`.
    #[test]
    fn start_up_reads_the_snapshot_not_the_history() {
        let w = world();
        let head = w.store.head().unwrap();
        let snap = w.store.chain_state().unwrap();
        let state = load_chain(&w.genesis, head, snap.clone()).unwrap();
        assert_eq!(&state, w.states.last().unwrap());
        let epochs = initial_epochs(&w.genesis, &state);
        assert_eq!(epochs.get(&state.weights.epoch), Some(&state.weights));
        // The snapshot of another height is corrupt.
        let older = w.states[w.states.len() - 2].to_bytes();
        let e = load_chain(&w.genesis, head, Some(older)).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
        assert!(load_chain(&w.genesis, head, None).is_err());
        assert!(load_chain(&w.genesis, None, snap).is_err());
        assert_eq!(
            load_chain(&w.genesis, None, None).unwrap(),
            ChainState::genesis(&w.genesis)
        );
        // The history behind it checks out, with every epoch's weights.
        let past = replay_history(&w.genesis, &w.store, &state).unwrap();
        let all = past.epochs;
        for (e, wts) in &epochs {
            assert_eq!(all.get(e), Some(wts), "epoch {e}");
        }
        // Every epoch's weights are in the store too, as the node encodes them.
        assert_eq!(past.epoch_count, state.weights.epoch + 1);
        for e in 0..=state.weights.epoch {
            let stored = w.store.epoch_weights(e).unwrap().expect("stored");
            let parsed: EpochWeights = serde_json::from_slice(&stored).unwrap();
            assert_eq!(parsed.epoch, e);
            if let Some(wts) = all.get(&e) {
                assert_eq!(&parsed, wts, "epoch {e}");
            }
        }
        // A snapshot the blocks do not lead to is found afterwards.
        let mut forged = state.clone();
        forged.acc.commits += 1;
        let e = replay_history(&w.genesis, &w.store, &forged).unwrap_err().to_string();
        assert!(e.contains("does not match its blocks"), "{e}");
    }
}
