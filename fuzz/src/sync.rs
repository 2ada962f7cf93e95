//! Sync targets: a peer's `SyncRequest` served from the world chain
//! (`engine::sync_server::serve`), and a peer's `SyncResponse` taken as the
//! engine takes it (`engine::sync`: the status check, then a range's shape,
//! signatures and blocks through a driver at genesis).

use crate::driver_byzantine::Audit;
use crate::world::{world, CHAIN_LEN, MAX_MESSAGE_BYTES, NOW_MS};
use crate::{rejected, Outcome};
use bizra_consensus::chain::ChainState;
use bizra_node::engine::sync::{self, BATCH};
use bizra_node::engine::sync_server;
use bizra_proto::{sync_request::Req, sync_response::Resp, SyncRequest, SyncResponse};
use prost::Message;

/// A `SyncRequest` frame payload, served from the world chain (engine
/// `sync_server::serve`, at the default frame cap): a served range holds
/// the stored blocks, up to the head, and fits one frame.
pub fn fuzz_sync_request(data: &[u8]) -> Outcome {
    let Ok(req) = SyncRequest::decode(data) else {
        return rejected("malformed sync request");
    };
    let w = world();
    let head = w.head();
    let resp = sync_server::serve(
        &w.genesis,
        head.height,
        head.last_hash,
        &w.store,
        MAX_MESSAGE_BYTES,
        &req,
    );
    if let (Some(Req::Blocks(r)), Some(Resp::Blocks(range))) = (&req.req, &resp.resp) {
        let max = r.max_blocks.clamp(1, BATCH) as usize;
        let from = r.from_height.max(1);
        assert!(range.blocks.len() <= max);
        for (i, fb) in range.blocks.iter().enumerate() {
            let h = from + i as u64;
            let (wb, _, wc) = &w.blocks[(h - 1) as usize];
            assert_eq!(
                (fb.block.as_ref(), fb.commit.as_ref()),
                (Some(wb), Some(wc)),
                "served block {h} is the stored one"
            );
        }
        let expected = (CHAIN_LEN + 1).saturating_sub(from).min(max as u64);
        assert_eq!(range.blocks.len() as u64, expected, "a range is served up to the head");
    }
    assert!(resp.encoded_len() <= MAX_MESSAGE_BYTES, "a served range fits one frame");
    match resp.resp {
        Some(Resp::Error(e)) => Outcome::Ignored(e),
        _ => Outcome::Accepted,
    }
}

/// A `SyncResponse` frame payload, handled as engine `on_sync_response` does
/// for a node at genesis that asked for the range from height 1: a foreign
/// status is penalized (`sync::is_foreign_status`); a range must have the
/// shape asked for (`sync::check_shape`), then each block goes to a driver
/// at genesis as `Input::SyncedBlock` until the first error.
pub fn fuzz_sync_response(data: &[u8]) -> Outcome {
    let Ok(resp) = SyncResponse::decode(data) else {
        return rejected("malformed sync response");
    };
    let w = world();
    match resp.resp {
        Some(Resp::Status(s)) => {
            if sync::is_foreign_status(&w.genesis, &s) {
                rejected("peer is on another chain or genesis")
            } else {
                Outcome::Accepted
            }
        }
        Some(Resp::Blocks(range)) => {
            let mut d = w.genesis_driver();
            let mut audit = Audit::new(w, ChainState::genesis(&w.genesis), None);
            // The engine's own steps (engine::sync): the shape of the answer
            // to its request, signatures, then the driver, in order.
            if let Err(e) = sync::check_shape(&range.blocks, d.height(), BATCH) {
                return rejected(format!("bad block range: {}", e.reason));
            }
            let (checked, bad_sig) = sync::check_range(&w.genesis, range.blocks, d.height(), 2);
            let (fx, _, refused) = sync::apply_range(&mut d, NOW_MS, checked);
            audit.effects(&mut d, fx);
            let outcome = match refused.or(bad_sig) {
                Some(e) => rejected(format!("invalid synced block: {}", e.reason)),
                None => Outcome::Accepted,
            };
            for (i, (h, hash)) in audit.decided.iter().enumerate() {
                let (wb, wh, _) = w
                    .blocks
                    .get((*h - 1) as usize)
                    .expect("a decided height of the world chain");
                assert_eq!(
                    hash, wh,
                    "a synced block must be the world's block: nobody else can certify one"
                );
                // Same hash, so same header and last commit; the attestation
                // envelopes are bound only by (payload, signature): keyid and
                // payloadType can differ (known bug, docs/HOSTILE-INPUT.md).
                let mut got = audit.blocks[i].clone();
                for (e, we) in got.attestations.iter_mut().zip(&wb.attestations) {
                    e.payload_type.clone_from(&we.payload_type);
                    for (s, ws) in e.signatures.iter_mut().zip(&we.signatures) {
                        s.keyid.clone_from(&ws.keyid);
                    }
                }
                assert_eq!(
                    &got, wb,
                    "a synced block differs from the certified one beyond keyid/payloadType"
                );
            }
            outcome
        }
        Some(Resp::Error(e)) => Outcome::Ignored(e),
        None => rejected("empty sync response"),
    }
}
