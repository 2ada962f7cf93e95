//! End-to-end: real `bizra` processes on loopback (issue: validator node).
//! Tests run one at a time (a global lock): each starts its own testnet on
//! its own ports and stops every process it started.

use bizra_tests::Testnet;
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Fast pacing for tests: 20 ms between blocks.
const FAST: &[&str] = &["--block-interval-ms", "20"];

fn metric(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn four_validators_finalize_20_heights_in_agreement() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Testnet::init("agree", 4, 21000, FAST);
    net.start_all();
    rt().block_on(async {
        net.wait_height(&[0, 1, 2, 3], 20, Duration::from_secs(120)).await;
        net.assert_agreement(&[0, 1, 2, 3], 20).await;
        let s = net.status(0).await.unwrap();
        assert!(s.peers >= 3, "node0 sees {} peers", s.peers);
        assert!(!s.catching_up);
    });
    for k in 0..4 {
        assert_eq!(
            net.stop(k),
            Some(0),
            "node{k} did not shut down cleanly:\n{}",
            net.log(k)
        );
    }
}

#[test]
fn kill9_mid_round_restarts_and_rejoins_without_conflicting_votes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Testnet::init("kill9", 4, 21400, FAST);
    net.start_all();
    rt().block_on(async {
        net.wait_height(&[0, 1, 2, 3], 5, Duration::from_secs(120)).await;
        // Kill node 3 at several instants, restarting it each time.
        for (i, pause_ms) in [13u64, 71, 5, 150, 37].iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(*pause_ms)).await;
            net.kill9(3);
            tokio::time::sleep(Duration::from_millis(100 + 50 * i as u64)).await;
            net.start(3);
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        let target = net.height(0).await + 10;
        net.wait_height(&[0, 1, 2, 3], target, Duration::from_secs(120)).await;
        net.assert_agreement(&[0, 1, 2, 3], target).await;
    });
    // No honest node saw two conflicting signed votes from node 3 (or anyone).
    for k in 0..3 {
        let port = net.base_port + 200 + k as u16;
        assert_eq!(
            metric(port, "bizra_equivocations_total"),
            Some(0.0),
            "node{k} saw equivocation"
        );
    }
    assert!(
        net.log(3).contains("WAL replayed"),
        "restarted node did not replay its WAL"
    );
}

#[test]
fn validator_started_200_heights_late_catches_up_by_sync() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Testnet::init("late", 4, 21800, &["--block-interval-ms", "0"]);
    for k in 0..3 {
        net.start(k);
    }
    rt().block_on(async {
        net.wait_height(&[0, 1, 2], 200, Duration::from_secs(300)).await;
        net.start(3);
        // While behind, the node must not claim to be caught up.
        let mut saw_catching_up = false;
        for _ in 0..50 {
            if let Some(s) = net.status(3).await {
                let best = net.height(0).await;
                if s.finalized_height + 5 < best {
                    assert!(
                        s.catching_up,
                        "node3 at {} says caught up while peers are at {best}",
                        s.finalized_height
                    );
                    saw_catching_up = true;
                }
                if s.finalized_height >= 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let target = net.height(0).await + 5;
        net.wait_height(&[0, 1, 2, 3], target, Duration::from_secs(120)).await;
        net.assert_agreement(&[0, 3], target).await;
        let _ = saw_catching_up;
    });
    let synced = metric(net.base_port + 203, "bizra_sync_blocks_total").unwrap_or(0.0);
    assert!(synced >= 150.0, "node3 applied only {synced} blocks through sync");
}

#[test]
fn chain_continues_after_a_partition_heals() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut net = Testnet::init("partition", 4, 22200, FAST);
    net.start_all();
    rt().block_on(async {
        net.wait_height(&[0, 1, 2, 3], 5, Duration::from_secs(120)).await;
        // Cut nodes 2 and 3 off (SIGSTOP: they neither send nor receive).
        // The other half holds 50% of the weight: below quorum, it must stall.
        net.pause(2);
        net.pause(3);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stalled = net.height(0).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = net.height(0).await;
        assert!(
            after <= stalled + 1,
            "a minority side finalized blocks: {stalled} -> {after}"
        );
        net.resume(2);
        net.resume(3);
        net.wait_height(&[0, 1, 2, 3], after + 10, Duration::from_secs(120))
            .await;
        net.assert_agreement(&[0, 1, 2, 3], after + 10).await;
    });
}
