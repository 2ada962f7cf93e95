//! gRPC server tests: a hand-built `Shared` over a `MemStore` holding a few
//! finalized blocks, a server on 127.0.0.1:0 and the generated client.

use super::*;
use crate::config::GrpcSection;
use crate::metrics::Metrics;
use crate::state::{EngineRequest, HeadEvent, Shared, Status, SubmitError};
use bizra_consensus::chain::ChainState;
use bizra_consensus::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
use bizra_consensus::messages::{new_vote, sign_vote};
use bizra_consensus::signing::{self, Signer};
use bizra_consensus::types::{hash_bytes, Hash};
use bizra_consensus::validators::EpochWeights;
use bizra_consensus::{merkle, poi};
use bizra_proto::node_client::NodeClient;
use bizra_proto::*;
use bizra_storage::{MemStore, Store};
use prost::Message;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Code;

const CHAIN: &str = "bizra-rpc-test";
/// Each test's whole body is bounded by this.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Capacity of the heads channel (small, to make subscribers lag).
const HEADS_CAPACITY: usize = 4;

/// A chain of `n` finalized blocks over 4 equal-stake validators, epochs of
/// 2 blocks. Block 2 carries 3 attestations. Heights 1 and 2 are certified
/// by validators 0..3 (75% of the weight), the later ones by all 4.
pub struct Fixture {
    /// What the server answers from: the genesis, `signers[0]`'s key, a
    /// `MemStore` with the blocks, a status at finalized height `n`
    /// (consensus height `n + 1`, round 2, 3 peers), every epoch's weights,
    /// a heads channel of 4 (no head cached) and version `test-1.2.3`.
    pub shared: Arc<Shared>,
    /// The 4 validators' keys, secrets `[1; 32]` to `[4; 32]`.
    pub signers: Vec<Signer>,
    /// The finalized blocks, heights 1 to `n`.
    pub blocks: Vec<Block>,
    /// Their hashes.
    pub hashes: Vec<Hash>,
    /// Their commit certificates.
    pub commits: Vec<CommitCertificate>,
    /// The 3 attestations block 2 carries (made whatever `n` is).
    pub attestations: Vec<Envelope>,
    /// The weights of every epoch of the chain (as in `shared`).
    pub epochs: BTreeMap<u64, EpochWeights>,
    /// The engine's end of `shared.requests`, taken by
    /// [`Fixture::spawn_engine`]; with no engine running, a valid
    /// `SubmitAttestation` gets `UNAVAILABLE` after 10 s.
    pub engine: Mutex<Option<mpsc::Receiver<EngineRequest>>>,
}

fn attestation(signer: &Signer, subject: &Signer, nonce: u8) -> Envelope {
    attestation_on(CHAIN, signer, subject, nonce)
}

fn attestation_on(chain: &str, signer: &Signer, subject: &Signer, nonce: u8) -> Envelope {
    let att = PoiAttestation {
        version: poi::VERSION.into(),
        chain_id: chain.into(),
        attester: signer.id().into(),
        subject: subject.id().into(),
        evidence_digest: hash_bytes(&[nonce]).to_vec(),
        evidence_len: 1,
        dimensions: [("quality".to_string(), 5000u32)].into(),
        weights: [("quality".to_string(), 10_000u32)].into(),
        impact_bps: 5000,
        window_start_ms: 1,
        window_end_ms: 2,
        nonce: vec![nonce; 16],
    };
    poi::sign(signer, &att)
}

