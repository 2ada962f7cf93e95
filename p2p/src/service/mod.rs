//! The swarm task: owns the libp2p `Swarm`, executes [`Command`]s from the
//! handles and turns swarm events into [`P2pEvent`]s.
//!
//! Here: the task's state, its start-up, its loop, the events it sends to
//! the node and the commands it executes. `peers` keeps the configured
//! peers connected and bans misbehaving ones; `swarm_events` handles what
//! the swarm reports.

use std::{
    collections::{HashMap, VecDeque},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use futures::StreamExt;
use libp2p::{
    allow_block_list, connection_limits,
    gossipsub::{self, IdentityTransform, MessageAcceptance, PublishError, TopicHash},
    identify,
    multiaddr::Protocol,
    noise, ping,
    request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel},
    swarm::{ConnectionId, NetworkBehaviour, SwarmEvent},
    tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder,
};
use prost::Message as _;
use tokio::{
    sync::mpsc::{self, error::TrySendError},
    time::{Instant, MissedTickBehavior},
};
use tracing::{debug, info, trace, warn};

use crate::{
    codec::{InboundRequest, SyncCodec, SYNC_PROTOCOL},
    gossip, lock, Command, P2pConfig, P2pError, P2pEvent, ResponseToken, Shared, Topic, Validation,
    IDLE_CONNECTION_TIMEOUT, REQUEST_TIMEOUT,
};

mod peers;
use peers::{is_dns, peer_resolver, split_peer_addr, Configured, Resolver, Strikes};
mod swarm_events;
#[cfg(test)]
mod tests;

/// First redial delay of a configured peer.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest redial delay of a configured peer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the redial backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
/// One strike is forgiven per this much time.
const STRIKE_FORGIVE: Duration = Duration::from_secs(60);
/// Non-gossip events queued while the event channel is full; beyond this
/// they are dropped.
const MAX_OUTBOX: usize = 65_536;
/// Period of the housekeeping tick (redials, unbans, cleanup).
const TICK: Duration = Duration::from_millis(250);
/// Period of the cleanup of expired response channels and strikes.
const CLEANUP_PERIOD: Duration = Duration::from_secs(5);
/// Period of the liveness ping on every connection.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// A connection whose ping is not answered within this is closed: a peer
/// whose address vanished without a reset (a rescheduled container, a
/// partition) would otherwise look connected until TCP gives up (minutes),
/// and nobody would redial it. Generous, so a CPU-starved peer (alpha-100 on
/// 2 cores) is not cut off.
const PING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a configured peer with a smaller peer id is given to dial us
/// before we dial it ourselves.
const DIAL_YIELD: Duration = Duration::from_secs(2);
/// Time allowed for the listener to come up and to resolve a DNS name.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

type GossipBehaviour = gossipsub::Behaviour<IdentityTransform, gossipsub::WhitelistSubscriptionFilter>;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    block_list: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: GossipBehaviour,
    sync: request_response::Behaviour<SyncCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

type Resolved = (PeerId, Result<Vec<Multiaddr>, String>);

pub(crate) struct Service {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<P2pEvent>,
    /// Non-gossip events waiting for room in `events`.
    outbox: VecDeque<P2pEvent>,
    /// Inbound sync requests, when the node serves them apart from gossip.
    sync_requests: Option<mpsc::Sender<P2pEvent>>,
    topics: HashMap<TopicHash, Topic>,
    topic_hashes: HashMap<Topic, TopicHash>,
    max_message_bytes: usize,
    /// Small network: every connected peer is an explicit gossipsub peer.
    flood: bool,
    protocol_version: String,
    configured: HashMap<PeerId, Configured>,
    /// Open connections per peer, and whether we dialled each; a pair keeps
    /// one ([`Service::keep_one_connection`]).
    links: HashMap<PeerId, Vec<(ConnectionId, bool)>>,
    strikes: HashMap<PeerId, Strikes>,
    banned: HashMap<PeerId, Instant>,
    pending_out: HashMap<OutboundRequestId, u64>,
    pending_in: HashMap<u64, ResponseChannel<bizra_proto::SyncResponse>>,
    next_token: u64,
    resolved_tx: mpsc::UnboundedSender<Resolved>,
    /// Resolves configured peer names ([`peer_resolver`]).
    resolver: Resolver,
    resolved_rx: mpsc::UnboundedReceiver<Resolved>,
    last_cleanup: Instant,
}

