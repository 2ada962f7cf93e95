//! A node fed garbage stays up and penalizes the sender.

use bizra_p2p::{P2pConfig, P2pEvent, Topic};
use bizra_tests::Testnet;
use std::io::Write;
use std::time::Duration;

#[test]
fn garbage_gossip_and_wire_noise_do_not_hurt_the_node() {
    let mut net = Testnet::init("garbage", 4, 22600, &["--block-interval-ms", "20"]);
    net.start_all();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        net.wait_height(&[0, 1, 2, 3], 3, Duration::from_secs(120)).await;
        let s0 = net.status(0).await.expect("node0 status");

        // Raw noise on the p2p and gRPC ports.
        for port in [net.base_port, net.base_port + 100] {
            for junk in [
                &b"\x00\xff garbage \x13\x37"[..],
                &[0xffu8; 4096][..],
                b"GET / HTTP/1.1\r\n\r\n",
            ] {
                if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.write_all(junk);
                }
            }
        }

        // A libp2p peer on the same chain that publishes garbage votes.
        let secret = [0x42u8; 32];
        let mut cfg = P2pConfig::new(
            bizra_p2p::keypair_from_ed25519_secret(secret),
            "127.0.0.1:0".parse().unwrap(),
            s0.chain_id.clone(),
        );
        let node0_id: [u8; 32] = hex::decode(&s0.validator).unwrap().try_into().unwrap();
        let node0_peer = bizra_p2p::peer_id_from_ed25519_public(node0_id);
        cfg.peers = vec![format!("/ip4/127.0.0.1/tcp/{}/p2p/{node0_peer}", net.base_port)
            .parse()
            .unwrap()];
        let (attacker, mut events) = bizra_p2p::start(cfg).await.expect("attacker p2p");
        // Wait for the connection and subscriptions.
        let connected = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = events.recv().await {
                if matches!(ev, P2pEvent::PeerConnected(p) if p == node0_peer) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        assert!(connected, "attacker could not connect to node0");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut sent = 0;
        let mut disconnected = false;
        for i in 0..200u32 {
            let junk = format!("not a vote {i}").into_bytes();
            if attacker.publish(Topic::Votes, junk).await.is_ok() {
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            while let Ok(ev) = events.try_recv() {
                if matches!(ev, P2pEvent::PeerDisconnected(p) if p == node0_peer) {
                    disconnected = true;
                }
            }
            if disconnected {
                break;
            }
        }
        assert!(sent >= 20, "only {sent} garbage messages went out");
        assert!(
            disconnected,
            "node0 did not drop the peer that sent {sent} garbage votes"
        );
        attacker.shutdown();

        // A peer whose gossipsub signs its messages: each carries a source,
        // a sequence number and a signature, which node0's anonymous-mode
        // gossipsub refuses itself, with a WARN line per message and (flood
        // mode keeps no peer scores) no penalty. The log filter writes 10 of
        // them a minute and reports the rest.
        let published = publish_signed(&s0.chain_id, node0_peer, net.base_port, 300).await;
        assert!(published >= 100, "only {published} signed messages went out");
        let refused = "Invalid message from peer";
        let summary = "warnings of another crate not written";
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !net.log(0).contains(summary) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let log = net.log(0);
        let written = log.lines().filter(|l| l.contains(refused)).count();
        assert!(
            (1..=10).contains(&written),
            "{written} lines of gossipsub's refusal for {published} signed messages"
        );
        assert!(log.contains(summary), "no report of the suppressed lines");

        // node0 is still up and the chain still moves.
        let h = net.height(0).await;
        net.wait_height(&[0, 1, 2, 3], h + 5, Duration::from_secs(60)).await;
        let s = net.status(0).await.expect("node0 still answers");
        assert_eq!(s.chain_id, s0.chain_id);
    });
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct SignedGossip {
    gossipsub: libp2p::gossipsub::Behaviour,
    identify: libp2p::identify::Behaviour,
}

/// Connects a gossipsub peer in signed mode to the node at `port` and
/// publishes `count` messages on the votes topic; returns how many gossipsub
/// accepted for sending.
async fn publish_signed(chain_id: &str, node: libp2p::PeerId, port: u16, count: usize) -> usize {
    use libp2p::futures::StreamExt;
    use libp2p::{gossipsub, identify, noise, tcp, yamux};
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(|key| SignedGossip {
            gossipsub: gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossipsub::Config::default(),
            )
            .expect("gossipsub"),
            identify: identify::Behaviour::new(identify::Config::new(format!("/bizra/{chain_id}/1"), key.public())),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{node}").parse().unwrap();
    swarm.dial(addr).expect("dial node0");
    let topic = gossipsub::IdentTopic::new(Topic::Votes.name(chain_id));
    let mut published = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while published < count && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            _ = tick.tick() => {
                let data = format!("signed junk {published}").into_bytes();
                if swarm.behaviour_mut().gossipsub.publish(topic.clone(), data).is_ok() {
                    published += 1;
                }
            }
        }
    }
    // Let the last messages leave.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            swarm.select_next_some().await;
        }
    })
    .await;
    published
}
