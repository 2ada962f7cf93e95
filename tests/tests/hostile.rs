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

        // node0 is still up and the chain still moves.
        let h = net.height(0).await;
        net.wait_height(&[0, 1, 2, 3], h + 5, Duration::from_secs(60)).await;
        let s = net.status(0).await.expect("node0 still answers");
        assert_eq!(s.chain_id, s0.chain_id);
    });
}
