//! End-to-end tests over real libp2p connections on 127.0.0.1.

use std::{future::Future, io, time::Duration};

use async_trait::async_trait;
use bizra_p2p::{
    keypair_from_ed25519_secret, message_id, start, Multiaddr, P2pConfig, P2pEvent, P2pHandle, PeerId, Topic,
    Validation, BAN_THRESHOLD, SYNC_PROTOCOL,
};
use bizra_proto::{
    sync_request, sync_response, Block, BlockHeader, BlockRange, BlockRangeRequest, ChainStatus, FinalizedBlock,
    StatusRequest, SyncRequest, SyncResponse,
};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{
    multiaddr::Protocol,
    noise,
    request_response::{self, ProtocolSupport},
    swarm::SwarmEvent,
    tcp, yamux, StreamProtocol,
};
use prost::Message as _;
use tokio::{
    io::AsyncWriteExt as _,
    sync::mpsc,
    time::{sleep, timeout, Instant},
};

const CHAIN: &str = "bizra-test";
const WAIT: Duration = Duration::from_secs(15);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

struct Node {
    handle: P2pHandle,
    events: mpsc::Receiver<P2pEvent>,
}

impl Node {
    async fn start(seed: u8, peers: Vec<Multiaddr>, max_message_bytes: usize) -> Node {
        Self::start_on(seed, 0, peers, max_message_bytes).await
    }

    async fn start_on(seed: u8, port: u16, peers: Vec<Multiaddr>, max_message_bytes: usize) -> Node {
        Self::start_with(seed, port, peers, |cfg| cfg.max_message_bytes = max_message_bytes).await
    }

    /// Starts a node with validator count 4 on `CHAIN`, adjusted by `f`.
    async fn start_with(seed: u8, port: u16, peers: Vec<Multiaddr>, f: impl FnOnce(&mut P2pConfig)) -> Node {
        let mut cfg = P2pConfig::new(
            keypair_from_ed25519_secret([seed; 32]),
            ([127, 0, 0, 1], port).into(),
            CHAIN,
        );
        cfg.peers = peers;
        cfg.validator_count = 4;
        f(&mut cfg);
        let (handle, events) = start(cfg).await.expect("p2p starts");
        Node { handle, events }
    }

    fn id(&self) -> PeerId {
        self.handle.local_peer_id()
    }

    /// `/ip4/127.0.0.1/tcp/PORT/p2p/PEERID` of this node.
    fn addr(&self) -> Multiaddr {
        let addrs = self.handle.listen_addrs();
        assert!(!addrs.is_empty(), "node has a listen address");
        addrs[0].clone().with(Protocol::P2p(self.id()))
    }

    fn port(&self) -> u16 {
        match self.handle.listen_addrs()[0].iter().nth(1) {
            Some(Protocol::Tcp(port)) => port,
            other => panic!("unexpected listen address component {other:?}"),
        }
    }

    /// Waits for the first event matching `f`, skipping others.
    async fn expect<T>(&mut self, what: &str, mut f: impl FnMut(&P2pEvent) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    if let Some(t) = f(&event) {
                        return t;
                    }
                }
                Ok(None) => panic!("event channel closed while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Asserts that no event matching `f` arrives within `within`.
    async fn expect_none(&mut self, what: &str, within: Duration, f: impl Fn(&P2pEvent) -> bool) {
        let deadline = Instant::now() + within;
        while let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            let Some(event) = event else { return };
            assert!(!f(&event), "unexpected {what}: {event:?}");
        }
    }

    /// The next gossip message with `data`.
    async fn gossip(&mut self, data: &[u8]) -> (Topic, PeerId, bizra_p2p::MessageId) {
        self.expect("gossip message", |e| match e {
            P2pEvent::Gossip {
                topic,
                data: d,
                source,
                id,
            } if d == data => Some((*topic, *source, id.clone())),
            _ => None,
        })
        .await
    }
}

