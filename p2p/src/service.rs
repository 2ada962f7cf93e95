//! The swarm task: owns the libp2p `Swarm`, executes [`Command`]s from the
//! handles and turns swarm events into [`P2pEvent`]s.

use std::{
    collections::{HashMap, VecDeque},
    io,
    sync::{atomic::Ordering, Arc},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use libp2p::{
    allow_block_list, connection_limits,
    gossipsub::{self, IdentityTransform, MessageAcceptance, PublishError, TopicHash},
    identify,
    multiaddr::Protocol,
    noise, ping,
    request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel},
    swarm::{
        dial_opts::{DialOpts, PeerCondition},
        DialError, NetworkBehaviour, SwarmEvent,
    },
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
    gossip, lock, Command, P2pConfig, P2pError, P2pEvent, ResponseToken, Shared, Topic, Validation, BAN_DURATION,
    BAN_THRESHOLD, IDLE_CONNECTION_TIMEOUT, REQUEST_TIMEOUT,
};

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

/// A configured peer that is kept connected.
struct Configured {
    /// Its address without the trailing `/p2p/…`.
    addr: Multiaddr,
    needs_dns: bool,
    backoff: Duration,
    next_dial: Instant,
    dialing: bool,
    connected_since: Option<Instant>,
    /// Failed name resolutions in a row (for logging with backoff).
    resolve_failures: u32,
}

/// Strikes against a peer; one is forgiven per [`STRIKE_FORGIVE`].
struct Strikes {
    count: u32,
    /// Start of the current forgiveness period.
    since: Instant,
}

impl Strikes {
    fn new(now: Instant) -> Self {
        Self { count: 0, since: now }
    }

    /// Applies the forgiveness due at `now` and returns the count.
    fn settle(&mut self, now: Instant) -> u32 {
        let periods = now.duration_since(self.since).as_secs() / STRIKE_FORGIVE.as_secs();
        match u32::try_from(periods) {
            Ok(periods) if periods < self.count => {
                self.count -= periods;
                self.since += STRIKE_FORGIVE * periods;
            }
            _ => {
                self.count = 0;
                self.since = now;
            }
        }
        self.count
    }
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

/// Splits `/…/p2p/PEERID` into the dialable address and the peer id.
fn split_peer_addr(addr: &Multiaddr) -> Result<(Multiaddr, PeerId), P2pError> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) if !base.is_empty() => Ok((base, peer)),
        _ => Err(P2pError::Config(format!(
            "peer address {addr} must be /ip4|dns4/…/tcp/PORT/p2p/PEERID"
        ))),
    }
}

fn is_dns(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_)))
}

/// The resolver for peer names: hickory, in Rust, reading `/etc/resolv.conf`
/// (e.g. Docker's embedded DNS, 127.0.0.11, which knows Swarm service names)
/// and `/etc/hosts`. glibc's resolver is not used: a static binary in a
/// FROM-scratch image has no NSS. Answers are cached for at most a second, so
/// a peer rescheduled on another IP is found again at the next redial
/// (Docker's DNS gives its answers a 600 s TTL). Without a readable
/// `/etc/resolv.conf` only `/etc/hosts` is used: never a public server.
pub(crate) fn peer_resolver() -> Resolver {
    use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
    use hickory_resolver::name_server::TokioConnectionProvider;
    let builder = match hickory_resolver::TokioResolver::builder_tokio() {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %e, "cannot read /etc/resolv.conf: peer names resolve from /etc/hosts only");
            hickory_resolver::TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::new()),
                TokioConnectionProvider::default(),
            )
        }
    };
    with_peer_options(builder)
}

fn with_peer_options(
    mut builder: hickory_resolver::ResolverBuilder<hickory_resolver::name_server::TokioConnectionProvider>,
) -> Resolver {
    let opts = builder.options_mut();
    opts.positive_max_ttl = Some(Duration::from_secs(1));
    opts.negative_max_ttl = Some(Duration::from_secs(1));
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    Arc::new(builder.build())
}

pub(crate) type Resolver = Arc<hickory_resolver::TokioResolver>;

/// Resolves `/dns*/NAME/tcp/PORT` to `/ip*/ADDR/tcp/PORT` addresses.
async fn resolve(resolver: &Resolver, addr: Multiaddr) -> Result<Vec<Multiaddr>, String> {
    let (mut host, mut port, mut family) = (None, None, None);
    for p in addr.iter() {
        match p {
            Protocol::Dns(h) => host = Some(h.to_string()),
            Protocol::Dns4(h) => (host, family) = (Some(h.to_string()), Some(true)),
            Protocol::Dns6(h) => (host, family) = (Some(h.to_string()), Some(false)),
            Protocol::Tcp(p) => port = Some(p),
            other => return Err(format!("unsupported protocol {other} in {addr}")),
        }
    }
    let (Some(host), Some(port)) = (host, port) else {
        return Err(format!("{addr} has no host or port"));
    };
    let found = resolver
        .lookup_ip(host.as_str())
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?;
    let addrs: Vec<Multiaddr> = found
        .iter()
        .filter(|ip| family.is_none_or(|v4| ip.is_ipv4() == v4))
        .map(|ip| Multiaddr::from(ip).with(Protocol::Tcp(port)))
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolved to no usable address"));
    }
    Ok(addrs)
}

