//! Unit tests of peer addresses, name resolution and strikes.

use super::peers::{resolve, with_peer_options};
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
        hickory_resolver::config::NameServerConfigGroup::from_ips_clear(&["127.0.0.1".parse().unwrap()], port, true),
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

/// Peer scoring exists only where gossipsub keeps a mesh: in flood and direct
/// mode every peer is explicit and the strike ban acts first.
#[test]
fn peers_are_scored_only_in_mesh_mode() {
    let key = crate::keypair_from_ed25519_secret([7; 32]);
    let topic_list = gossip::topics("bizra-test");
    let score_of = |validators: usize, direct: bool| {
        let mut cfg = P2pConfig::new(key.clone(), "127.0.0.1:0".parse().unwrap(), "bizra-test");
        cfg.validator_count = validators;
        cfg.direct = direct;
        let b = Service::behaviour(&cfg, &topic_list).unwrap();
        b.gossipsub.peer_score(&PeerId::random())
    };
    assert_eq!(score_of(4, false), None, "small network floods");
    assert_eq!(score_of(100, true), None, "direct mode");
    assert_eq!(score_of(gossip::FLOOD_MAX_VALIDATORS, false), None);
    assert_eq!(
        score_of(gossip::FLOOD_MAX_VALIDATORS + 1, false),
        Some(0.0),
        "mesh mode"
    );
    assert_eq!(score_of(100, false), Some(0.0), "mesh mode");
}
