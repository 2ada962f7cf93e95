//! Executing the driver's effects in order: `PersistOwn` (guard and WAL,
//! synced, before anything else), `Broadcast`, timeouts, proposals' values,
//! decisions (stored alone or with the rest of a synced range, then
//! metrics, pools, epochs, status and head), late precommits, evidence.

use super::gossip::{content_key, msg_kind, wire_bytes};
use super::{now_ms, Decision, Engine};
use crate::metrics::{ComponentLabels, Direction, ValidatorLabel};
use crate::pool::FinalizedKey;
use crate::state::HeadEvent;
use anyhow::Context as _;
use bizra_consensus::driver::{Effect, Input};
use bizra_consensus::{certificate, quorum};
use bizra_p2p::Topic;
use bizra_proto::{consensus_message::Msg, ConsensusMessage};
use bizra_storage::{WalEntry, WalKind};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Finalized heights between two prunes of the WAL.
const WAL_PRUNE_EVERY: u64 = 16;

impl Engine {
    pub(super) async fn execute(&mut self, fx: Vec<Effect>) -> anyhow::Result<()> {
        let mut queue: VecDeque<Effect> = fx.into();
        while let Some(e) = queue.pop_front() {
            match e {
                Effect::PersistOwn { position, msg } => {
                    // Blocks before anything we sign after them; what we
                    // received before it, in the same flush.
                    self.store_synced_batch()?;
                    self.write_received();
                    // Durable before anything else happens: guard, then WAL, both synced.
                    let entry = WalEntry {
                        height: position.height,
                        kind: WalKind::Own,
                        msg,
                    };
                    self.store.persist_own(position, &entry).context("sign guard and WAL")?;
                }
                Effect::Broadcast(msg) => self.publish(msg).await,
                Effect::ScheduleTimeout { timeout, after_ms } => self.schedule(timeout, after_ms),
                Effect::RequestValue { height, round } => {
                    if height != self.driver.height() {
                        continue; // a height a synced range has already passed
                    }
                    let attestations = self.payload_for_block();
                    let evidence = self.evidence_for_block();
                    let fx = self.driver.handle(
                        now_ms(),
                        Input::ProposeValue {
                            height,
                            round,
                            attestations,
                            evidence,
                        },
                    )?;
                    queue.extend(fx);
                }
                Effect::Decided {
                    block,
                    hash,
                    commit,
                    round,
                    state,
                } => {
                    let d = Decision {
                        block,
                        hash,
                        commit,
                        round,
                        state: *state,
                    };
                    if self.applying_synced {
                        // Stored with the rest of the range, in one write.
                        self.synced_batch.push(d);
                    } else {
                        self.on_decided(d)?;
                    }
                }
                Effect::CommitUpdated(c) => self.note_commit_update(c),
                Effect::Evidence(eq) => self.on_equivocation(eq).await,
                Effect::Kept | Effect::Known => {} // handled by the gossip path, which holds the bytes
                Effect::SyncNeeded { from, seen } => {
                    // Normal for a moment after each block; ask at most twice a second.
                    if self.last_status_ask.elapsed() >= Duration::from_millis(500) {
                        debug!(from, seen, "messages from a higher height: asking peers");
                        self.ask_status().await;
                    }
                }
            }
        }
        Ok(())
    }

    fn payload_for_block(&mut self) -> Vec<bizra_proto::Envelope> {
        self.pool.take_for_block(self.max_block_attestations)
    }

    /// Buffers a received message the driver kept at the current `height`
    /// for the WAL (see [`Engine::write_received`]).
    pub(super) fn keep_received(&mut self, height: u64, msg: ConsensusMessage) {
        let (h, msgs) = &mut self.wal_received;
        if *h != height {
            *h = height;
            msgs.clear();
        }
        msgs.push(msg);
    }

    /// Appends the buffered received messages to the WAL as one record,
    /// unsynced: the next flush (our next signature's, the next block's)
    /// makes them durable, as it did when each was its own sled insert (5 %
    /// of a node's CPU at 100 validators). Messages of a height decided
    /// since are dropped: a restart replays only the heights above it.
    pub(super) fn write_received(&mut self) {
        let (height, msgs) = &mut self.wal_received;
        if !msgs.is_empty() && *height >= self.driver.height() {
            if let Err(e) = self.store.wal_append_received(*height, msgs) {
                warn!("WAL append (received): {e}");
            }
        }
        msgs.clear(); // keeps its capacity for the next height's messages
    }

    /// Late precommits arrive one by one after the decision (dozens at 100
    /// validators); the grown certificate is written once, with the next
    /// block or status tick.
    fn note_commit_update(&mut self, c: bizra_proto::CommitCertificate) {
        if self.pending_commit.as_ref().is_none_or(|p| p.height <= c.height) {
            self.pending_commit = Some(c);
        }
    }

    /// Writes the certificate grown by late precommits, if any (unflushed:
    /// the caller's next flush makes it durable).
    pub(super) fn store_pending_commit(&mut self) {
        if let Some(c) = self.driver.take_commit_update() {
            self.note_commit_update(c);
        }
        if let Some(c) = self.pending_commit.take() {
            if let Err(e) = self.store.update_commit_unsynced(&c) {
                warn!("late precommits not stored: {e}");
            }
        }
    }

    fn on_decided(&mut self, d: Decision) -> anyhow::Result<()> {
        self.store_pending_commit();
        self.store
            .put_finalized(&d.block, &d.commit, &d.state.to_bytes())
            .context("store finalized block")?;
        self.after_stored(d)
    }