impl Fixture {
    /// Builds and stores the chain of `n` blocks described on the type, and
    /// the `Shared` that serves it.
    pub fn new(n: u64) -> Fixture {
        let signers: Vec<Signer> = (1..=4u8).map(|i| Signer::from_secret([i; 32])).collect();
        let doc = GenesisDoc {
            chain_id: CHAIN.into(),
            genesis_time_ms: 1_000,
            params: GenesisParams {
                epoch_length: 2,
                ..GenesisParams::default()
            },
            validators: signers
                .iter()
                .enumerate()
                .map(|(i, s)| GenesisValidator {
                    id: s.id().into(),
                    stake: 10_000,
                    name: format!("val{i}"),
                })
                .collect(),
        };
        let (genesis, _) = Genesis::from_doc(&doc).expect("genesis");
        let store = MemStore::new();
        let mut state = ChainState::genesis(&genesis);
        let mut epochs = BTreeMap::from([(0, state.weights.clone())]);
        let attestations: Vec<Envelope> = (0..3)
            .map(|i| attestation(&signers[i], &signers[3 - i], i as u8))
            .collect();
        let (mut blocks, mut hashes, mut commits) = (vec![], vec![], vec![]);
        let mut last_commit = None;
        for height in 1..=n {
            let proposer = genesis.members.get(state.proposer(0)).id.clone();
            let atts = if height == 2 { attestations.clone() } else { vec![] };
            let block = state.build_block(&genesis, &proposer, 1_000 + height * 1_000, last_commit.take(), atts);
            let hash = state.validate_block(&genesis, &block).expect("valid block");
            let voters = if height <= 2 { 3 } else { 4 };
            let commit = CommitCertificate {
                height,
                round: 0,
                block_hash: hash.to_vec(),
                precommits: signers[..voters]
                    .iter()
                    .map(|s| sign_vote(s, new_vote(CHAIN, height, 0, VoteKind::Precommit, Some(hash), s.id())))
                    .collect(),
            };
            state.apply(&genesis, &block, hash);
            store.put_finalized(&block, &commit, &state.to_bytes()).expect("store");
            epochs.insert(state.weights.epoch, state.weights.clone());
            blocks.push(block);
            hashes.push(hash);
            commits.push(commit.clone());
            last_commit = Some(commit);
        }
        let (heads, _) = broadcast::channel(HEADS_CAPACITY);
        let (requests, engine) = mpsc::channel(8);
        let status = Status {
            finalized_height: n,
            finalized_hash: hashes.last().copied().unwrap_or_default(),
            consensus_height: n + 1,
            consensus_round: 2,
            peers: 3,
            epoch: state.weights.epoch,
            ..Status::default()
        };
        let shared = Arc::new(Shared {
            genesis: Arc::new(genesis),
            signer: signers[0].clone(),
            store: Arc::new(store),
            metrics: Arc::new(Metrics::new()),
            status: RwLock::new(status),
            epochs: RwLock::new(epochs.clone()),
            heads,
            head: RwLock::new(None),
            requests,
            version: "test-1.2.3",
            evidence: RwLock::new(Default::default()),
        });
        Fixture {
            shared,
            signers,
            blocks,
            hashes,
            commits,
            attestations,
            epochs,
            engine: Mutex::new(Some(engine)),
        }
    }

    /// A stand-in engine for attestations that passed the API's checks:
    /// by the first nonce byte, 201 is a duplicate, 202 finds the pool
    /// full, 203 is held until `release` fires and then its reply dropped;
    /// anything else is accepted with its id.
    pub fn spawn_engine(&self, release: Option<oneshot::Receiver<()>>) -> JoinHandle<()> {
        let mut rx = self.engine.lock().unwrap().take().expect("engine receiver");
        tokio::spawn(async move {
            let mut release = release;
            while let Some(req) = rx.recv().await {
                let EngineRequest::SubmitAttestation {
                    envelope,
                    checked,
                    reply,
                } = req;
                let answer = match checked.att.nonce.first().copied().unwrap_or(0) {
                    201 => Err(SubmitError::Duplicate("duplicate id".into())),
                    202 => Err(SubmitError::Exhausted("pool full".into())),
                    203 => {
                        // Hold the reply until released, then drop it.
                        if let Some(r) = release.take() {
                            let _ = r.await;
                        }
                        drop(reply);
                        continue;
                    }
                    _ => Ok(hex::encode(hash_bytes(&envelope.payload))),
                };
                let _ = reply.send(answer);
            }
        })
    }
}

/// Starts a server on 127.0.0.1:0 with `cfg` (its `listen` is ignored).
/// Returns the address, the shutdown trigger and the server task.
pub async fn start(
    shared: Arc<Shared>,
    cfg: GrpcSection,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    let cfg = GrpcSection {
        listen: "127.0.0.1:0".into(),
        ..cfg
    };
    let listener = bind(&cfg).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_listener(shared, cfg, listener, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .expect("connect")
}

async fn client(addr: SocketAddr) -> NodeClient<Channel> {
    NodeClient::new(channel(addr).await).max_decoding_message_size(64 << 20)
}

async fn stop_server(stop: oneshot::Sender<()>, task: JoinHandle<anyhow::Result<()>>) {
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server stops within 10 s")
        .expect("server task")
        .expect("server returns Ok");
}

/// GetEvidence: argument errors get precise codes; the by-validator index
/// answers UNAVAILABLE until it is rebuilt; a height without evidence and a
/// validator without evidence answer empty lists.
#[tokio::test]
async fn get_evidence_codes() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        use bizra_proto::{get_evidence_request::Selector, GetEvidenceRequest};
        let fx = Fixture::new(3);
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;
        let mut c = client(addr).await;
        let by = |s: Selector| GetEvidenceRequest { selector: Some(s) };
        expect_code(
            c.get_evidence(GetEvidenceRequest { selector: None }).await,
            Code::InvalidArgument,
            "set validator or height",
        );
        for bad in ["", "xyz", &"A".repeat(64), &"a".repeat(63)] {
            expect_code(
                c.get_evidence(by(Selector::Validator(bad.to_string()))).await,
                Code::InvalidArgument,
                "64 lower-case hex",
            );
        }
        expect_code(
            c.get_evidence(by(Selector::Validator("ab".repeat(32)))).await,
            Code::NotFound,
            "is not a validator",
        );
        let v1 = fx.signers[1].id().to_string();
        expect_code(
            c.get_evidence(by(Selector::Validator(v1.clone()))).await,
            Code::Unavailable,
            "being rebuilt",
        );
        fx.shared.evidence.write().unwrap().complete = true;
        let r = c.get_evidence(by(Selector::Validator(v1))).await.unwrap().into_inner();
        assert!(r.evidence.is_empty());
        let r = c.get_evidence(by(Selector::Height(2))).await.unwrap().into_inner();
        assert!(r.evidence.is_empty());
        expect_code(c.get_evidence(by(Selector::Height(99))).await, Code::NotFound, "head 3");
        let _ = stop.send(());
        let _ = task.await;
    })
    .await
    .expect("test timed out");
}