impl Service {
    pub(crate) async fn new(
        cfg: P2pConfig,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::Sender<P2pEvent>,
    ) -> Result<Self, P2pError> {
        let local = shared.local_peer_id;
        let now = Instant::now();
        let mut configured = HashMap::new();
        for addr in &cfg.peers {
            let (base, peer) = split_peer_addr(addr)?;
            if peer == local {
                continue;
            }
            configured.insert(
                peer,
                Configured {
                    needs_dns: is_dns(&base),
                    addr: base,
                    backoff: INITIAL_BACKOFF,
                    // Both sides of a full mesh list each other: the side
                    // with the smaller peer id dials first, the other waits a
                    // moment for that connection instead of opening a second
                    // one (100 validators: 4,950 connections, not 9,900).
                    next_dial: if local < peer { now } else { now + DIAL_YIELD },
                    dialing: false,
                    connected_since: None,
                    resolve_failures: 0,
                },
            );
        }

        let topic_list = gossip::topics(&cfg.chain_id);
        let behaviour = Self::behaviour(&cfg, &topic_list)?;
        let mut swarm = SwarmBuilder::with_existing_identity(cfg.keypair.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| P2pError::Transport(e.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| P2pError::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();

        for (_, ident) in &topic_list {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(ident)
                .map_err(|e| P2pError::Config(format!("subscribing to {ident}: {e}")))?;
        }
        for (peer, c) in &configured {
            if !c.needs_dns {
                swarm.add_peer_address(*peer, c.addr.clone());
            }
        }
        let listen = Multiaddr::from(cfg.listen.ip()).with(Protocol::Tcp(cfg.listen.port()));
        swarm
            .listen_on(listen.clone())
            .map_err(|e| P2pError::Transport(format!("listen on {listen}: {e}")))?;

        let (resolved_tx, resolved_rx) = mpsc::unbounded_channel();
        let mut service = Service {
            swarm,
            shared,
            commands,
            events,
            outbox: VecDeque::new(),
            sync_requests: cfg.sync_requests.clone(),
            topics: topic_list.iter().map(|(t, ident)| (ident.hash(), *t)).collect(),
            topic_hashes: topic_list.iter().map(|(t, ident)| (*t, ident.hash())).collect(),
            max_message_bytes: cfg.max_message_bytes,
            flood: floods(&cfg),
            protocol_version: protocol_version(&cfg.chain_id),
            configured,
            links: HashMap::new(),
            strikes: HashMap::new(),
            banned: HashMap::new(),
            pending_out: HashMap::new(),
            pending_in: HashMap::new(),
            next_token: 0,
            resolved_tx,
            resolver: peer_resolver(),
            resolved_rx,
            last_cleanup: now,
        };
        service.await_listening(&listen).await?;
        info!(
            peer_id = %local,
            listen = ?lock(&service.shared.listen_addrs),
            peers = service.configured.len(),
            flood = service.flood,
            "p2p started"
        );
        service.dial_due();
        Ok(service)
    }

    fn behaviour(cfg: &P2pConfig, topic_list: &[(Topic, gossipsub::IdentTopic)]) -> Result<Behaviour, P2pError> {
        let filter = gossipsub::WhitelistSubscriptionFilter(topic_list.iter().map(|(_, t)| t.hash()).collect());
        let mut gossipsub = GossipBehaviour::new_with_subscription_filter(
            // No libp2p envelope signature: every payload on our topics is
            // already an Ed25519-signed vote, proposal or attestation, checked
            // before forwarding, and the message id is the hash of those
            // bytes. Signing and re-verifying the envelope on every copy was
            // 13% of node CPU (docs/BENCHMARKS.md, ADR 0006).
            gossipsub::MessageAuthenticity::Anonymous,
            gossip::config(cfg.max_message_bytes, cfg.validator_count)?,
            filter,
        )
        .map_err(|e| P2pError::Config(format!("gossipsub: {e}")))?;
        // Peer scoring only where there is a mesh. When every peer is an
        // explicit peer (flood and direct mode) no score term applies but P4
        // (rejected messages), and the application's strike ban (20 strikes)
        // acts before P4's graylist (21): the scorer would only keep a
        // delivery record per received message for 120 s (gossipsub's fixed
        // retention), ~4 MiB and a map update per message at 100 validators.
        // Without scores gossipsub drops a message that fails its own checks
        // (a source or signature field in anonymous mode) with a WARN line
        // instead of a P4 penalty: the node's log filter gives each such
        // call site of another crate 10 lines a minute (bizra-node,
        // engine/log_limit.rs), and the peer's strikes still come from the
        // messages that reach the node.
        if !floods(cfg) {
            let (params, thresholds) = gossip::scoring(&cfg.chain_id);
            gossipsub
                .with_peer_score(params, thresholds)
                .map_err(|e| P2pError::Config(format!("gossipsub scoring: {e}")))?;
        }

        let sync = request_response::Behaviour::with_codec(
            SyncCodec::new(cfg.max_message_bytes),
            [(SYNC_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
        );
        let identify = identify::Behaviour::new(
            identify::Config::new(protocol_version(&cfg.chain_id), cfg.keypair.public())
                .with_agent_version(format!("bizra-p2p/{}", env!("CARGO_PKG_VERSION"))),
        );
        let peer_limit = u32::try_from(cfg.validator_count)
            .unwrap_or(u32::MAX)
            .saturating_mul(2)
            .saturating_add(64);
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_pending_incoming(Some(128))
                .with_max_established_incoming(Some(peer_limit))
                .with_max_established_per_peer(Some(4)),
        );
        Ok(Behaviour {
            block_list: allow_block_list::Behaviour::default(),
            limits,
            gossipsub,
            sync,
            identify,
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
        })
    }

    /// Drives the swarm until the listener reports its first address.
    async fn await_listening(&mut self, listen: &Multiaddr) -> Result<(), P2pError> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| P2pError::Transport(format!("no listen address for {listen}")))?;
            match event {
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(P2pError::Transport(format!("listener on {listen} closed: {reason:?}")))
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(P2pError::Transport(format!("listener on {listen} failed: {error}")))
                }
                event @ SwarmEvent::NewListenAddr { .. } => {
                    self.on_swarm_event(event);
                    return Ok(());
                }
                event => self.on_swarm_event(event),
            }
        }
    }

    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // A second sender, so that a reserved permit does not borrow `self`.
        let events = self.events.clone();
        loop {
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown) | None => break,
                    Some(cmd) => self.on_command(cmd),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some((peer, result)) = self.resolved_rx.recv() => self.on_resolved(peer, result),
                _ = tick.tick() => self.on_tick(),
                permit = events.reserve(), if !self.outbox.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.outbox.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => self.outbox.clear(),
                },
            }
        }
        self.shared.connected.store(0, Ordering::Relaxed);
        lock(&self.shared.peers).clear();
        info!(peer_id = %self.shared.local_peer_id, "p2p stopped");
    }

    // ---- events to the node ----

    /// Queues a non-gossip event; it waits in the outbox if the channel is
    /// full.
    fn emit(&mut self, event: P2pEvent) {
        let event = if self.outbox.is_empty() {
            match self.events.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => return,
                Err(TrySendError::Full(event)) => event,
            }
        } else if self.events.is_closed() {
            return;
        } else {
            event
        };
        if self.outbox.len() >= MAX_OUTBOX {
            warn!(event = event.kind(), "p2p event queue full, dropping event");
            return;
        }
        self.outbox.push_back(event);
    }

    /// Hands a gossip message to the node, or drops it (and tells gossipsub
    /// to ignore it) when the node is not keeping up.
    fn emit_gossip(&mut self, topic: Topic, data: Vec<u8>, source: PeerId, id: gossipsub::MessageId) {
        let event = P2pEvent::Gossip {
            topic,
            data,
            source,
            id: id.clone(),
        };
        if self.outbox.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Closed(_)) => {
                    self.report(&id, &source, MessageAcceptance::Ignore);
                    return;
                }
            }
        }
        let dropped = self.shared.dropped_gossip.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            warn!(dropped, "p2p event channel full, dropping gossip messages");
        }
        self.report(&id, &source, MessageAcceptance::Ignore);
    }

    fn report(&mut self, id: &gossipsub::MessageId, source: &PeerId, acceptance: MessageAcceptance) -> bool {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acceptance)
    }

    // ---- commands ----

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { topic, data, reply } => {
                let _ = reply.send(self.publish(topic, data));
            }
            Command::Validate { id, source, validation } => {
                let acceptance = match validation {
                    Validation::Accept => MessageAcceptance::Accept,
                    Validation::Reject => MessageAcceptance::Reject,
                    Validation::Ignore => MessageAcceptance::Ignore,
                };
                if !self.report(&id, &source, acceptance) {
                    debug!(message_id = %id, "validation result for a message no longer cached");
                }
                if validation == Validation::Reject {
                    self.strike(source, "rejected gossip message");
                }
            }
            Command::Penalize { peer, reason } => self.strike(peer, &reason),
            Command::Request {
                peer,
                request,
                request_id,
            } => self.request(peer, request, request_id),
            Command::Respond { token, response } => self.respond(token, response),
            Command::TopicPeers { topic, reply } => {
                let hash = &self.topic_hashes[&topic];
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&hash))
                    .map(|(peer, _)| *peer)
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Shutdown => {}
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) -> Result<(), P2pError> {
        let size = data.len();
        let hash = self.topic_hashes[&topic].clone();
        match self.swarm.behaviour_mut().gossipsub.publish(hash, data) {
            Ok(id) => {
                trace!(?topic, message_id = %id, size, "published");
                Ok(())
            }
            Err(PublishError::Duplicate) => Err(P2pError::Duplicate),
            Err(PublishError::NoPeersSubscribedToTopic) => Err(P2pError::InsufficientPeers),
            Err(PublishError::MessageTooLarge) => Err(P2pError::MessageTooLarge {
                size,
                max: self.max_message_bytes,
            }),
            Err(e) => Err(P2pError::Publish(e.to_string())),
        }
    }

    fn request(&mut self, peer: PeerId, request: bizra_proto::SyncRequest, request_id: u64) {
        let refusal = if peer == self.shared.local_peer_id {
            Some("cannot send a sync request to self")
        } else if self.banned.contains_key(&peer) {
            Some("peer is banned")
        } else {
            None
        };
        if let Some(error) = refusal {
            self.emit(P2pEvent::SyncFailure {
                peer,
                request_id,
                error: error.into(),
            });
            return;
        }
        let addresses = match self.configured.get(&peer) {
            Some(c) if !c.needs_dns => vec![c.addr.clone()],
            _ => Vec::new(),
        };
        let outbound = self.swarm.behaviour_mut().sync.send_request_with_addresses(
            &peer,
            InboundRequest::Request(request),
            addresses,
        );
        self.pending_out.insert(outbound, request_id);
    }

    fn respond(&mut self, token: ResponseToken, response: bizra_proto::SyncResponse) {
        let Some(channel) = self.pending_in.remove(&token.0) else {
            debug!(?token, "response for an unknown or expired sync request");
            return;
        };
        let size = response.encoded_len();
        let response = if size > self.max_message_bytes {
            warn!(
                size,
                max = self.max_message_bytes,
                "sync response too large, sending an error instead"
            );
            bizra_proto::SyncResponse {
                resp: Some(bizra_proto::sync_response::Resp::Error(format!(
                    "response of {size} bytes exceeds the limit of {} bytes",
                    self.max_message_bytes
                ))),
            }
        } else {
            response
        };
        if self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response)
            .is_err()
        {
            debug!(
                ?token,
                "sync request timed out or its connection closed before the response"
            );
        }
    }
}

/// Whether every connected peer is made an explicit gossipsub peer (flood
/// and direct mode, see the crate docs) rather than a mesh being kept.
fn floods(cfg: &P2pConfig) -> bool {
    cfg.direct || cfg.validator_count <= gossip::FLOOD_MAX_VALIDATORS
}

fn protocol_version(chain_id: &str) -> String {
    format!("/bizra/{chain_id}/1")
}
