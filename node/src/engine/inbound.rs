//! What reaches the engine: p2p events (gossip, checked by `gossip.rs`;
//! sync requests, responses and failures; peers coming and going) and API
//! requests (attestation submissions, gossiped in batches).

use super::gossip::{self, input_height, Then};
use super::{now_ms, sync_server, Engine};
use crate::admission;
use crate::metrics::Direction;
use crate::state::EngineRequest;
use bizra_consensus::driver::{Effect, Input};
use bizra_p2p::{P2pEvent, Topic, Validation};
use bizra_proto::{sync_request::Req, ConsensusMessage, StatusRequest};
use std::time::Instant;
use tracing::{debug, info, warn};

/// Bound on [`Engine::verified`]: a height has about 3 messages per validator
/// per round.
const MAX_VERIFIED: usize = 65_536;

impl Engine {
    pub(super) async fn on_request(&mut self, req: EngineRequest) -> anyhow::Result<()> {
        match req {
            EngineRequest::SubmitAttestation {
                envelope,
                checked,
                reply,
            } => {
                let result = admission::admit_checked(self.store.as_ref(), &mut self.pool, *checked, &envelope);
                match &result {
                    Ok(id) => {
                        self.metrics().attestation("accepted");
                        debug!(%id, "attestation accepted");
                        if let Some(batch) = self.att_outbox.push(envelope, Instant::now()) {
                            self.publish_attestations(batch).await;
                        }
                    }
                    Err(e) => {
                        self.metrics().attestation("rejected");
                        debug!("attestation refused: {e}");
                    }
                }
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    async fn publish_attestations(&mut self, batch: Vec<u8>) {
        if let Err(e) = self.p2p.publish(Topic::Attestations, batch).await {
            debug!("publish attestations: {e}");
        }
    }

    /// Gossips the attestations waiting in the outbox.
    pub(super) async fn flush_attestations(&mut self) -> anyhow::Result<()> {
        if let Some(batch) = self.att_outbox.take() {
            self.publish_attestations(batch).await;
        }
        Ok(())
    }

    pub(super) async fn on_p2p(&mut self, ev: P2pEvent) -> anyhow::Result<()> {
        match ev {
            P2pEvent::Gossip {
                topic: Topic::Attestations,
                data,
                source,
                id,
            } => {
                let g = self.shared.genesis.clone();
                let (verdict, batch) =
                    gossip::check_attestation_batch(&g, self.store.as_ref(), &mut self.pool, &data, now_ms());
                match batch {
                    admission::BatchVerdict::Accept { admitted } => {
                        self.metrics().attestations_by("gossip_accepted", admitted as u64);
                    }
                    admission::BatchVerdict::Ignore { .. } => {}
                    admission::BatchVerdict::Reject { admitted, reason } => {
                        self.metrics().attestations_by("gossip_accepted", admitted as u64);
                        self.metrics().attestation("gossip_rejected");
                        debug!(%source, "attestation batch rejected: {reason}");
                    }
                }
                self.p2p.report_validation(id, source, verdict);
            }
            P2pEvent::Gossip {
                topic: Topic::Evidence,
                data,
                source,
                id,
            } => {
                let verdict = self.on_evidence_gossip(&data);
                self.p2p.report_validation(id, source, verdict);
            }
            P2pEvent::Gossip {
                topic,
                data,
                source,
                id,
            } => {
                let (verdict, input) = self.check_gossip_once(topic, &data);
                let verdict = match verdict {
                    Validation::Accept if !self.relay_consensus => Validation::Ignore,
                    v => v,
                };
                self.p2p.report_validation(id, source, verdict);
                if let Some((input, msg, key)) = input {
                    let height = input_height(&input).unwrap_or(0);
                    let current = height == self.driver.height();
                    let fx = self.driver.handle(now_ms(), input)?;
                    if fx.contains(&Effect::Known) && self.verified.len() < MAX_VERIFIED {
                        // Already held (a late precommit the certificate
                        // carried, say): copies need no second check either.
                        self.verified.insert(key, 1);
                    }
                    if fx.contains(&Effect::Kept) {
                        // Only what the driver kept (its quotas bound it), so
                        // a validator signing far-future or far-round messages
                        // cannot grow the WAL; and only kept content skips
                        // verification when re-sent (a vote dropped by the
                        // round window is delivered when it comes again).
                        if self.verified.len() < MAX_VERIFIED {
                            self.verified.insert(key, 1);
                        }
                        // The WAL holds what a restart at this height needs:
                        // messages of this height (future ones come again).
                        if current {
                            self.keep_received(height, msg);
                        }
                    }
                    self.execute(fx).await?;
                }
            }
            P2pEvent::SyncRequest { peer, request, channel } => {
                let resp =
                    sync_server::serve_shared(&self.shared, self.store.as_ref(), self.max_message_bytes, &request);
                debug!(%peer, "served sync request");
                self.p2p.respond(channel, resp);
            }
            P2pEvent::SyncResponse {
                peer,
                request_id,
                response,
            } => self.on_sync_response(peer, request_id, response).await?,
            P2pEvent::SyncFailure {
                peer,
                request_id,
                error,
            } => {
                debug!(%peer, request_id, "sync request failed: {error}");
                if self.sync.take_inflight(&peer, request_id).is_some() {
                    // It claimed blocks it did not serve: ask someone else.
                    let ours = self.shared.status().finalized_height;
                    self.sync.failed(&peer, ours);
                }
            }
            P2pEvent::PeerConnected(peer) => {
                info!(%peer, "peer connected");
                self.request(peer, Req::Status(StatusRequest {})).await;
            }
            P2pEvent::PeerDisconnected(peer) => {
                info!(%peer, "peer disconnected");
                self.sync.forget(&peer);
            }
        }
        Ok(())
    }

    /// [`gossip::check_consensus_gossip`] on the engine's driver, store,
    /// pool and forwarded copies, and what follows its verdict: the
    /// counters, a rate-limited warning for a refused proposal payload, one
    /// more copy of a re-sent content. Returns the verdict and what to show
    /// the driver.
    fn check_gossip_once(
        &mut self,
        topic: Topic,
        data: &[u8],
    ) -> (Validation, Option<(Input, ConsensusMessage, [u8; 32])>) {
        if self.verified_height != self.driver.height() {
            self.verified.clear();
            self.verified_height = self.driver.height();
        }
        let view = gossip::GossipView {
            driver: &self.driver,
            genesis: &self.shared.genesis,
            store: self.store.as_ref(),
            pool: &self.pool,
            forwarded: &self.verified,
        };
        let check = gossip::check_consensus_gossip(&view, &mut self.payloads_verified, topic, data);
        if let Some(kind) = check.received {
            self.metrics().message(kind, Direction::Received, data.len(), 1);
        }
        if let Some((kind, result)) = check.counted {
            self.metrics().vote(kind, result);
        }
        let input = match check.then {
            Then::Drop => None,
            Then::Resent(key) => {
                if let Some(copies) = self.verified.get_mut(&key) {
                    *copies = copies.saturating_add(1);
                }
                None
            }
            Then::PayloadRefused { proposer, error } => {
                if let Some(suppressed) = self.logs.allow("proposal_refused", Instant::now()) {
                    warn!(%proposer, suppressed, "proposal refused: {error}");
                }
                None
            }
            Then::Deliver { input, msg, key } => Some((input, msg, key)),
        };
        (check.verdict, input)
    }
}
