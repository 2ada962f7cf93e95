//! File targets: `genesis.json`, `config.toml` (and what the engine derives
//! from them), `wq_proof.json` and `attestation.json` as `bizra verify`
//! checks them.

use crate::world::{world, NOW_MS};
use crate::{rejected, Outcome};
use bizra_consensus::chain::ChainState;
use bizra_consensus::driver::{Driver, Effect, Input, Timeout, Timeouts};
use bizra_consensus::genesis::Genesis;
use bizra_consensus::quorum;
use bizra_consensus::types::hash_bytes;
use bizra_node::config::{parse_peer, NodeConfig};
use bizra_proof as proof;
use bizra_proof::verify;
use bizra_proof::VerifyError;
use std::collections::HashSet;
use std::sync::Arc;

/// `genesis.json` bytes: `Genesis::from_bytes`, then what a node computes from
/// a genesis at start (chain state, proposer, a driver).
pub fn fuzz_genesis(data: &[u8]) -> Outcome {
    let g = match Genesis::from_bytes(data) {
        Ok(g) => g,
        Err(e) => return rejected(e),
    };
    let p = g.params();
    assert_eq!(g.hash, hash_bytes(data), "genesis_hash is BLAKE3 of the exact bytes");
    assert!(p.fast_threshold_bps >= quorum::MIN_SAFE_THRESHOLD_BPS && p.fast_threshold_bps <= 10_000);
    assert!(p.economic_threshold_bps >= p.fast_threshold_bps && p.economic_threshold_bps <= 10_000);
    assert!(p.epoch_length >= 1);
    assert!(!g.members.is_empty() && g.members.len() == g.doc.validators.len());
    let ids: HashSet<&str> = g.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), g.members.len(), "no duplicate validators");
    let state = ChainState::genesis(&g);
    assert_eq!(state.weights.weights.len(), g.members.len());
    assert!(
        state.weights.weights.iter().all(|&w| w > 0),
        "every validator has weight"
    );
    assert_eq!(
        ChainState::from_bytes(&state.to_bytes()).as_ref(),
        Ok(&state),
        "chain state round-trips"
    );
    for r in 0..4 {
        assert!(state.proposer(r) < g.members.len());
    }
    let mut d = Driver::new(Arc::new(g), state, None, None, None, Timeouts::default());
    let _ = d.start(0);
    Outcome::Accepted
}

/// `config.toml` text: `NodeConfig::from_toml_with_env(text, &[])`; a loaded
/// config validates and round-trips through `to_toml`.
pub fn fuzz_config(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return rejected("not UTF-8");
    };
    let cfg = match NodeConfig::from_toml_with_env(text, &[]) {
        Ok(c) => c,
        Err(e) => return rejected(e),
    };
    cfg.validate().expect("a loaded config validates");
    for p in &cfg.p2p.peers {
        parse_peer(p).expect("a loaded config's peers parse");
    }
    let again = NodeConfig::from_toml_with_env(&cfg.to_toml(), &[]).expect("a loaded config's TOML loads");
    assert_eq!(again, cfg, "config round-trips through to_toml");
    // What the engine derives from a loaded config. engine::sync_server::serve
    // computes `max_message_bytes / 4 * 3` for every block range it serves
    // (it computed `max_message_bytes * 3 / 4` when this check was written).
    assert!(
        cfg.p2p.max_message_bytes.checked_mul(3).is_some(),
        "engine serve_sync: max_message_bytes * 3 overflows for p2p.max_message_bytes = {}",
        cfg.p2p.max_message_bytes
    );
    // The driver with the configured timeouts (engine run_engine), taken
    // through a few rounds by precommit timeouts: each round schedules
    // `timeout + delta * round`.
    let timeouts = bizra_node::engine::driver_timeouts(&cfg.consensus);
    let w = world();
    let mut d = Driver::new(
        w.genesis.clone(),
        w.head().clone(),
        Some(w.head_commit().clone()),
        None,
        None,
        timeouts,
    );
    let _ = d.start(NOW_MS);
    for round in 0..4 {
        let t = Timeout {
            height: d.height(),
            round,
            kind: bizra_consensus::driver::TimeoutKind::Precommit,
        };
        for e in d
            .handle(NOW_MS, Input::Timeout(t))
            .expect("timeouts are never driver errors")
        {
            if let Effect::ScheduleTimeout { after_ms, .. } = e {
                // engine/timers.rs schedule: `Instant::now() + Duration::from_millis(after_ms)`.
                let _ = std::time::Instant::now() + std::time::Duration::from_millis(after_ms);
            }
        }
    }
    Outcome::Accepted
}

fn failure(e: VerifyError) -> Outcome {
    match e {
        VerifyError::Failed { .. } => Outcome::Rejected(format!("invalid (exit 1): {e}")),
        VerifyError::Malformed(m) => Outcome::Rejected(format!("bad input (exit 2): {m}")),
    }
}

/// A `wq_proof.json` checked against the world genesis (`check_wq_proof`).
pub fn fuzz_verify_wq_proof(data: &[u8]) -> Outcome {
    let w = world();
    match verify::check_wq_proof(data, &w.genesis_bytes) {
        Ok(_) => {
            let p: proof::WqProof = serde_json::from_slice(data).expect("an accepted proof parses");
            let hash = proof::unhex_hash(&p.block_hash).expect("an accepted proof has a hash");
            assert!(
                w.precommitted().contains(&(p.height, hash)),
                "accepted a proof for a block the world's validators never precommitted"
            );
            assert!(
                verify::verify_document(data, &w.genesis_bytes).is_ok(),
                "verify_document agrees"
            );
            Outcome::Accepted
        }
        Err(f) => failure(f),
    }
}

/// An `attestation.json` checked against the world genesis (`verify_attestation`).
pub fn fuzz_verify_attestation(data: &[u8]) -> Outcome {
    let w = world();
    match verify::verify_attestation(data, &w.genesis_bytes) {
        Ok(_) => {
            let d: proof::AttestationDoc = serde_json::from_slice(data).expect("an accepted document parses");
            let hash = proof::unhex_hash(&d.inclusion.block_hash).expect("an accepted document has a hash");
            let block = w
                .signed_block(d.inclusion.height, &hash)
                .expect("accepted an inclusion in a block the world's validators never precommitted");
            let payload = proof::unb64(&d.envelope.payload).expect("payload");
            assert!(
                block.attestations.iter().any(|e| e.payload == payload),
                "accepted an attestation that its block does not carry"
            );
            assert!(
                verify::verify_document(data, &w.genesis_bytes).is_ok(),
                "verify_document agrees"
            );
            Outcome::Accepted
        }
        Err(f) => failure(f),
    }
}