fn expect_code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, code: Code, needle: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} ({needle}), got Ok({:?})", v.into_inner()),
        Err(s) => {
            assert_eq!(s.code(), code, "wrong code; message: {}", s.message());
            assert!(
                s.message().contains(needle),
                "message {:?} lacks {needle:?}",
                s.message()
            );
        }
    }
}

fn verify_envelope(env: &Envelope, key: &ed25519_dalek::VerifyingKey) {
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(env.signatures[0].keyid, hex::encode(key.as_bytes()));
    signing::verify(key, &env.payload_type, &env.payload, &env.signatures[0].sig).expect("envelope verifies");
}

#[tokio::test]
async fn every_method_happy_path() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(3);
        let _engine = fx.spawn_engine(None);
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;
        let mut c = client(addr).await;
        let g = &fx.shared.genesis;

        // GetStatus
        let s = c.get_status(GetStatusRequest {}).await.unwrap().into_inner();
        assert_eq!(s.chain_id, CHAIN);
        assert_eq!(s.genesis_hash, g.hash.to_vec());
        assert_eq!(s.validator, fx.signers[0].id());
        assert_eq!((s.finalized_height, s.finalized_hash), (3, fx.hashes[2].to_vec()));
        assert_eq!((s.consensus_height, s.consensus_round, s.peers, s.epoch), (4, 2, 3, 1));
        assert_eq!(s.version, "test-1.2.3");

        // GetHead
        let h = c.get_head(GetHeadRequest {}).await.unwrap().into_inner();
        assert_eq!((h.height, h.label.as_str()), (3, "B3"));
        assert_eq!(h.block_hash, fx.hashes[2].to_vec());
        assert_eq!(h.header, fx.blocks[2].header);
        // Once the engine has published the head, GetHead answers from the
        // cache: the same response as from the store.
        assert!(fx.shared.cached_head().is_none());
        fx.shared.publish_head(crate::state::HeadEvent {
            height: 3,
            hash: fx.hashes[2],
            header: fx.blocks[2].header.clone().unwrap(),
        });
        assert_eq!(c.get_head(GetHeadRequest {}).await.unwrap().into_inner(), h);

        // GetBlock by height and by hash
        let b = c
            .get_block(GetBlockRequest {
                selector: Some(get_block_request::Selector::Height(2)),
            })
            .await;
        let b = b.unwrap().into_inner();
        assert_eq!(b.block.as_ref(), Some(&fx.blocks[1]));
        assert_eq!(b.block_hash, fx.hashes[1].to_vec());
        let sel = get_block_request::Selector::Hash(fx.hashes[0].to_vec());
        let b = c
            .get_block(GetBlockRequest { selector: Some(sel) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(b.block.as_ref(), Some(&fx.blocks[0]));
        assert_eq!(b.block_hash, fx.hashes[0].to_vec());

        // GetCommit: height 1 (3 of 4 equal weights), then the latest (all 4).
        let cm = c.get_commit(GetCommitRequest { height: 1 }).await.unwrap().into_inner();
        assert_eq!(cm.commit.as_ref(), Some(&fx.commits[0]));
        let w0 = &fx.epochs[&0];
        assert_eq!(cm.total_weight, w0.total.to_string());
        assert_eq!(
            cm.signed_weight,
            (w0.weights[0] + w0.weights[1] + w0.weights[2]).to_string()
        );
        assert_eq!(cm.share_bps, 7500);
        assert!(cm.fast_final && !cm.economic_final);
        let ids: Vec<String> = fx.signers[..3].iter().map(|s| s.id().to_string()).collect();
        assert_eq!(cm.signers, ids);
        assert_eq!(cm.signatures.len(), 3);
        for (env, (sv, s)) in cm
            .signatures
            .iter()
            .zip(fx.commits[0].precommits.iter().zip(&fx.signers))
        {
            assert_eq!(env.payload_type, payload_type::VOTE);
            assert_eq!(Vote::decode(env.payload.as_slice()).unwrap(), sv.vote.clone().unwrap());
            verify_envelope(env, &s.public_key());
        }
        let cm = c.get_commit(GetCommitRequest { height: 0 }).await.unwrap().into_inner();
        assert_eq!(cm.commit.as_ref().map(|c| c.height), Some(3));
        let w1 = &fx.epochs[&1];
        assert_eq!(
            (cm.signed_weight.clone(), cm.total_weight.clone()),
            (w1.total.to_string(), w1.total.to_string())
        );
        assert_eq!(cm.share_bps, 10_000);
        assert!(cm.fast_final && cm.economic_final);
        assert_eq!(cm.signers.len(), 4);

        // GetValidators: current (latest epoch) and epoch 0.
        let v = c
            .get_validators(GetValidatorsRequest { epoch: None })
            .await
            .unwrap()
            .into_inner();
        let last = fx.epochs.values().next_back().unwrap();
        assert_eq!(v.epoch, last.epoch);
        assert!(v.epoch >= 1);
        assert_eq!(v.total_weight, last.total.to_string());
        for (i, info) in v.validators.iter().enumerate() {
            assert_eq!(info.id, fx.signers[i].id());
            assert_eq!(info.name, format!("val{i}"));
            assert_eq!(info.wq_weight, last.weights[i].to_string());
            let c = last.components[i];
            assert_eq!((info.stake, info.poi, info.rep), (c.stake, c.poi, c.rep));
        }
        let v0 = c
            .get_validators(GetValidatorsRequest { epoch: Some(0) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((v0.epoch, v0.validators.len()), (0, 4));
        assert!(v0
            .validators
            .iter()
            .all(|v| v.weight_share_bps == 2500 && v.stake == 10_000));

        // GetHeadReport: latest and a past height.
        let r = c
            .get_head_report(GetHeadReportRequest { height: 0 })
            .await
            .unwrap()
            .into_inner();
        let report = r.report.unwrap();
        assert_eq!((report.height, report.block_hash.clone()), (3, fx.hashes[2].to_vec()));
        let r2 = c
            .get_head_report(GetHeadReportRequest { height: 2 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r2.report.map(|r| (r.height, r.block_hash)),
            Some((2, fx.hashes[1].to_vec()))
        );

        // SubmitAttestation
        let env = fx.attestations[0].clone();
        let id = c
            .submit_attestation(SubmitAttestationRequest {
                envelope: Some(env.clone()),
            })
            .await
            .unwrap();
        assert_eq!(id.into_inner().id, hex::encode(hash_bytes(&env.payload)));

        // GetAttestation: the second attestation of block 2, with its proof.
        let att = &fx.attestations[1];
        let id = hex::encode(hash_bytes(&att.payload));
        let a = c
            .get_attestation(GetAttestationRequest { id })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a.envelope.as_ref(), Some(att));
        assert!(a.finalized);
        assert_eq!((a.height, a.block_hash.clone()), (2, fx.hashes[1].to_vec()));
        assert_eq!(a.commit.as_ref(), Some(&fx.commits[1]));
        let header = a.header.clone().unwrap();
        assert_eq!(Some(&header), fx.blocks[1].header.as_ref());
        let proof = a.proof.unwrap();
        assert_eq!((proof.leaf_index, proof.leaf_count), (1, 3));
        let siblings: Vec<Hash> = proof
            .siblings
            .iter()
            .map(|s| s.as_slice().try_into().unwrap())
            .collect();
        let leaf = merkle::leaf_hash(&hash_bytes(&att.payload), &att.signatures[0].sig);
        let root: Hash = header.payload_root.as_slice().try_into().unwrap();
        assert!(merkle::verify(&root, &leaf, 1, 3, &siblings));
        assert!(!merkle::verify(&root, &leaf, 0, 3, &siblings));

        // SubscribeHeads: the current head first, then each new one.
        let mut stream = c.subscribe_heads(SubscribeHeadsRequest {}).await.unwrap().into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert_eq!((first.height, first.label.as_str()), (3, "B3"));
        let header4 = BlockHeader {
            height: 4,
            chain_id: CHAIN.into(),
            ..Default::default()
        };
        fx.shared
            .heads
            .send(HeadEvent {
                height: 4,
                hash: [4; 32],
                header: header4.clone(),
            })
            .unwrap();
        let next = stream.message().await.unwrap().unwrap();
        assert_eq!(
            (next.height, next.label.as_str(), next.block_hash),
            (4, "B4", vec![4; 32])
        );
        assert_eq!(next.header, Some(header4));

        // Every call was timed under its method name.
        let text = fx.shared.metrics.encode();
        for m in [
            "GetStatus",
            "GetHead",
            "GetBlock",
            "GetCommit",
            "GetValidators",
            "GetHeadReport",
        ] {
            let line = format!("bizra_grpc_request_duration_seconds_count{{method=\"{m}\"}} ");
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        assert!(
            text.contains("bizra_grpc_request_duration_seconds_count{method=\"GetBlock\"} 2"),
            "{text}"
        );
        for m in ["SubmitAttestation", "GetAttestation", "SubscribeHeads"] {
            assert!(text.contains(&format!("method=\"{m}\"")), "missing {m}");
        }

        // Shutdown ends the open stream instead of waiting on it.
        stop_server(stop, task).await;
        let end = stream.message().await;
        assert!(!matches!(end, Ok(Some(_))), "stream must end at shutdown: {end:?}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn head_report_is_signed_by_this_validator() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(2);
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;
        let mut c = client(addr).await;
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let r = c
            .get_head_report(GetHeadReportRequest { height: 0 })
            .await
            .unwrap()
            .into_inner();
        let env = r.envelope.unwrap();
        let report = r.report.unwrap();
        assert_eq!(env.payload_type, payload_type::HEAD_REPORT);
        let key = fx.shared.signer.public_key();
        verify_envelope(&env, &key);
        assert_eq!(HeadReport::decode(env.payload.as_slice()).unwrap(), report);
        assert_eq!(report.chain_id, CHAIN);
        assert_eq!(report.genesis_hash, fx.shared.genesis.hash.to_vec());
        assert_eq!((report.height, report.block_hash.clone()), (2, fx.hashes[1].to_vec()));
        assert_eq!(report.validator, fx.signers[0].id());
        assert!(report.time_ms >= before && report.time_ms < before + 60_000);
        // Another validator's key, or a tampered payload, does not verify.
        assert!(signing::verify(
            &fx.signers[1].public_key(),
            &env.payload_type,
            &env.payload,
            &env.signatures[0].sig
        )
        .is_err());
        let mut tampered = env.payload.clone();
        tampered[0] ^= 1;
        assert!(signing::verify(&key, &env.payload_type, &tampered, &env.signatures[0].sig).is_err());
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn hostile_requests_get_precise_codes_and_the_server_survives() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(3);
        let _engine = fx.spawn_engine(None);
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;
        let mut c = client(addr).await;
        use get_block_request::Selector;

        let far = GetBlockRequest {
            selector: Some(Selector::Height(u64::MAX)),
        };
        expect_code(
            c.get_block(far).await,
            Code::NotFound,
            &format!("{} is above the finalized head 3", u64::MAX),
        );
        expect_code(
            c.get_block(GetBlockRequest {
                selector: Some(Selector::Height(4)),
            })
            .await,
            Code::NotFound,
            "head 3",
        );
        expect_code(
            c.get_block(GetBlockRequest {
                selector: Some(Selector::Height(0)),
            })
            .await,
            Code::InvalidArgument,
            "genesis",
        );
        expect_code(
            c.get_block(GetBlockRequest { selector: None }).await,
            Code::InvalidArgument,
            "selector",
        );
        for bad in [vec![], vec![1; 5], vec![1; 33]] {
            let n = bad.len();
            let r = c
                .get_block(GetBlockRequest {
                    selector: Some(Selector::Hash(bad)),
                })
                .await;
            expect_code(r, Code::InvalidArgument, &format!("32 bytes, got {n}"));
        }
        let r = c
            .get_block(GetBlockRequest {
                selector: Some(Selector::Hash(vec![7; 32])),
            })
            .await;
        expect_code(r, Code::NotFound, &hex::encode([7u8; 32]));
        expect_code(
            c.get_commit(GetCommitRequest { height: 99 }).await,
            Code::NotFound,
            "above the finalized head",
        );
        expect_code(
            c.get_head_report(GetHeadReportRequest { height: 4 }).await,
            Code::NotFound,
            "above the finalized head",
        );
        expect_code(
            c.get_validators(GetValidatorsRequest { epoch: Some(9) }).await,
            Code::NotFound,
            "epoch 9",
        );

        let valid_unknown = hex::encode([9u8; 32]);
        for bad in [
            "",
            "xyz",
            &"A".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
            &"g".repeat(64),
            &"é".repeat(32),
        ] {
            let r = c.get_attestation(GetAttestationRequest { id: bad.to_string() }).await;
            expect_code(r, Code::InvalidArgument, "64 lower-case hex");
        }
        let r = c
            .get_attestation(GetAttestationRequest {
                id: valid_unknown.clone(),
            })
            .await;
        expect_code(r, Code::NotFound, &valid_unknown);

        // SubmitAttestation: missing, oversized, and each engine refusal.
        expect_code(
            c.submit_attestation(SubmitAttestationRequest { envelope: None }).await,
            Code::InvalidArgument,
            "missing envelope",
        );
        let mut big = fx.attestations[0].clone();
        big.payload = vec![0; MAX_SUBMIT_BYTES];
        let r = c
            .submit_attestation(SubmitAttestationRequest { envelope: Some(big) })
            .await;
        expect_code(r, Code::ResourceExhausted, "above the limit");
        // The API checks the rules itself (bad signature, wrong chain); the
        // engine finds duplicates and a full pool.
        let mut forged = fx.attestations[0].clone();
        forged.signatures[0].sig[0] ^= 1;
        let (a, b) = (&fx.signers[0], &fx.signers[1]);
        for (env, code) in [
            (forged, Code::InvalidArgument),
            (attestation_on("another-chain", a, b, 7), Code::FailedPrecondition),
            (attestation(a, b, 201), Code::AlreadyExists),
            (attestation(a, b, 202), Code::ResourceExhausted),
        ] {
            expect_code(
                c.submit_attestation(SubmitAttestationRequest { envelope: Some(env) })
                    .await,
                code,
                "",
            );
        }
        // Above grpc.max_request_bytes (1 MiB): refused by the transport limit.
        let mut huge = fx.attestations[0].clone();
        huge.payload = vec![0; 2 << 20];
        let r = c
            .submit_attestation(SubmitAttestationRequest { envelope: Some(huge) })
            .await;
        expect_code(r, Code::ResourceExhausted, "too large");

        // Still serving, on the same connection and on a new one.
        assert_eq!(c.get_head(GetHeadRequest {}).await.unwrap().into_inner().height, 3);
        let mut c2 = client(addr).await;
        assert_eq!(
            c2.get_status(GetStatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .finalized_height,
            3
        );
        // Unknown methods are UNIMPLEMENTED and do not add metric labels.
        let mut raw = tonic::client::Grpc::new(channel(addr).await);
        raw.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/bizra.node.v1.Node/Nope");
        let codec = tonic_prost::ProstCodec::<GetHeadRequest, GetHeadResponse>::default();
        let r = raw.unary(tonic::Request::new(GetHeadRequest {}), path, codec).await;
        assert_eq!(r.unwrap_err().code(), Code::Unimplemented);
        assert!(!fx.shared.metrics.encode().contains("Nope"));
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

/// Only epoch 0 and the newest epochs stay in memory
/// (`EPOCHS_IN_MEMORY`); the others are read back from the store, for
/// `GetValidators` of an old epoch and `GetCommit` of an old height too.
#[tokio::test]
async fn old_epochs_leave_memory_and_are_served_from_the_store() {
    use crate::state::EPOCHS_IN_MEMORY;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(40);
        assert!(fx.epochs.len() > EPOCHS_IN_MEMORY + 2, "{} epochs", fx.epochs.len());
        fx.shared.epochs.write().unwrap().clear();
        for w in fx.epochs.values() {
            assert!(fx.shared.remember_epoch(w, false), "epoch {}", w.epoch);
        }
        let newest = fx.epochs.values().next_back().unwrap();
        assert!(!fx.shared.remember_epoch(newest, false), "the newest is known");
        let kept: Vec<u64> = fx.shared.epochs.read().unwrap().keys().copied().collect();
        assert_eq!(kept.len(), EPOCHS_IN_MEMORY, "{kept:?}");
        assert_eq!((kept[0], kept.last().copied()), (0, Some(newest.epoch)));
        for (e, w) in &fx.epochs {
            assert_eq!(fx.shared.weights_for_epoch(*e).as_ref(), Some(w), "epoch {e}");
        }
        let old = bizra_consensus::types::epoch_of(3, 2);
        assert!(!kept.contains(&old), "height 3's epoch {old} left memory");
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;
        let mut c = client(addr).await;
        let v = c
            .get_validators(GetValidatorsRequest { epoch: Some(old) })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.epoch, old);
        assert_eq!(v.total_weight, fx.epochs[&old].total.to_string());
        let cm = c.get_commit(GetCommitRequest { height: 3 }).await.unwrap().into_inner();
        assert_eq!(cm.total_weight, fx.epochs[&old].total.to_string());
        expect_code(
            c.get_validators(GetValidatorsRequest { epoch: Some(999) }).await,
            Code::NotFound,
            "epoch 999 is not known",
        );
        // Stored bytes that do not parse are unknown, not a crash.
        fx.shared.store.put_epoch_weights(old, b"{").unwrap();
        assert_eq!(fx.shared.weights_for_epoch(old), None);
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn empty_chain_and_stopped_engine() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(0);
        drop(fx.engine.lock().unwrap().take()); // the engine is gone
        fx.shared.epochs.write().unwrap().clear();
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;
        let mut c = client(addr).await;
        expect_code(
            c.get_head(GetHeadRequest {}).await,
            Code::NotFound,
            "no finalized block yet",
        );
        let r = c
            .get_block(GetBlockRequest {
                selector: Some(get_block_request::Selector::Height(1)),
            })
            .await;
        expect_code(r, Code::NotFound, "above the finalized head 0");
        expect_code(
            c.get_commit(GetCommitRequest { height: 0 }).await,
            Code::NotFound,
            "no finalized block yet",
        );
        expect_code(
            c.get_head_report(GetHeadReportRequest { height: 0 }).await,
            Code::NotFound,
            "no finalized block yet",
        );
        expect_code(
            c.get_validators(GetValidatorsRequest { epoch: None }).await,
            Code::FailedPrecondition,
            "no epoch",
        );
        let env = Some(fx.attestations[0].clone());
        expect_code(
            c.submit_attestation(SubmitAttestationRequest { envelope: env }).await,
            Code::Unavailable,
            "not running",
        );
        let s = c.get_status(GetStatusRequest {}).await.unwrap().into_inner();
        assert_eq!(
            (s.finalized_height, s.finalized_hash),
            (0, fx.shared.genesis.hash.to_vec())
        );

        // A subscriber on an empty chain gets the first head when it comes.
        let mut stream = c.subscribe_heads(SubscribeHeadsRequest {}).await.unwrap().into_inner();
        tokio::time::sleep(Duration::from_millis(100)).await;
        fx.shared
            .heads
            .send(HeadEvent {
                height: 1,
                hash: [1; 32],
                header: BlockHeader::default(),
            })
            .unwrap();
        assert_eq!(stream.message().await.unwrap().unwrap().height, 1);
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn lagging_subscriber_skips_ahead() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(1);
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;
        let mut c = client(addr).await;
        let mut stream = c.subscribe_heads(SubscribeHeadsRequest {}).await.unwrap().into_inner();
        assert_eq!(stream.message().await.unwrap().unwrap().height, 1);
        // Far more heads than the channel holds, while nobody reads.
        for h in 2..=40u64 {
            let header = BlockHeader {
                height: h,
                ..Default::default()
            };
            fx.shared
                .heads
                .send(HeadEvent {
                    height: h,
                    hash: [h as u8; 32],
                    header,
                })
                .unwrap();
        }
        let mut got = vec![];
        while got.last() != Some(&40) {
            let m = stream
                .message()
                .await
                .expect("stream stays healthy")
                .expect("stream open");
            got.push(m.height);
        }
        assert!(got.windows(2).all(|w| w[0] < w[1]), "increasing: {got:?}");
        assert!(got.len() < 39, "a lagging subscriber skips ahead: {got:?}");
        // A repeated or older head is not sent again.
        fx.shared
            .heads
            .send(HeadEvent {
                height: 40,
                hash: [0; 32],
                header: BlockHeader::default(),
            })
            .unwrap();
        fx.shared
            .heads
            .send(HeadEvent {
                height: 41,
                hash: [41; 32],
                header: BlockHeader::default(),
            })
            .unwrap();
        assert_eq!(stream.message().await.unwrap().unwrap().height, 41);
        // The server still answers.
        assert_eq!(c.get_head(GetHeadRequest {}).await.unwrap().into_inner().height, 1);
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn health_reports_not_serving_until_the_node_serves() {
    use tonic_health::pb::health_check_response::ServingStatus as S;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(1);
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;
        let mut h = HealthClient::new(channel(addr).await);
        let check = |service: &str| HealthCheckRequest {
            service: service.into(),
        };
        for svc in ["", NODE_SERVICE] {
            let s = h.check(check(svc)).await.unwrap().into_inner().status;
            assert_eq!(s, S::NotServing as i32, "{svc:?}");
        }
        assert_eq!(h.check(check("nope.Service")).await.unwrap_err().code(), Code::NotFound);
        // Stays NOT_SERVING across several polls.
        tokio::time::sleep(HEALTH_POLL * 3).await;
        assert_eq!(
            h.check(check("")).await.unwrap().into_inner().status,
            S::NotServing as i32
        );

        fx.shared.status.write().unwrap().serving = true;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for svc in ["", NODE_SERVICE] {
            loop {
                let s = h.check(check(svc)).await.unwrap().into_inner().status;
                if s == S::Serving as i32 {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "{svc:?} never became SERVING");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn reflection_lists_the_node_service() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(1);
        let (addr, stop, task) = start(fx.shared.clone(), GrpcSection::default()).await;

        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        let mut r = ServerReflectionClient::new(channel(addr).await);
        let reqs = vec![
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol("bizra.node.v1.Node".into())),
            },
        ];
        let mut replies = r
            .server_reflection_info(futures::stream::iter(reqs))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("expected a service list")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in [
            "bizra.node.v1.Node",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
        let Some(MessageResponse::FileDescriptorResponse(fd)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("expected a file descriptor")
        };
        assert!(!fd.file_descriptor_proto.is_empty());

        // v1alpha, for older tools.
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
        let mut a = AlphaClient::new(channel(addr).await);
        let req = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(AlphaRequest::ListServices(String::new())),
        };
        let mut replies = a
            .server_reflection_info(futures::stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let Some(AlphaResponse::ListServicesResponse(list)) =
            replies.message().await.unwrap().unwrap().message_response
        else {
            panic!("expected a service list")
        };
        assert!(list.service.iter().any(|s| s.name == "bizra.node.v1.Node"));
        drop(replies);
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn rate_limit_is_resource_exhausted() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(1);
        let cfg = GrpcSection {
            rate_limit_per_client: 5,
            ..GrpcSection::default()
        };
        let (addr, stop, task) = start(fx.shared.clone(), cfg).await;
        let mut c = client(addr).await;
        let mut results = vec![];
        for _ in 0..20 {
            results.push(c.get_status(GetStatusRequest {}).await.map(|_| ()));
        }
        assert!(
            results[..5].iter().all(|r| r.is_ok()),
            "the burst is served: {results:?}"
        );
        let limited: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(limited.len() >= 10, "most of 20 quick calls are refused: {results:?}");
        assert!(limited
            .iter()
            .all(|s| s.code() == Code::ResourceExhausted && s.message().contains("rate limit")));
        // The limit is per client: another connection still has its whole burst.
        let mut other = client(addr).await;
        for _ in 0..5 {
            other
                .get_status(GetStatusRequest {})
                .await
                .expect("a second client is not starved by the first");
        }
        // Refusals are counted by code.
        let text = fx.shared.metrics.encode();
        assert!(
            text.contains("bizra_grpc_requests_total{method=\"GetStatus\",code=\"RESOURCE_EXHAUSTED\"}"),
            "{text}"
        );
        // Tokens come back.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(c.get_status(GetStatusRequest {}).await.is_ok());
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn connections_per_ip_are_bounded() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(1);
        let cfg = GrpcSection {
            max_connections_per_ip: 2,
            ..GrpcSection::default()
        };
        let (addr, stop, task) = start(fx.shared.clone(), cfg).await;
        let mut c1 = client(addr).await;
        let mut c2 = client(addr).await;
        c1.get_status(GetStatusRequest {})
            .await
            .expect("first connection served");
        c2.get_status(GetStatusRequest {})
            .await
            .expect("second connection served");
        // A third connection from 127.0.0.1 is closed before HTTP/2 starts.
        let third = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .connect()
            .await;
        match third {
            Err(_) => {}
            Ok(ch) => {
                let r = NodeClient::new(ch).get_status(GetStatusRequest {}).await;
                assert!(r.is_err(), "a third connection was served: {r:?}");
            }
        }
        // Closing one gives its place back.
        drop(c2);
        let mut served = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(ch) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
            {
                if NodeClient::new(ch).get_status(GetStatusRequest {}).await.is_ok() {
                    served = true;
                    break;
                }
            }
        }
        assert!(served, "a place freed by a closed connection is given to a new one");
        c1.get_status(GetStatusRequest {})
            .await
            .expect("the first connection lives on");
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn concurrency_limit_refuses_when_busy() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let fx = Fixture::new(1);
        let (release, released) = oneshot::channel();
        let _engine = fx.spawn_engine(Some(released));
        let cfg = GrpcSection {
            concurrency_limit: 1,
            ..GrpcSection::default()
        };
        let (addr, stop, task) = start(fx.shared.clone(), cfg).await;
        // One call occupies the only slot (the engine holds it).
        let mut c1 = client(addr).await;
        let env = attestation(&fx.signers[0], &fx.signers[1], 203);
        let held = tokio::spawn(async move {
            c1.submit_attestation(SubmitAttestationRequest { envelope: Some(env) })
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Another connection waits QUEUE_WAIT, then is refused.
        let mut c2 = client(addr).await;
        let t = std::time::Instant::now();
        expect_code(
            c2.get_status(GetStatusRequest {}).await,
            Code::ResourceExhausted,
            "server busy",
        );
        assert!(t.elapsed() >= guard::QUEUE_WAIT - Duration::from_millis(100));
        // Once the slot is free, calls are served again.
        release.send(()).unwrap();
        let r = held.await.unwrap();
        expect_code(r, Code::Unavailable, "dropped");
        assert!(c2.get_status(GetStatusRequest {}).await.is_ok());
        stop_server(stop, task).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn bind_failure_is_a_clear_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let fx = Fixture::new(0);
    let cfg = GrpcSection {
        listen: addr.clone(),
        ..GrpcSection::default()
    };
    let r = tokio::time::timeout(TEST_TIMEOUT, serve(fx.shared.clone(), cfg, async {}))
        .await
        .expect("no hang");
    assert_eq!(
        r.unwrap_err().to_string(),
        format!("gRPC listen {addr}: address in use")
    );
    let cfg = GrpcSection {
        listen: "not an address".into(),
        ..GrpcSection::default()
    };
    let e = serve(fx.shared.clone(), cfg, async {}).await.unwrap_err().to_string();
    assert!(e.starts_with("gRPC listen not an address: "), "{e}");
}
