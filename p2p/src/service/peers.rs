//! The configured peers kept connected (each address resolved in Rust before
//! every dial, ADR 0011; redials with backoff and jitter) and the strikes
//! and bans of misbehaving peers.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use libp2p::{
    multiaddr::Protocol,
    swarm::{
        dial_opts::{DialOpts, PeerCondition},
        ConnectionId, DialError,
    },
    Multiaddr, PeerId,
};
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use super::{Service, CLEANUP_PERIOD, INITIAL_BACKOFF, MAX_BACKOFF, SETUP_TIMEOUT, STABLE_CONNECTION, STRIKE_FORGIVE};
use crate::{P2pError, BAN_DURATION, BAN_THRESHOLD};

/// The connections of one peer to close so that one remains, given all of
/// them in the order they were established, each with whether we dialled
/// it. The one kept is the oldest dialled by the side with the smaller peer
/// id, or, when there is none, the oldest: both ends apply the same rule to
/// the same pair of connections, so they close the same ones.
///
/// Two validators that list each other both dial when a handshake takes
/// longer than `DIAL_YIELD` (100 processes starting on 2 cores):
/// at 100 validators most pairs had two connections, each with its own
/// transport buffers and handlers (session 17).
pub(super) fn surplus_connections(links: &[(ConnectionId, bool)], we_are_smaller: bool) -> Vec<ConnectionId> {
    let keep = links
        .iter()
        .find(|(_, dialled)| *dialled == we_are_smaller)
        .or(links.first())
        .map(|(id, _)| *id);
    links.iter().map(|(id, _)| *id).filter(|id| Some(*id) != keep).collect()
}

/// A configured peer that is kept connected.
pub(super) struct Configured {
    /// Its address without the trailing `/p2p/…`.
    pub(super) addr: Multiaddr,
    pub(super) needs_dns: bool,
    pub(super) backoff: Duration,
    pub(super) next_dial: Instant,
    pub(super) dialing: bool,
    pub(super) connected_since: Option<Instant>,
    /// Failed name resolutions in a row (for logging with backoff).
    pub(super) resolve_failures: u32,
}

/// Strikes against a peer; one is forgiven per [`STRIKE_FORGIVE`].
pub(super) struct Strikes {
    pub(super) count: u32,
    /// Start of the current forgiveness period.
    pub(super) since: Instant,
}

impl Strikes {
    pub(super) fn new(now: Instant) -> Self {
        Self { count: 0, since: now }
    }

    /// Applies the forgiveness due at `now` and returns the count.
    pub(super) fn settle(&mut self, now: Instant) -> u32 {
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

/// Splits `/…/p2p/PEERID` into the dialable address and the peer id.
pub(super) fn split_peer_addr(addr: &Multiaddr) -> Result<(Multiaddr, PeerId), P2pError> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) if !base.is_empty() => Ok((base, peer)),
        _ => Err(P2pError::Config(format!(
            "peer address {addr} must be /ip4|dns4/…/tcp/PORT/p2p/PEERID"
        ))),
    }
}

pub(super) fn is_dns(addr: &Multiaddr) -> bool {
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
pub(super) fn peer_resolver() -> Resolver {
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

pub(super) fn with_peer_options(
    mut builder: hickory_resolver::ResolverBuilder<hickory_resolver::name_server::TokioConnectionProvider>,
) -> Resolver {
    let opts = builder.options_mut();
    opts.positive_max_ttl = Some(Duration::from_secs(1));
    opts.negative_max_ttl = Some(Duration::from_secs(1));
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    Arc::new(builder.build())
}

pub(super) type Resolver = Arc<hickory_resolver::TokioResolver>;

/// Resolves `/dns*/NAME/tcp/PORT` to `/ip*/ADDR/tcp/PORT` addresses.
pub(super) async fn resolve(resolver: &Resolver, addr: Multiaddr) -> Result<Vec<Multiaddr>, String> {
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
pub(super) fn jittered(d: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

impl Service {
    // ---- strikes and bans ----

    pub(super) fn strike(&mut self, peer: PeerId, reason: &str) {
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

    pub(super) fn ban(&mut self, peer: PeerId, reason: &str) {
        warn!(%peer, reason, minutes = BAN_DURATION.as_secs() / 60, "banning misbehaving peer");
        self.strikes.remove(&peer);
        self.banned.insert(peer, Instant::now() + BAN_DURATION);
        let behaviour = self.swarm.behaviour_mut();
        behaviour.gossipsub.remove_explicit_peer(&peer);
        // Closes every connection to the peer and refuses new ones.
        behaviour.block_list.block_peer(peer);
    }

    // ---- housekeeping ----

    pub(super) fn on_tick(&mut self) {
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

    /// Records a new connection to `peer` and closes the surplus ones
    /// ([`surplus_connections`]).
    pub(super) fn keep_one_connection(&mut self, peer: PeerId, id: ConnectionId, dialled: bool) {
        let links = self.links.entry(peer).or_default();
        links.push((id, dialled));
        if links.len() < 2 {
            return;
        }
        let we_are_smaller = self.shared.local_peer_id < peer;
        for surplus in surplus_connections(links, we_are_smaller) {
            debug!(%peer, ?surplus, "closing a second connection to a peer");
            self.swarm.close_connection(surplus);
        }
    }

    /// Forgets a closed connection.
    pub(super) fn connection_closed(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(links) = self.links.get_mut(&peer) {
            links.retain(|(c, _)| *c != id);
            if links.is_empty() {
                self.links.remove(&peer);
            }
        }
    }

    /// Dials the configured peers that are disconnected and due.
    pub(super) fn dial_due(&mut self) {
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

    pub(super) fn on_resolved(&mut self, peer: PeerId, result: Result<Vec<Multiaddr>, String>) {
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

    pub(super) fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
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

    pub(super) fn schedule_redial(&mut self, peer: PeerId) {
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
}

#[cfg(test)]
mod tests {
    use super::surplus_connections;
    use libp2p::swarm::ConnectionId;

    fn c(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    #[test]
    fn both_ends_keep_the_connection_the_smaller_peer_dialled() {
        // Peer A (smaller id) dialled connection 1, B dialled connection 2;
        // each end numbers and orders them in its own way.
        let at_a = [(c(20), false), (c(10), true)]; // A saw B's dial first
        let at_b = [(c(7), false), (c(8), true)]; // B: A's dial is c(7)
        assert_eq!(surplus_connections(&at_a, true), vec![c(20)]);
        assert_eq!(surplus_connections(&at_b, false), vec![c(8)]);
        // The other order of establishment gives the same choice.
        assert_eq!(surplus_connections(&[(c(10), true), (c(20), false)], true), vec![c(20)]);
        assert_eq!(surplus_connections(&[(c(8), true), (c(7), false)], false), vec![c(8)]);
    }

    #[test]
    fn one_connection_is_always_kept() {
        assert!(surplus_connections(&[], true).is_empty());
        assert!(surplus_connections(&[(c(1), true)], false).is_empty());
        // None dialled by the smaller side: the oldest stays.
        assert_eq!(surplus_connections(&[(c(1), false), (c(2), false)], true), vec![c(2)]);
        assert_eq!(
            surplus_connections(&[(c(3), true), (c(4), true), (c(5), false)], true),
            vec![c(4), c(5)]
        );
    }
}