async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node` sees every peer in `peers` subscribed to the vote topic.
async fn wait_subscribed(node: &P2pHandle, peers: &[PeerId]) {
    wait_until("peers subscribed", || async {
        let subscribed = node.topic_peers(Topic::Votes).await.unwrap();
        peers.iter().all(|p| subscribed.contains(p))
    })
    .await;
}

fn status_request() -> SyncRequest {
    SyncRequest {
        req: Some(sync_request::Req::Status(StatusRequest {})),
    }
}

fn chain_status(height: u64) -> SyncResponse {
    SyncResponse {
        resp: Some(sync_response::Resp::Status(ChainStatus {
            chain_id: CHAIN.into(),
            genesis_hash: vec![0xaa; 32],
            height,
            head_hash: vec![0xbb; 32],
        })),
    }
}

/// Gossip on a line A - B - C (explicit-peer flooding of a small network).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_is_forwarded_only_after_acceptance() {
    gossip_on_a_line(4).await;
}

/// The same with the gossipsub mesh of a 100-validator network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_is_forwarded_only_after_acceptance_in_mesh_mode() {
    gossip_on_a_line(100).await;
}

/// Gossip on a line A - B - C: B gets A's vote, C gets it only once B has
/// accepted it, and never when B rejects or ignores it.
async fn gossip_on_a_line(validator_count: usize) {
    init_tracing();
    timeout(Duration::from_secs(90), async {
        let cfg = |cfg: &mut P2pConfig| {
            cfg.max_message_bytes = 1 << 20;
            cfg.validator_count = validator_count;
        };
        let mut b = Node::start_with(2, 0, vec![], cfg).await;
        let mut a = Node::start_with(1, 0, vec![b.addr()], cfg).await;
        let mut c = Node::start_with(3, 0, vec![b.addr()], cfg).await;
        wait_subscribed(&b.handle, &[a.id(), c.id()]).await;
        wait_subscribed(&a.handle, &[b.id()]).await;
        wait_subscribed(&c.handle, &[b.id()]).await;
        assert_eq!(b.handle.connected_peers(), 2);
        assert_eq!(a.handle.peers(), vec![b.id()]);
        assert_eq!(c.handle.peers(), vec![b.id()]);

        // Accept: B sees A's message; C sees it only after B's verdict.
        let vote = b"vote-1".to_vec();
        a.handle.publish(Topic::Votes, vote.clone()).await.unwrap();
        let (topic, source, id) = b.gossip(&vote).await;
        assert_eq!(topic, Topic::Votes);
        assert_eq!(source, a.id());
        assert_eq!(id, message_id(&vote));
        c.expect_none("gossip before validation", Duration::from_secs(1), |e| {
            matches!(e, P2pEvent::Gossip { .. })
        })
        .await;
        b.handle.report_validation(id, source, Validation::Accept);
        let (topic, source, _) = c.gossip(&vote).await;
        assert_eq!(topic, Topic::Votes);
        assert_eq!(source, b.id(), "C hears it from B, its only peer");

        // Publishing the same bytes again is a duplicate.
        let err = a.handle.publish(Topic::Votes, vote.clone()).await.unwrap_err();
        assert!(err.is_benign(), "{err}");

        // Reject and Ignore: the message stops at B.
        for (n, verdict) in [(2, Validation::Reject), (3, Validation::Ignore)] {
            let vote = format!("vote-{n}").into_bytes();
            a.handle.publish(Topic::Votes, vote.clone()).await.unwrap();
            let (_, source, id) = b.gossip(&vote).await;
            b.handle.report_validation(id, source, verdict);
        }
        c.expect_none("forwarded invalid gossip", Duration::from_secs(2), |e| {
            matches!(e, P2pEvent::Gossip { .. })
        })
        .await;

        // Another topic, from the other end of the line, still flows.
        let proposal = b"proposal-1".to_vec();
        c.handle.publish(Topic::Proposals, proposal.clone()).await.unwrap();
        let (topic, source, id) = b.gossip(&proposal).await;
        assert_eq!((topic, source), (Topic::Proposals, c.id()));
        b.handle.report_validation(id, source, Validation::Accept);
        let (topic, source, _) = a.gossip(&proposal).await;
        assert_eq!((topic, source), (Topic::Proposals, b.id()));

        // A never receives its own messages back, and one rejection does
        // not cost it its connection.
        a.expect_none(
            "own message echoed",
            Duration::from_millis(500),
            |e| matches!(e, P2pEvent::Gossip { data, .. } if data.starts_with(b"vote")),
        )
        .await;
        assert_eq!(b.handle.connected_peers(), 2);

        // Oversized data is refused locally.
        let err = a
            .handle
            .publish(Topic::Votes, vec![0; (1 << 20) + 1])
            .await
            .unwrap_err();
        assert!(matches!(err, bizra_p2p::P2pError::MessageTooLarge { .. }), "{err}");

        for n in [&a, &b, &c] {
            n.handle.shutdown();
        }
    })
    .await
    .expect("test timed out");
}

/// Status and block-range requests get their answers, correlated by id;
/// requests to an unreachable peer fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_request_response_round_trip() {
    init_tracing();
    timeout(Duration::from_secs(60), async {
        let mut b = Node::start(12, vec![], 1 << 20).await;
        let mut a = Node::start(11, vec![b.addr()], 1 << 20).await;
        let a_id = a.id();
        b.expect("A connects", |e| match e {
            P2pEvent::PeerConnected(p) if *p == a_id => Some(()),
            _ => None,
        })
        .await;

        // Status.
        let status_id = a.handle.request(b.id(), status_request()).await.unwrap();
        let (peer, request, token) = b
            .expect("status request", |e| match e {
                P2pEvent::SyncRequest { peer, request, channel } => Some((*peer, *request, *channel)),
                _ => None,
            })
            .await;
        assert_eq!(peer, a.id());
        assert_eq!(request, status_request());
        b.handle.respond(token, chain_status(42));
        let b_id = b.id();
        let (request_id, response) = a
            .expect("status response", |e| match e {
                P2pEvent::SyncResponse {
                    peer,
                    request_id,
                    response,
                } if *peer == b_id => Some((*request_id, response.clone())),
                P2pEvent::SyncFailure { error, .. } => panic!("request failed: {error}"),
                _ => None,
            })
            .await;
        assert_eq!(request_id, status_id);
        assert_eq!(response, chain_status(42));

        // Block range, with two requests in flight answered out of order.
        let blocks_req = |from| SyncRequest {
            req: Some(sync_request::Req::Blocks(BlockRangeRequest {
                from_height: from,
                max_blocks: 2,
            })),
        };
        let first = a.handle.request(b.id(), blocks_req(5)).await.unwrap();
        let second = a.handle.request(b.id(), blocks_req(9)).await.unwrap();
        assert_ne!(first, second);
        let mut tokens = Vec::new();
        for _ in 0..2 {
            tokens.push(
                b.expect("block range request", |e| match e {
                    P2pEvent::SyncRequest {
                        request:
                            SyncRequest {
                                req: Some(sync_request::Req::Blocks(r)),
                            },
                        channel,
                        ..
                    } => Some((r.from_height, r.max_blocks, *channel)),
                    _ => None,
                })
                .await,
            );
        }
        tokens.sort_by_key(|t| t.0);
        assert_eq!((tokens[0].0, tokens[0].1), (5, 2));
        assert_eq!((tokens[1].0, tokens[1].1), (9, 2));
        let range = |from: u64| SyncResponse {
            resp: Some(sync_response::Resp::Blocks(BlockRange {
                blocks: (from..from + 2)
                    .map(|height| FinalizedBlock {
                        block: Some(Block {
                            header: Some(BlockHeader {
                                chain_id: CHAIN.into(),
                                height,
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        commit: None,
                    })
                    .collect(),
            })),
        };
        b.handle.respond(tokens[1].2, range(9));
        b.handle.respond(tokens[0].2, range(5));
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(
                a.expect("block range response", |e| match e {
                    P2pEvent::SyncResponse {
                        request_id, response, ..
                    } => Some((*request_id, response.clone())),
                    P2pEvent::SyncFailure { error, .. } => panic!("request failed: {error}"),
                    _ => None,
                })
                .await,
            );
        }
        got.sort_by_key(|g| g.0);
        assert_eq!(got[0], (first, range(5)));
        assert_eq!(got[1], (second, range(9)));
        // Answering twice is harmless.
        b.handle.respond(tokens[0].2, range(5));

        // An error response goes through as such.
        let id = a.handle.request(b.id(), status_request()).await.unwrap();
        let token = b
            .expect("request", |e| match e {
                P2pEvent::SyncRequest { channel, .. } => Some(*channel),
                _ => None,
            })
            .await;
        let error = SyncResponse {
            resp: Some(sync_response::Resp::Error("not synced".into())),
        };
        b.handle.respond(token, error.clone());
        let response = a
            .expect("error response", |e| match e {
                P2pEvent::SyncResponse {
                    request_id, response, ..
                } if *request_id == id => Some(response.clone()),
                _ => None,
            })
            .await;
        assert_eq!(response, error);

        // A response over the size cap is replaced by an error response.
        let id = a.handle.request(b.id(), status_request()).await.unwrap();
        let token = b
            .expect("request", |e| match e {
                P2pEvent::SyncRequest { channel, .. } => Some(*channel),
                _ => None,
            })
            .await;
        let huge = SyncResponse {
            resp: Some(sync_response::Resp::Error("x".repeat((1 << 20) + 10))),
        };
        b.handle.respond(token, huge);
        let response = a
            .expect("capped response", |e| match e {
                P2pEvent::SyncResponse {
                    request_id, response, ..
                } if *request_id == id => Some(response.clone()),
                P2pEvent::SyncFailure { error, .. } => panic!("request failed: {error}"),
                _ => None,
            })
            .await;
        match response.resp {
            Some(sync_response::Resp::Error(e)) => assert!(e.contains("exceeds"), "{e}"),
            other => panic!("expected an error response, got {other:?}"),
        }

        // A peer nobody can reach.
        let stranger = keypair_from_ed25519_secret([99; 32]).public().to_peer_id();
        let id = a.handle.request(stranger, status_request()).await.unwrap();
        let (peer, error) = a
            .expect("failure for unreachable peer", |e| match e {
                P2pEvent::SyncFailure {
                    peer,
                    request_id,
                    error,
                } if *request_id == id => Some((*peer, error.clone())),
                _ => None,
            })
            .await;
        assert_eq!(peer, stranger);
        assert!(!error.is_empty());

        a.handle.shutdown();
        b.handle.shutdown();
    })
    .await
    .expect("test timed out");
}

/// A request-response codec that sends and answers raw bytes, to put
/// malformed frames on the sync protocol.
#[derive(Clone, Default)]
struct RawCodec;

#[async_trait]
impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let mut buf = vec![0u8; u32::from_be_bytes(len).min(1 << 20) as usize];
        io.read_exact(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(1 << 20).read_to_end(&mut buf).await?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(buf)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res).await?;
        io.close().await
    }
}

enum EvilReport {
    Connected,
    Outcome(Result<Vec<u8>, String>),
}

/// A libp2p peer speaking the sync protocol with `RawCodec`: sends the raw
/// requests it is given and answers every request with `answer`.
fn spawn_evil_peer(
    target: Multiaddr,
    answer: Vec<u8>,
) -> (
    PeerId,
    mpsc::UnboundedSender<Vec<u8>>,
    mpsc::UnboundedReceiver<EvilReport>,
) {
    let (req_tx, mut req_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let keypair = keypair_from_ed25519_secret([66; 32]);
    let peer_id = keypair.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RawCodec,
                [(SYNC_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let target_peer = match target.iter().last() {
        Some(Protocol::P2p(p)) => p,
        _ => panic!("target needs /p2p"),
    };
    swarm.dial(target).unwrap();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                raw = req_rx.recv() => match raw {
                    Some(raw) => { swarm.behaviour_mut().send_request(&target_peer, raw); }
                    None => break,
                },
                event = swarm.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        let _ = report_tx.send(EvilReport::Connected);
                    }
                    SwarmEvent::Behaviour(request_response::Event::Message { message, .. }) => match message {
                        request_response::Message::Request { channel, .. } => {
                            let _ = swarm.behaviour_mut().send_response(channel, answer.clone());
                        }
                        request_response::Message::Response { response, .. } => {
                            let _ = report_tx.send(EvilReport::Outcome(Ok(response)));
                        }
                    },
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                        let _ = report_tx.send(EvilReport::Outcome(Err(error.to_string())));
                    }
                    _ => {}
                },
            }
        }
    });
    (peer_id, req_tx, report_rx)
}

/// Raw TCP garbage, oversized and undecodable sync frames in both
/// directions: the node survives, reports failures, and still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_does_not_hurt() {
    init_tracing();
    timeout(Duration::from_secs(90), async {
        const MAX: usize = 64 * 1024;
        let mut victim = Node::start(21, vec![], MAX).await;
        let port = victim.port();

        // 1. Raw TCP garbage: random bytes, a multistream header followed
        // by junk, a huge fake frame, and a connection closed at once.
        let mut junk = Vec::with_capacity(256 * 1024);
        let mut x: u32 = 0x1234_5678;
        while junk.len() < junk.capacity() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk.extend_from_slice(&x.to_le_bytes());
        }
        let mut multistream = b"\x13/multistream/1.0.0\n".to_vec();
        multistream.extend_from_slice(&junk[..4096]);
        let mut huge_frame = u32::MAX.to_be_bytes().to_vec();
        huge_frame.extend_from_slice(&junk[..1024]);
        for payload in [junk.clone(), multistream, huge_frame, Vec::new()] {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("victim accepts TCP");
            let _ = timeout(Duration::from_secs(5), stream.write_all(&payload)).await;
            let _ = stream.shutdown().await;
        }

        // 2. Malformed sync frames from a peer that completed the handshake.
        let (evil_id, evil_tx, mut evil_rx) = spawn_evil_peer(victim.addr(), junk[..100].to_vec());
        match timeout(WAIT, evil_rx.recv()).await {
            Ok(Some(EvilReport::Connected)) => {}
            _ => panic!("evil peer did not connect"),
        }
        let mut oversized = ((MAX + 1) as u32).to_be_bytes().to_vec();
        oversized.extend_from_slice(&vec![0u8; MAX + 1]);
        let mut undecodable = 64u32.to_be_bytes().to_vec();
        undecodable.extend_from_slice(&[0xff; 64]);
        let truncated = 100u32.to_be_bytes().to_vec();
        let requests = [u32::MAX.to_be_bytes().to_vec(), oversized, undecodable, truncated];
        for raw in &requests {
            evil_tx.send(raw.clone()).unwrap();
        }
        let mut answered = 0;
        for raw in &requests {
            match timeout(WAIT, evil_rx.recv()).await {
                // Malformed requests are answered with an error response...
                Ok(Some(EvilReport::Outcome(Ok(resp)))) => {
                    let resp = SyncResponse::decode(&resp[4..]).expect("a framed SyncResponse");
                    match resp.resp {
                        Some(sync_response::Resp::Error(e)) => {
                            assert!(e.contains("exceeds") || e.contains("undecodable"), "{e}")
                        }
                        other => panic!("malformed request answered with {other:?}"),
                    }
                    answered += 1;
                }
                // ...or fail (the truncated one; possibly the oversized one,
                // whose body the victim does not read).
                Ok(Some(EvilReport::Outcome(Err(_)))) => {}
                _ => panic!("no outcome for malformed request of {} bytes", raw.len()),
            }
        }
        assert!(answered >= 2, "only {answered} malformed requests were answered");
        // The victim turned none of them into a request for the node.
        victim
            .expect_none("sync request from garbage", Duration::from_millis(300), |e| {
                matches!(e, P2pEvent::SyncRequest { .. })
            })
            .await;

        // 3. The victim asks the evil peer, which answers garbage.
        let id = victim.handle.request(evil_id, status_request()).await.unwrap();
        let error = victim
            .expect("failure on garbage response", |e| match e {
                P2pEvent::SyncFailure {
                    peer,
                    request_id,
                    error,
                } if *request_id == id && *peer == evil_id => Some(error.clone()),
                P2pEvent::SyncResponse { request_id, .. } if *request_id == id => {
                    panic!("garbage decoded as a response")
                }
                _ => None,
            })
            .await;
        assert!(!error.is_empty());

        // 4. Enough malformed requests get the evil peer banned.
        for _ in 0..BAN_THRESHOLD {
            evil_tx.send(requests[2].clone()).unwrap();
        }
        victim
            .expect("the evil peer is disconnected", |e| match e {
                P2pEvent::PeerDisconnected(p) if *p == evil_id => Some(()),
                P2pEvent::SyncRequest { .. } => panic!("garbage reached the node"),
                _ => None,
            })
            .await;
        assert!(!victim.handle.peers().contains(&evil_id));

        // 5. An honest peer is still served.
        let mut honest = Node::start(22, vec![victim.addr()], MAX).await;
        let id = honest.handle.request(victim.id(), status_request()).await.unwrap();
        let token = victim
            .expect("honest request", |e| match e {
                P2pEvent::SyncRequest { channel, .. } => Some(*channel),
                _ => None,
            })
            .await;
        victim.handle.respond(token, chain_status(7));
        let response = honest
            .expect("honest response", |e| match e {
                P2pEvent::SyncResponse {
                    request_id, response, ..
                } if *request_id == id => Some(response.clone()),
                P2pEvent::SyncFailure { error, .. } => panic!("honest request failed: {error}"),
                _ => None,
            })
            .await;
        assert_eq!(response, chain_status(7));
        assert!(victim.handle.peers().contains(&honest.id()));

        honest.handle.shutdown();
        victim.handle.shutdown();
    })
    .await
    .expect("test timed out");
}

/// A peer whose gossip is rejected BAN_THRESHOLD times is disconnected and
/// kept out; an honest peer stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_with_rejected_messages_is_banned() {
    init_tracing();
    timeout(Duration::from_secs(90), async {
        let mut b = Node::start(32, vec![], 1 << 20).await;
        let mut a = Node::start(31, vec![b.addr()], 1 << 20).await;
        let c = Node::start(33, vec![b.addr()], 1 << 20).await;
        wait_subscribed(&b.handle, &[a.id(), c.id()]).await;
        wait_subscribed(&a.handle, &[b.id()]).await;
        assert_eq!(b.handle.connected_peers(), 2);

        let total = BAN_THRESHOLD as usize + 5;
        for n in 0..total {
            a.handle
                .publish(Topic::Attestations, format!("bad-{n}").into_bytes())
                .await
                .unwrap();
        }
        let a_id = a.id();
        let mut rejected = 0;
        let deadline = Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, b.events.recv())
                .await
                .expect("timed out before A was disconnected")
                .expect("event channel open");
            match event {
                P2pEvent::Gossip { source, id, .. } if source == a_id => {
                    b.handle.report_validation(id, source, Validation::Reject);
                    rejected += 1;
                }
                P2pEvent::PeerDisconnected(p) if p == a_id => break,
                _ => {}
            }
        }
        assert!(
            rejected >= BAN_THRESHOLD as usize,
            "disconnected after only {rejected} rejections"
        );
        assert!(!b.handle.peers().contains(&a_id));
        assert_eq!(b.handle.connected_peers(), 1);

        // A keeps redialing but stays out; C is unaffected.
        sleep(Duration::from_secs(3)).await;
        assert_eq!(b.handle.peers(), vec![c.id()]);
        let id = a.handle.request(b.id(), status_request()).await.unwrap();
        let b_id = b.id();
        a.expect("request to the banning peer fails", |e| match e {
            P2pEvent::SyncFailure { peer, request_id, .. } if *request_id == id && *peer == b_id => Some(()),
            P2pEvent::SyncResponse { request_id, .. } if *request_id == id => {
                panic!("banned peer was served")
            }
            _ => None,
        })
        .await;
        assert_eq!(b.handle.peers(), vec![c.id()]);

        // Penalties (e.g. for bad sync responses) count the same way.
        let c_id = c.id();
        for _ in 1..BAN_THRESHOLD {
            b.handle.penalize(c_id, "invalid sync response");
        }
        b.expect_none("early ban", Duration::from_millis(500), |e| {
            matches!(e, P2pEvent::PeerDisconnected(_))
        })
        .await;
        assert_eq!(b.handle.peers(), vec![c_id]);
        b.handle.penalize(c_id, "invalid sync response");
        b.expect("C is disconnected", |e| match e {
            P2pEvent::PeerDisconnected(p) if *p == c_id => Some(()),
            _ => None,
        })
        .await;
        assert_eq!(b.handle.connected_peers(), 0);

        for n in [&a, &b, &c] {
            n.handle.shutdown();
        }
    })
    .await
    .expect("test timed out");
}

/// A peer of another chain is disconnected once identified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_of_another_chain_is_dropped() {
    init_tracing();
    timeout(Duration::from_secs(60), async {
        let mut b = Node::start(52, vec![], 1 << 20).await;
        let other = Node::start_with(51, 0, vec![b.addr()], |cfg| cfg.chain_id = "other".into()).await;
        let other_id = other.id();
        b.expect("the stranger connects", |e| match e {
            P2pEvent::PeerConnected(p) if *p == other_id => Some(()),
            _ => None,
        })
        .await;
        b.expect("the stranger is dropped", |e| match e {
            P2pEvent::PeerDisconnected(p) if *p == other_id => Some(()),
            _ => None,
        })
        .await;
        other.handle.shutdown();
        b.handle.shutdown();
    })
    .await
    .expect("test timed out");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A configured peer that is down at start, or restarts, is (re)dialled
/// until it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_peer_is_redialled() {
    init_tracing();
    timeout(Duration::from_secs(90), async {
        let port = free_port();
        let b_key = keypair_from_ed25519_secret([42; 32]);
        let b_pk: [u8; 32] = b_key.public().try_into_ed25519().unwrap().to_bytes();
        let b_id = bizra_p2p::peer_id_from_ed25519_public(b_pk);
        let b_addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{b_id}").parse().unwrap();

        let mut a = Node::start(41, vec![b_addr], 1 << 20).await;
        sleep(Duration::from_millis(1500)).await;
        assert_eq!(a.handle.connected_peers(), 0);

        let b = Node::start_on(42, port, vec![], 1 << 20).await;
        assert_eq!(b.id(), b_id);
        a.expect("B connects once up", |e| match e {
            P2pEvent::PeerConnected(p) if *p == b_id => Some(()),
            _ => None,
        })
        .await;
        assert_eq!(a.handle.peers(), vec![b_id]);

        b.handle.shutdown();
        a.expect("B goes away", |e| match e {
            P2pEvent::PeerDisconnected(p) if *p == b_id => Some(()),
            _ => None,
        })
        .await;
        assert_eq!(a.handle.connected_peers(), 0);
        // The old listener may take a moment to close.
        let b = loop {
            let mut cfg = P2pConfig::new(b_key.clone(), ([127, 0, 0, 1], port).into(), CHAIN);
            cfg.validator_count = 4;
            match start(cfg).await {
                Ok((handle, _events)) => break handle,
                Err(_) => sleep(Duration::from_millis(100)).await,
            }
        };
        a.expect("B reconnects after restarting", |e| match e {
            P2pEvent::PeerConnected(p) if *p == b_id => Some(()),
            _ => None,
        })
        .await;
        assert_eq!(a.handle.connected_peers(), 1);

        // After shutdown the handle reports the service is gone.
        b.shutdown();
        a.handle.shutdown();
        wait_until("A's task stops", || async {
            a.handle.topic_peers(Topic::Votes).await.is_err()
        })
        .await;
        assert!(matches!(
            a.handle.publish(Topic::Votes, b"late".to_vec()).await,
            Err(bizra_p2p::P2pError::Shutdown)
        ));
    })
    .await
    .expect("test timed out");
}

/// A node that does not read its events loses gossip (counted) but not
/// other events, and its swarm keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_node_drops_gossip_not_requests() {
    init_tracing();
    timeout(Duration::from_secs(120), async {
        let mut b = Node::start(62, vec![], 1 << 20).await;
        let mut a = Node::start(61, vec![b.addr()], 1 << 20).await;
        wait_subscribed(&a.handle, &[b.id()]).await;

        // Publish until this many went out; a burst may fill the sender's
        // queue for B (such a message is lost: retrying it is a duplicate).
        let total = bizra_p2p::EVENT_CHANNEL_CAPACITY + 200;
        let (mut sent, mut n) = (0, 0);
        while sent < total {
            n += 1;
            match a.handle.publish(Topic::Votes, format!("v{n}").into_bytes()).await {
                Ok(()) => sent += 1,
                Err(bizra_p2p::P2pError::Publish(_)) => sleep(Duration::from_millis(5)).await,
                Err(e) => panic!("publish failed: {e}"),
            }
        }
        wait_until("gossip is dropped", || async { b.handle.dropped_gossip() > 0 }).await;
        // The swarm still answers while the channel is full, and a request
        // waits in the queue instead of being dropped.
        let peers = timeout(Duration::from_secs(2), b.handle.topic_peers(Topic::Votes))
            .await
            .expect("swarm responsive")
            .unwrap();
        assert_eq!(peers, vec![a.id()]);
        let id = a.handle.request(b.id(), status_request()).await.unwrap();
        sleep(Duration::from_millis(300)).await;

        let mut gossip = 0;
        let token = b
            .expect("queued request", |e| match e {
                P2pEvent::Gossip { .. } => {
                    gossip += 1;
                    None
                }
                P2pEvent::SyncRequest { channel, .. } => Some(*channel),
                _ => None,
            })
            .await;
        b.handle.respond(token, chain_status(1));
        a.expect("response", |e| match e {
            P2pEvent::SyncResponse { request_id, .. } if *request_id == id => Some(()),
            _ => None,
        })
        .await;
        // Let stragglers arrive, then check the books balance.
        b.expect_none("late request", Duration::from_millis(500), |e| {
            matches!(e, P2pEvent::SyncRequest { .. })
        })
        .await;
        let received = gossip + {
            let mut more = 0;
            while let Ok(e) = b.events.try_recv() {
                if matches!(e, P2pEvent::Gossip { .. }) {
                    more += 1;
                }
            }
            more
        };
        let dropped = b.handle.dropped_gossip() as usize;
        assert!(dropped > 0);
        // (The channel also held B's PeerConnected event.)
        assert!(received + 1 >= bizra_p2p::EVENT_CHANNEL_CAPACITY, "{received}");
        assert!(received + dropped <= total, "{received} + {dropped} > {total}");

        a.handle.shutdown();
        b.handle.shutdown();
    })
    .await
    .expect("test timed out");
}

/// With `sync_requests` set, inbound sync requests go to that channel, not
/// to the gossip event channel; when it is full the requester gets "busy"
/// at once instead of a stream held open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_requests_have_their_own_queue_and_overflow_is_busy() {
    init_tracing();
    timeout(Duration::from_secs(60), async {
        let (sync_tx, mut sync_rx) = mpsc::channel(1);
        let mut b = Node::start_with(22, 0, vec![], |cfg| cfg.sync_requests = Some(sync_tx)).await;
        let mut a = Node::start(21, vec![b.addr()], 1 << 20).await;
        let a_id = a.id();
        b.expect("A connects", |e| match e {
            P2pEvent::PeerConnected(p) if *p == a_id => Some(()),
            _ => None,
        })
        .await;
        // Queue of one: the first is taken off it, the second fills it, the third is refused as busy.
        let first = a.handle.request(b.id(), status_request()).await.unwrap();
        let queued = timeout(WAIT, sync_rx.recv())
            .await
            .expect("queued in time")
            .expect("open");
        let P2pEvent::SyncRequest { channel, .. } = queued else {
            panic!("not a sync request: {queued:?}");
        };
        // Hold the queue full with a second request, then a third overflows.
        let _second = a.handle.request(b.id(), status_request()).await.unwrap();
        wait_until("second request queued", || {
            let full = sync_rx.capacity() == 0;
            async move { full }
        })
        .await;
        let third = a.handle.request(b.id(), status_request()).await.unwrap();
        let b_id = b.id();
        let busy = a
            .expect("busy answer to the third", |e| match e {
                P2pEvent::SyncResponse {
                    peer,
                    request_id,
                    response,
                } if *peer == b_id && *request_id == third => Some(response.clone()),
                _ => None,
            })
            .await;
        assert_eq!(busy.resp, Some(sync_response::Resp::Error("busy".into())));
        // The queued one is still answerable; nothing reached the event channel.
        b.handle.respond(channel, chain_status(7));
        let answered = a
            .expect("answer to the first", |e| match e {
                P2pEvent::SyncResponse {
                    request_id, response, ..
                } if *request_id == first => Some(response.clone()),
                _ => None,
            })
            .await;
        assert_eq!(answered, chain_status(7));
        b.expect_none("sync request on the gossip channel", Duration::from_millis(300), |e| {
            matches!(e, P2pEvent::SyncRequest { .. })
        })
        .await;
    })
    .await
    .expect("test timed out");
}

/// A second connection from one peer is closed and the first kept (ADR
/// 0022): a pair that both dialled, or a peer that dials twice, ends with
/// one connection and its one set of buffers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_from_a_peer_is_closed() {
    use libp2p::swarm::{dial_opts::DialOpts, dummy, ConnectionId};
    init_tracing();
    timeout(Duration::from_secs(60), async {
        let node = Node::start(51, vec![], 1 << 20).await;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair_from_ed25519_secret([52; 32]))
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
            .unwrap()
            .with_behaviour(|_| dummy::Behaviour)
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let dial = || {
            DialOpts::peer_id(node.id())
                .addresses(vec![node.addr()])
                .condition(libp2p::swarm::dial_opts::PeerCondition::Always)
                .build()
        };
        let mut established: Vec<ConnectionId> = Vec::new();
        let mut closed: Vec<ConnectionId> = Vec::new();
        swarm.dial(dial()).unwrap();
        // The second dial only once the first is up, so "first" is clear.
        let deadline = Instant::now() + WAIT;
        while closed.is_empty() {
            let event = timeout(deadline - Instant::now(), swarm.select_next_some())
                .await
                .expect("the node closes one of two connections");
            match event {
                SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                    established.push(connection_id);
                    if established.len() == 1 {
                        swarm.dial(dial()).unwrap();
                    }
                }
                SwarmEvent::ConnectionClosed { connection_id, .. } => closed.push(connection_id),
                _ => {}
            }
        }
        assert_eq!(established.len(), 2, "both connections came up first");
        assert_eq!(closed, vec![established[1]], "the second connection is the one closed");
        // The first stays up.
        let _ = timeout(Duration::from_secs(3), async {
            loop {
                if let SwarmEvent::ConnectionClosed { connection_id, .. } = swarm.select_next_some().await {
                    closed.push(connection_id);
                }
            }
        })
        .await;
        assert_eq!(closed.len(), 1, "the first connection is kept: {closed:?}");
        assert!(swarm.is_connected(&node.id()));
        assert_eq!(node.handle.connected_peers(), 1);
    })
    .await
    .expect("test timed out");
}