/// Up to a quarter of `d` of jitter, so that peers do not redial in lockstep.
fn jittered(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

fn is_invalid_data(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
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
            flood: cfg.direct || cfg.validator_count <= gossip::FLOOD_MAX_VALIDATORS,
            protocol_version: protocol_version(&cfg.chain_id),
            configured,
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
        let (params, thresholds) = gossip::scoring(&cfg.chain_id);
        gossipsub
            .with_peer_score(params, thresholds)
            .map_err(|e| P2pError::Config(format!("gossipsub scoring: {e}")))?;

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

    // ---- strikes and bans ----

    fn strike(&mut self, peer: PeerId, reason: &str) {
        if peer == self.shared.local_peer_id || self.banned.contains_key(&peer) {
            return;
        }
        let now = Instant::now();
        let strikes = self.strikes.entry(peer).or_insert_with(|| Strikes::new(now));
        strikes.settle(now);
        strikes.count += 1;
        let count = strikes.count;
        debug!(%peer, reason, strikes = count, "peer strike");
        if count >= BAN_THRESHOLD {
            self.ban(peer, reason);
        }
    }

    fn ban(&mut self, peer: PeerId, reason: &str) {
        warn!(%peer, reason, minutes = BAN_DURATION.as_secs() / 60, "banning misbehaving peer");
        self.strikes.remove(&peer);
        self.banned.insert(peer, Instant::now() + BAN_DURATION);
        let behaviour = self.swarm.behaviour_mut();
        behaviour.gossipsub.remove_explicit_peer(&peer);
        // Closes every connection to the peer and refuses new ones.
        behaviour.block_list.block_peer(peer);
    }

    // ---- housekeeping ----

    fn on_tick(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            info!(%peer, "ban expired");
            self.banned.remove(&peer);
            let behaviour = self.swarm.behaviour_mut();
            behaviour.block_list.unblock_peer(peer);
            if let Some(c) = self.configured.get_mut(&peer) {
                c.backoff = INITIAL_BACKOFF;
                c.next_dial = now;
            }
        }
        if now.duration_since(self.last_cleanup) >= CLEANUP_PERIOD {
            self.last_cleanup = now;
            self.pending_in.retain(|_, channel| channel.is_open());
            self.strikes.retain(|_, s| s.settle(now) > 0);
        }
        self.dial_due();
    }

    /// Dials the configured peers that are disconnected and due.
    fn dial_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .configured
            .iter()
            .filter(|(peer, c)| {
                !c.dialing && c.next_dial <= now && !self.banned.contains_key(peer) && !self.swarm.is_connected(peer)
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in due {
            let Some(c) = self.configured.get_mut(&peer) else {
                continue;
            };
            c.dialing = true;
            if c.needs_dns {
                let tx = self.resolved_tx.clone();
                let addr = c.addr.clone();
                let resolver = self.resolver.clone();
                tokio::spawn(async move {
                    let result = tokio::time::timeout(SETUP_TIMEOUT, resolve(&resolver, addr))
                        .await
                        .unwrap_or_else(|_| Err("DNS lookup timed out".into()));
                    let _ = tx.send((peer, result));
                });
            } else {
                let addr = c.addr.clone();
                self.dial(peer, vec![addr]);
            }
        }
    }

    fn on_resolved(&mut self, peer: PeerId, result: Result<Vec<Multiaddr>, String>) {
        match result {
            Ok(addrs) if !self.banned.contains_key(&peer) && !self.swarm.is_connected(&peer) => {
                if let Some(c) = self.configured.get_mut(&peer) {
                    if c.resolve_failures > 0 {
                        info!(%peer, name = %c.addr, ?addrs, "peer name resolves again");
                    }
                    c.resolve_failures = 0;
                }
                for addr in &addrs {
                    self.swarm.add_peer_address(peer, addr.clone());
                }
                self.dial(peer, addrs);
            }
            Ok(_) => {
                if let Some(c) = self.configured.get_mut(&peer) {
                    c.dialing = false;
                }
            }
            Err(error) => {
                if let Some(c) = self.configured.get_mut(&peer) {
                    c.resolve_failures = c.resolve_failures.saturating_add(1);
                    // Logged at the 1st, 2nd, 4th, 8th... failure in a row:
                    // a wrong name stays visible without flooding the log.
                    if c.resolve_failures.is_power_of_two() {
                        warn!(
                            %peer,
                            name = %c.addr,
                            failures = c.resolve_failures,
                            retry_in = ?c.backoff,
                            "cannot resolve peer name; retrying with backoff: {error}"
                        );
                    }
                }
                self.schedule_redial(peer);
            }
        }
    }

    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => trace!(%peer, "dialing"),
            Err(DialError::DialPeerConditionFalse(_)) => {
                // Connected or being dialled already (e.g. by gossipsub); the
                // outcome of that dial reschedules us.
                if let Some(c) = self.configured.get_mut(&peer) {
                    c.dialing = false;
                    c.next_dial = Instant::now() + c.backoff;
                }
            }
            Err(e) => {
                debug!(%peer, error = %e, "dial failed");
                self.schedule_redial(peer);
            }
        }
    }

    fn schedule_redial(&mut self, peer: PeerId) {
        let Some(c) = self.configured.get_mut(&peer) else {
            return;
        };
        let now = Instant::now();
        if let Some(since) = c.connected_since.take() {
            if now.duration_since(since) >= STABLE_CONNECTION {
                c.backoff = INITIAL_BACKOFF;
            }
        }
        c.dialing = false;
        c.next_dial = now + jittered(c.backoff);
        c.backoff = (c.backoff * 2).min(MAX_BACKOFF);
    }

    // ---- swarm events ----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossipsub(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => self.on_ping(event),
            SwarmEvent::Behaviour(BehaviourEvent::BlockList(never))
            | SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connection established");
                if let Some(c) = self.configured.get_mut(&peer_id) {
                    c.dialing = false;
                    c.connected_since.get_or_insert_with(Instant::now);
                }
                if num_established.get() == 1 {
                    if self.flood {
                        self.swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer_id);
                    }
                    self.set_connected(peer_id, true);
                    self.emit(P2pEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                debug!(peer = %peer_id, ?cause, "connection closed");
                if num_established == 0 {
                    if self.flood {
                        self.swarm.behaviour_mut().gossipsub.remove_explicit_peer(&peer_id);
                    }
                    self.set_connected(peer_id, false);
                    self.schedule_redial(peer_id);
                    self.emit(P2pEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        self.schedule_redial(peer);
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr, error, ..
            } => {
                debug!(from = %send_back_addr, %error, "incoming connection failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                lock(&self.shared.listen_addrs).push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                lock(&self.shared.listen_addrs).retain(|a| a != &address);
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                warn!(?reason, "listener closed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                warn!(%error, "listener error");
            }
            _ => {}
        }
    }

    fn set_connected(&mut self, peer: PeerId, connected: bool) {
        let mut peers = lock(&self.shared.peers);
        if connected {
            peers.insert(peer);
        } else {
            peers.remove(&peer);
        }
        self.shared.connected.store(peers.len(), Ordering::Relaxed);
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let Some(topic) = self.topics.get(&message.topic).copied() else {
                    self.report(&message_id, &propagation_source, MessageAcceptance::Ignore);
                    return;
                };
                if message.data.len() > self.max_message_bytes {
                    debug!(peer = %propagation_source, size = message.data.len(), "oversized gossip message");
                    self.report(&message_id, &propagation_source, MessageAcceptance::Reject);
                    self.strike(propagation_source, "oversized gossip message");
                    return;
                }
                self.emit_gossip(topic, message.data, propagation_source, message_id);
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                debug!(peer = %peer_id, %topic, "peer subscribed");
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                debug!(peer = %peer_id, %topic, "peer unsubscribed");
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                debug!(peer = %peer_id, "peer does not support gossipsub");
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                debug!(peer = %peer_id, ?failed_messages, "slow gossip peer");
            }
        }
    }

    fn on_sync(&mut self, event: request_response::Event<InboundRequest, bizra_proto::SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    if self.banned.contains_key(&peer) {
                        return;
                    }
                    let request = match request {
                        InboundRequest::Request(request) => request,
                        InboundRequest::Malformed(error) => {
                            debug!(%peer, error, "malformed sync request");
                            self.strike(peer, "malformed sync request");
                            let response = bizra_proto::SyncResponse {
                                resp: Some(bizra_proto::sync_response::Resp::Error(error)),
                            };
                            let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                            return;
                        }
                    };
                    let token = self.next_token;
                    self.next_token += 1;
                    self.pending_in.insert(token, channel);
                    let event = P2pEvent::SyncRequest {
                        peer,
                        request,
                        channel: ResponseToken(token),
                    };
                    match &self.sync_requests {
                        None => self.emit(event),
                        Some(tx) => {
                            if tx.try_send(event).is_err() {
                                // Busy (or the server is gone): say so now
                                // rather than hold the stream open.
                                if let Some(channel) = self.pending_in.remove(&token) {
                                    let response = bizra_proto::SyncResponse {
                                        resp: Some(bizra_proto::sync_response::Resp::Error("busy".into())),
                                    };
                                    let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
                                }
                            }
                        }
                    }
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(request_id) = self.pending_out.remove(&request_id) {
                        self.emit(P2pEvent::SyncResponse {
                            peer,
                            request_id,
                            response,
                        });
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                if matches!(&error, request_response::OutboundFailure::Io(e) if is_invalid_data(e)) {
                    self.strike(peer, "invalid sync response");
                }
                if let Some(request_id) = self.pending_out.remove(&request_id) {
                    self.emit(P2pEvent::SyncFailure {
                        peer,
                        request_id,
                        error: error.to_string(),
                    });
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound sync request failed");
                if matches!(&error, request_response::InboundFailure::Io(e) if is_invalid_data(e)) {
                    self.strike(peer, "invalid sync request");
                }
            }
            request_response::Event::ResponseSent { peer, .. } => {
                trace!(%peer, "sync response sent");
            }
        }
    }

    /// Closes a connection whose liveness ping failed (not one whose peer
    /// does not speak ping); a configured peer is then redialled, with its
    /// name resolved again.
    fn on_ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(_) | Err(ping::Failure::Unsupported) => {}
            Err(e) => {
                debug!(peer = %event.peer, error = %e, "ping failed; closing the connection");
                self.swarm.close_connection(event.connection);
            }
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            if info.protocol_version != self.protocol_version {
                warn!(
                    peer = %peer_id,
                    theirs = info.protocol_version,
                    ours = self.protocol_version,
                    "peer is on another chain or protocol version, disconnecting"
                );
                let _ = self.swarm.disconnect_peer_id(peer_id);
            } else {
                trace!(peer = %peer_id, agent = info.agent_version, "identified peer");
            }
        }
    }
}