    /// Stores the synced blocks decided so far in one write (not flushed:
    /// see `on_sync_response`), then does for each what follows a decision.
    pub(super) fn store_synced_batch(&mut self) -> anyhow::Result<()> {
        let Some(last) = self.synced_batch.last() else {
            return Ok(());
        };
        let state = last.state.to_bytes();
        let batch = std::mem::take(&mut self.synced_batch);
        let items: Vec<_> = batch.iter().map(|d| (&d.block, &d.commit)).collect();
        self.store
            .put_finalized_range(&items, &state)
            .context("store synced blocks")?;
        for d in batch {
            self.after_stored(d)?;
        }
        Ok(())
    }

    /// What follows a stored decision: metrics, pool, epochs, status, head.
    fn after_stored(&mut self, d: Decision) -> anyhow::Result<()> {
        let Decision {
            block,
            hash,
            commit,
            round,
            state,
        } = d;
        let height = state.height;
        // Replay reads only entries at or above the next height, so older
        // ones are dead weight: drop them every WAL_PRUNE_EVERY heights
        // rather than paying the prune (and its anchor fsync) per height.
        if (height + 1).is_multiple_of(WAL_PRUNE_EVERY) && !self.applying_synced {
            if let Err(e) = self.store.wal_prune_below(height + 1) {
                warn!("WAL prune: {e}");
            }
        }
        let now = Instant::now();
        self.metrics()
            .finality_latency
            .observe(now.duration_since(self.height_started).as_secs_f64());
        if let Some(prev) = self.last_block_at {
            self.metrics()
                .block_interval
                .observe(now.duration_since(prev).as_secs_f64());
        }
        self.last_block_at = Some(now);
        self.height_started = now;
        self.metrics().consensus_height.set(height as i64);
        self.metrics().rounds_per_height.observe(round as f64 + 1.0);
        let tally = certificate::tally_trusted(&self.shared.genesis.members, &state.last_weights, &commit);
        self.metrics()
            .commit_weight_share_bps
            .set(quorum::share_bps(tally.signed_weight, tally.total_weight) as i64);
        self.published.clear();
        self.evidence_after_block(&block, &state);
        let members = &self.shared.genesis.members;
        self.pool.remove_finalized(
            block
                .attestations
                .iter()
                .map(|e| FinalizedKey::from_envelope(e, members)),
        );
        if !block.attestations.is_empty() {
            let finalized = crate::metrics::ResultLabel {
                result: "finalized".into(),
            };
            self.metrics()
                .attestations
                .get_or_create(&finalized)
                .inc_by(block.attestations.len() as u64);
        }
        let new_epoch = self.shared.remember_epoch(&state.weights, false);
        {
            let mut s = self.shared.status.write().expect("status");
            s.finalized_height = height;
            s.finalized_hash = hash;
            s.epoch = state.weights.epoch;
        }
        if new_epoch {
            info!(epoch = state.weights.epoch, "new epoch: weights recomputed");
            self.set_weight_metrics();
        }
        let header = block.header.clone().unwrap_or_default();
        debug!(height, round, hash = %hex::encode(&hash[..4]), "finalized");
        self.shared.publish_head(HeadEvent { height, hash, header });
        Ok(())
    }

    pub(super) fn set_weight_metrics(&self) {
        let Some(w) = self.shared.current_weights() else { return };
        for (i, m) in self.shared.genesis.members.iter().enumerate() {
            let v = m.id.clone();
            self.metrics()
                .wq_weight
                .get_or_create(&ValidatorLabel { validator: v.clone() })
                .set(w.weights[i] as f64);
            let label = ValidatorLabel { validator: v.clone() };
            self.metrics()
                .jailed
                .get_or_create(&label)
                .set(i64::from(w.is_jailed(i)));
            self.metrics()
                .jailed_until
                .get_or_create(&label)
                .set(w.jailed_until(i) as i64);
            let c = &w.components[i];
            for (name, val) in [("stake", c.stake), ("poi", c.poi), ("rep", c.rep)] {
                self.metrics()
                    .wq_weight_component
                    .get_or_create(&ComponentLabels {
                        validator: v.clone(),
                        component: name.into(),
                    })
                    .set(val as f64);
            }
        }
    }

    async fn publish(&mut self, mut msg: ConsensusMessage) {
        let content = content_key(&msg);
        msg.attempt = 0;
        // A re-send (ours again, or a vote we received and now relay in a
        // polka) needs bytes no peer has seen, or gossip drops it as a
        // duplicate. `attempt` starts at a random value per process, so two
        // validators re-sending the same vote do not collide either.
        let first_own_send = self.published.insert(content) && !self.verified.contains_key(&content);
        if !first_own_send {
            self.attempt = self.attempt.wrapping_add(1).max(1);
            msg.attempt = self.attempt;
        }
        let topic = match msg.msg {
            Some(Msg::Proposal(_)) => Topic::Proposals,
            _ => Topic::Votes,
        };
        let data = wire_bytes(&self.shared.genesis, &msg);
        if let Some(kind) = msg_kind(&msg) {
            self.metrics()
                .message(kind, Direction::Sent, data.len(), self.p2p.connected_peers());
        }
        if let Err(e) = self.p2p.publish(topic, data).await {
            if e.is_benign() {
                debug!("publish: {e}");
            } else {
                warn!("publish: {e}");
            }
        }
    }
}