fn protocol_version(chain_id: &str) -> String {
    format!("/bizra/{chain_id}/1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_peer_addr_requires_peer_id() {
        let peer = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/9000/p2p/{peer}").parse().unwrap();
        let (base, got) = split_peer_addr(&addr).unwrap();
        assert_eq!(got, peer);
        assert_eq!(base, "/ip4/127.0.0.1/tcp/9000".parse::<Multiaddr>().unwrap());
        assert!(!is_dns(&base));
        assert!(split_peer_addr(&"/ip4/127.0.0.1/tcp/9000".parse().unwrap()).is_err());
        assert!(split_peer_addr(&format!("/p2p/{peer}").parse().unwrap()).is_err());
        let dns: Multiaddr = format!("/dns4/node1/tcp/9000/p2p/{peer}").parse().unwrap();
        assert!(is_dns(&split_peer_addr(&dns).unwrap().0));
    }

    #[tokio::test]
    async fn resolves_localhost() {
        let r = peer_resolver();
        let addrs = resolve(&r, "/dns4/localhost/tcp/4001".parse().unwrap()).await.unwrap();
        assert!(addrs.contains(&"/ip4/127.0.0.1/tcp/4001".parse().unwrap()), "{addrs:?}");
        assert!(resolve(&r, "/dns4/localhost/udp/1".parse().unwrap()).await.is_err());
        // A name no server answers for is an error, not a hang (bounded by the
        // resolver's timeout). The only name server is a loopback port with
        // nothing behind it: tests send no traffic off this machine.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = hickory_resolver::config::ResolverConfig::from_parts(
            None,
            vec![],
            hickory_resolver::config::NameServerConfigGroup::from_ips_clear(
                &["127.0.0.1".parse().unwrap()],
                port,
                true,
            ),
        );
        let r = with_peer_options(hickory_resolver::TokioResolver::builder_with_config(
            cfg,
            hickory_resolver::name_server::TokioConnectionProvider::default(),
        ));
        let bad = tokio::time::timeout(
            Duration::from_secs(10),
            resolve(&r, "/dns4/no-such-bizra-peer.invalid/tcp/1".parse().unwrap()),
        )
        .await
        .expect("answers within its timeout");
        assert!(bad.is_err(), "{bad:?}");
    }

    #[test]
    fn strikes_are_forgiven_over_time() {
        let now = Instant::now();
        let mut s = Strikes { count: 5, since: now };
        assert_eq!(s.settle(now + STRIKE_FORGIVE / 2), 5);
        assert_eq!(s.settle(now + STRIKE_FORGIVE * 2), 3);
        assert_eq!(s.settle(now + STRIKE_FORGIVE * 2 + STRIKE_FORGIVE / 2), 3);
        assert_eq!(s.settle(now + STRIKE_FORGIVE * 20), 0);
    }
}
