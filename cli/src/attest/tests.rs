//! Tests of `bizra attest`: argument checks, the attestation.json shape,
//! inclusion checks against lying nodes, and fake-node submissions.

use super::*;
use crate::proof;
use bizra_consensus::chain;
use bizra_consensus::merkle;
use bizra_consensus::messages::{new_vote, sign_vote};
use bizra_consensus::types::hash_bytes;
use bizra_proto::{BlockHeader, CommitCertificate, InclusionProof, PoiAttestation, ValidatorInfo, VoteKind};
use bizra_proto::{GetAttestationResponse, GetCommitResponse, GetValidatorsResponse};
use prost::Message;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bizra-attest-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn usage_msg(r: Result<impl std::fmt::Debug, Failure>) -> String {
    match r {
        Err(Failure::Usage(m)) => m,
        other => panic!("expected a usage failure, got {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn parses_dims() {
    assert_eq!(parse_dim("uptime=9500:4000"), Ok(("uptime".into(), 9500, 4000)));
    assert_eq!(parse_dim("a.b-c_9=0:10000"), Ok(("a.b-c_9".into(), 0, 10000)));
    let (d, w) = parse_dims(&strings(&["uptime=9500:4000", "accuracy=8000:6000"])).unwrap();
    assert_eq!(d["uptime"], 9500);
    assert_eq!(w["accuracy"], 6000);
    assert_eq!(poi::impact_bps(&d, &w), Ok(8600));
}

#[test]
fn malformed_dims_name_the_flag() {
    for bad in [
        "uptime",
        "uptime=9500",
        "=1:10000",
        "Up=1:10000",
        "up time=1:10000",
        "uptime=10001:10000",
        "uptime=1:10001",
        "uptime=-1:10000",
        "uptime=+1:10000",
        "uptime=1.5:10000",
        "uptime=1:",
        "uptime=:1",
    ] {
        let m = usage_msg(parse_dims(&strings(&[bad])));
        assert!(m.contains(&format!("--dim {bad:?}")), "{bad}: {m}");
    }
    let m = usage_msg(parse_dims(&strings(&["a=1:5000", "a=2:5000"])));
    assert!(m.contains("more than once"), "{m}");
    let m = usage_msg(parse_dims(&strings(&["a=1:5000", "b=2:4999"])));
    assert!(m.contains("sum to 9999"), "{m}");
    let many: Vec<String> = (0..=poi::MAX_DIMENSIONS).map(|i| format!("d{i}=1:0")).collect();
    assert!(usage_msg(parse_dims(&many)).contains("limit"));
    assert!(usage_msg(parse_dims(&[])).contains("--dim"));
}

#[test]
fn evidence_digest_and_missing_file() {
    let d = tmpdir("evidence");
    let p = d.join("ev.bin");
    std::fs::write(&p, b"some evidence").unwrap();
    let (h, n) = hash_evidence(&p).unwrap();
    assert_eq!(h, *blake3::hash(b"some evidence").as_bytes());
    assert_eq!(n, 13);
    let m = usage_msg(hash_evidence(&d.join("missing.bin")));
    assert!(m.contains("evidence file"), "{m}");
    assert!(usage_msg(hash_evidence(&d)).contains("evidence file"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn window_defaults_and_refusals() {
    let now = 10_000_000;
    assert_eq!(window(None, None, now).unwrap(), (now - DEFAULT_WINDOW_MS, now));
    assert_eq!(
        window(None, Some(5_000_000), now).unwrap(),
        (5_000_000 - DEFAULT_WINDOW_MS, 5_000_000)
    );
    assert_eq!(window(Some(42), None, now).unwrap(), (42, now));
    assert_eq!(window(None, None, 5).unwrap(), (0, 5));
    assert!(usage_msg(window(Some(now + 1), None, now)).contains("after the window end"));
    assert!(usage_msg(window(None, Some(now + poi::MAX_CLOCK_SKEW_MS + 1), now)).contains("future"));
    assert!(window(None, Some(now + poi::MAX_CLOCK_SKEW_MS), now).is_ok());
}

#[test]
fn endpoint_urls() {
    assert_eq!(endpoint_url("127.0.0.1:7500").unwrap(), "http://127.0.0.1:7500");
    assert_eq!(endpoint_url("http://127.0.0.1:7500").unwrap(), "http://127.0.0.1:7500");
    assert!(matches!(endpoint_url(""), Err(Failure::Usage(_))));
    assert!(matches!(endpoint_url("http://exa mple:1"), Err(Failure::Usage(_))));
}

/// A finalized block carrying `env` (and two other attestations), its
/// commit by 3 of 4 validators, and the node's answers about it.
struct World {
    signers: Vec<Signer>,
    chain_id: String,
    envelope: Envelope,
    included: GetAttestationResponse,
    commit: GetCommitResponse,
    validators: GetValidatorsResponse,
}

fn world(epoch: u64) -> World {
    let signers: Vec<Signer> = (0..4u8).map(|i| Signer::from_secret([i + 11; 32])).collect();
    let chain_id = "bizra-attest-test".to_string();
    let now = now_ms();
    let mk = |who: usize, nonce: u8| {
        poi::build(
            &signers[who],
            Draft {
                chain_id: chain_id.clone(),
                subject: signers[1].id().to_string(),
                evidence_digest: *blake3::hash(b"ev").as_bytes(),
                evidence_len: 2,
                dimensions: [("uptime".to_string(), 9500), ("accuracy".to_string(), 8000)].into(),
                weights: [("uptime".to_string(), 4000), ("accuracy".to_string(), 6000)].into(),
                window_start_ms: now - DEFAULT_WINDOW_MS,
                window_end_ms: now,
                nonce: vec![nonce; 16],
            },
        )
        .unwrap()
    };
    let atts = vec![mk(2, 1), mk(0, 2), mk(3, 3)];
    let leaves = chain::attestation_leaves(&atts).unwrap();
    let header = BlockHeader {
        chain_id: chain_id.clone(),
        height: 7,
        parent_hash: vec![1; 32],
        proposer: signers[0].id().to_string(),
        time_ms: now,
        payload_root: merkle::root(&leaves).to_vec(),
        last_commit_hash: vec![2; 32],
        epoch,
        evidence_root: vec![],
    };
    let block_hash = hash_bytes(&header.encode_to_vec());
    let precommits: Vec<_> = (0..3)
        .map(|i| {
            let v = new_vote(&chain_id, 7, 0, VoteKind::Precommit, Some(block_hash), signers[i].id());
            sign_vote(&signers[i], v)
        })
        .collect();
    let cert = CommitCertificate {
        height: 7,
        round: 0,
        block_hash: block_hash.to_vec(),
        precommits: precommits.clone(),
    };
    let included = GetAttestationResponse {
        envelope: Some(atts[1].clone()),
        finalized: true,
        height: 7,
        block_hash: block_hash.to_vec(),
        proof: Some(InclusionProof {
            leaf_index: 1,
            leaf_count: 3,
            siblings: merkle::proof(&leaves, 1).unwrap().iter().map(|s| s.to_vec()).collect(),
        }),
        commit: Some(cert.clone()),
        header: Some(header),
    };
    let commit = GetCommitResponse {
        commit: Some(cert),
        signatures: precommits.iter().map(proof::signed_vote_envelope).collect(),
        signers: (0..3).map(|i| signers[i].id().to_string()).collect(),
        signed_weight: "340282366920938463463374607431768211455".into(),
        total_weight: "340282366920938463463374607431768211455".into(),
        share_bps: 10_000,
        fast_final: true,
        economic_final: true,
    };
    let validators = GetValidatorsResponse {
        epoch,
        total_weight: "4000".into(),
        validators: signers
            .iter()
            .map(|s| ValidatorInfo {
                id: s.id().to_string(),
                name: "v".into(),
                stake: 1000,
                poi: 7,
                rep: 10_000,
                wq_weight: "1000".into(),
                weight_share_bps: 2500,
                ..Default::default()
            })
            .collect(),
    };
    World {
        envelope: atts[1].clone(),
        signers,
        chain_id,
        included,
        commit,
        validators,
    }
}

#[test]
fn attestation_json_has_the_contract_shape() {
    let w = world(1);
    check_inclusion(&w.envelope, &w.included).unwrap();
    let doc = attestation_json(&w.envelope, &w.included, &w.commit, Some(&w.validators)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&doc.to_json_pretty()).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;

    assert_eq!(v["version"], "poi-attestation/1");
    let env = &v["envelope"];
    assert_eq!(env["payloadType"], "application/vnd.bizra.poi+protobuf");
    assert_eq!(
        b64.decode(env["payload"].as_str().unwrap()).unwrap(),
        w.envelope.payload
    );
    assert_eq!(env["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(env["signatures"][0]["keyid"], w.signers[0].id());
    assert_eq!(
        b64.decode(env["signatures"][0]["sig"].as_str().unwrap()).unwrap(),
        w.envelope.signatures[0].sig
    );

    let att = PoiAttestation::decode(w.envelope.payload.as_slice()).unwrap();
    let a = &v["attestation"];
    assert_eq!(a["version"], "poi/1");
    assert_eq!(a["chain_id"], w.chain_id.as_str());
    assert_eq!(a["attester"], w.signers[0].id());
    assert_eq!(a["subject"], w.signers[1].id());
    assert_eq!(a["evidence_digest"], hex::encode(blake3::hash(b"ev").as_bytes()));
    assert_eq!(a["evidence_len"], 2);
    assert_eq!(a["dimensions"]["uptime"], 9500);
    assert_eq!(a["weights"]["accuracy"], 6000);
    assert_eq!(a["impact_bps"], 8600);
    assert_eq!(a["window_start_ms"], att.window_start_ms);
    assert_eq!(a["window_end_ms"], att.window_end_ms);
    assert_eq!(a["nonce"], hex::encode([2u8; 16]));

    let inc = &v["inclusion"];
    assert_eq!(inc["height"], 7);
    assert_eq!(inc["block_hash"], hex::encode(&w.included.block_hash));
    assert_eq!(inc["proof"]["leaf_index"], 1);
    assert_eq!(inc["proof"]["leaf_count"], 3);
    let sibs = inc["proof"]["siblings"].as_array().unwrap();
    assert_eq!(sibs.len(), w.included.proof.as_ref().unwrap().siblings.len());
    assert!(sibs.iter().all(|s| s.as_str().unwrap().len() == 64));
    let header = b64.decode(inc["header"].as_str().unwrap()).unwrap();
    assert_eq!(hex::encode(hash_bytes(&header)), inc["block_hash"].as_str().unwrap());
    let c = &inc["commit"];
    assert_eq!(c["signers"].as_array().unwrap().len(), 3);
    assert_eq!(c["signers"][2], w.signers[2].id());
    assert_eq!(c["signatures"].as_array().unwrap().len(), 3);
    assert_eq!(c["signatures"][0]["payloadType"], "application/vnd.bizra.vote+protobuf");
    assert_eq!(c["signed_weight"], "340282366920938463463374607431768211455");
    assert_eq!(c["total_weight"], "340282366920938463463374607431768211455");
    assert_eq!(c["share_bps"], 10_000);
    assert_eq!(c["fast_final"], true);
    assert_eq!(c["economic_final"], true);
    assert_eq!(inc["telemetry"]["wq_weight"][w.signers[3].id()], "1000");
    assert_eq!(inc["telemetry"]["components"][w.signers[3].id()]["poi"], 7);

    // Weights that are not decimal strings are refused.
    let mut bad = w.commit.clone();
    bad.signed_weight = "12.5".into();
    assert!(attestation_json(&w.envelope, &w.included, &bad, None)
        .unwrap_err()
        .contains("signed_weight"));
}

#[test]
fn inclusion_checks_catch_a_lying_node() {
    let w = world(0);
    let mut r = w.included.clone();
    r.block_hash[0] ^= 1;
    assert!(check_inclusion(&w.envelope, &r)
        .unwrap_err()
        .contains("hash of the header"));
    let mut r = w.included.clone();
    r.proof.as_mut().unwrap().leaf_index = 0;
    assert!(check_inclusion(&w.envelope, &r).unwrap_err().contains("Merkle"));
    let mut r = w.included.clone();
    r.proof.as_mut().unwrap().siblings.pop();
    assert!(check_inclusion(&w.envelope, &r).unwrap_err().contains("Merkle"));
    let mut r = w.included.clone();
    r.envelope.as_mut().unwrap().signatures[0].sig[0] ^= 1;
    assert!(check_inclusion(&w.envelope, &r)
        .unwrap_err()
        .contains("different envelope"));
    let mut r = w.included.clone();
    r.commit.as_mut().unwrap().block_hash = vec![9; 32];
    assert!(check_inclusion(&w.envelope, &r).unwrap_err().contains("commit"));
    let mut r = w.included.clone();
    r.header = None;
    assert!(check_inclusion(&w.envelope, &r).is_err());
}

// ---- end to end against an in-process gRPC node on 127.0.0.1 ----

mod fake {
    use super::*;
    use bizra_proto::node_server::{Node, NodeServer};
    use bizra_proto::*;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;
    use tonic::{Request, Response, Status};

    /// Accepts attestations (by the node's rules) and reports one finalized
    /// after `pending_polls` NOT_FOUND answers, inside the world's block.
    pub struct FakeNode {
        pub world: World,
        pub members: Membership,
        pub pending_polls: u32,
        pub polls: AtomicU32,
        pub submitted: Mutex<Option<Envelope>>,
    }

    type HeadStream = Pin<Box<dyn futures::Stream<Item = Result<GetHeadResponse, Status>> + Send>>;

    #[tonic::async_trait]
    impl Node for FakeNode {
        async fn get_status(&self, _: Request<GetStatusRequest>) -> Result<Response<GetStatusResponse>, Status> {
            Ok(Response::new(GetStatusResponse {
                chain_id: self.world.chain_id.clone(),
                ..Default::default()
            }))
        }
        async fn get_head(&self, _: Request<GetHeadRequest>) -> Result<Response<GetHeadResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn get_block(&self, _: Request<GetBlockRequest>) -> Result<Response<GetBlockResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn get_commit(&self, r: Request<GetCommitRequest>) -> Result<Response<GetCommitResponse>, Status> {
            if r.into_inner().height != 7 {
                return Err(Status::not_found("no such height"));
            }
            Ok(Response::new(self.world.commit.clone()))
        }
        async fn get_validators(
            &self,
            _: Request<GetValidatorsRequest>,
        ) -> Result<Response<GetValidatorsResponse>, Status> {
            Ok(Response::new(self.world.validators.clone()))
        }
        async fn get_head_report(
            &self,
            _: Request<GetHeadReportRequest>,
        ) -> Result<Response<GetHeadReportResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        type SubscribeHeadsStream = HeadStream;
        async fn subscribe_heads(&self, _: Request<SubscribeHeadsRequest>) -> Result<Response<HeadStream>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn submit_attestation(
            &self,
            r: Request<SubmitAttestationRequest>,
        ) -> Result<Response<SubmitAttestationResponse>, Status> {
            let env = r
                .into_inner()
                .envelope
                .ok_or_else(|| Status::invalid_argument("no envelope"))?;
            let c = poi::check(&env, &self.world.chain_id, &self.members, now_ms()).map_err(|e| match e.kind() {
                poi::ErrorKind::FailedPrecondition => Status::failed_precondition(e.to_string()),
                poi::ErrorKind::TooLarge => Status::resource_exhausted(e.to_string()),
                poi::ErrorKind::InvalidArgument => Status::invalid_argument(e.to_string()),
            })?;
            *self.submitted.lock().unwrap() = Some(env);
            Ok(Response::new(SubmitAttestationResponse { id: hex::encode(c.id) }))
        }
        async fn get_attestation(
            &self,
            r: Request<GetAttestationRequest>,
        ) -> Result<Response<GetAttestationResponse>, Status> {
            let id = r.into_inner().id;
            let Some(env) = self.submitted.lock().unwrap().clone() else {
                return Err(Status::not_found("unknown"));
            };
            if id != hex::encode(poi::attestation_id(&env.payload)) {
                return Err(Status::not_found("unknown"));
            }
            if self.polls.fetch_add(1, Ordering::SeqCst) < self.pending_polls {
                return Err(Status::not_found("not finalized yet"));
            }
            // Finalize it: rebuild the world's block around the submitted envelope.
            let w = &self.world;
            let atts = vec![w.envelope.clone(), env.clone()];
            let leaves = chain::attestation_leaves(&atts).unwrap();
            let mut header = w.included.header.clone().unwrap();
            header.payload_root = merkle::root(&leaves).to_vec();
            let hash = hash_bytes(&header.encode_to_vec());
            Ok(Response::new(GetAttestationResponse {
                envelope: Some(env),
                finalized: true,
                height: 7,
                block_hash: hash.to_vec(),
                proof: Some(InclusionProof {
                    leaf_index: 1,
                    leaf_count: 2,
                    siblings: merkle::proof(&leaves, 1).unwrap().iter().map(|s| s.to_vec()).collect(),
                }),
                commit: None,
                header: Some(header),
            }))
        }
        async fn get_evidence(&self, _: Request<GetEvidenceRequest>) -> Result<Response<GetEvidenceResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
    }

    /// Serves `node` on 127.0.0.1 in a background runtime; returns the endpoint.
    pub fn serve(node: FakeNode) -> (String, std::thread::JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let incoming = futures::stream::unfold(listener, |l| async move {
                    let r = l.accept().await.map(|(s, _)| s);
                    Some((r, l))
                });
                tonic::transport::Server::builder()
                    .add_service(NodeServer::new(node))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        (format!("http://{addr}"), handle, stop_tx)
    }
}

fn args(dir: &Path, grpc: &str, wait: bool, dims: &[&str]) -> AttestArgs {
    AttestArgs {
        grpc: grpc.to_string(),
        key: dir.join("key.json"),
        subject: "subject-1".into(),
        evidence: dir.join("evidence.txt"),
        dims: strings(dims),
        window_start: None,
        window_end: None,
        wait,
        out: dir.join("attestation.json"),
        timeout: 20,
    }
}

fn setup(tag: &str, signer: &Signer) -> PathBuf {
    let d = tmpdir(tag);
    bizra_node::keys::write(&d.join("key.json"), signer).unwrap();
    std::fs::write(d.join("evidence.txt"), b"benchmark results").unwrap();
    d
}

fn fake_node(pending_polls: u32) -> fake::FakeNode {
    let w = world(1);
    let members = Membership::new(
        w.signers
            .iter()
            .map(|s| Member {
                id: s.id().to_string(),
                name: String::new(),
                stake: 1,
                key: s.public_key(),
            })
            .collect(),
    );
    fake::FakeNode {
        world: w,
        members,
        pending_polls,
        polls: Default::default(),
        submitted: Default::default(),
    }
}

#[test]
fn submit_wait_and_write_against_a_fake_node() {
    let node = fake_node(2);
    let signer = node.world.signers[2].clone();
    let (url, handle, stop) = fake::serve(node);
    let d = setup("e2e", &signer);
    run(args(&d, &url, true, &["uptime=9500:4000", "accuracy=8000:6000"])).unwrap();
    let text = std::fs::read_to_string(d.join("attestation.json")).unwrap();
    let doc: proof::AttestationDoc = serde_json::from_str(&text).unwrap();
    assert_eq!(doc.version, "poi-attestation/1");
    assert_eq!(doc.attestation.attester, signer.id());
    assert_eq!(doc.attestation.subject, "subject-1");
    assert_eq!(doc.attestation.impact_bps, 8600);
    assert_eq!(
        doc.attestation.evidence_digest,
        hex::encode(blake3::hash(b"benchmark results").as_bytes())
    );
    assert_eq!(doc.attestation.evidence_len, 17);
    assert_eq!(doc.attestation.nonce.len(), 2 * NONCE_BYTES);
    assert_eq!(doc.inclusion.height, 7);
    assert_eq!(doc.inclusion.proof.leaf_count, 2);
    assert!(doc.inclusion.telemetry.is_some());
    assert!(!d.join("attestation.json.tmp").exists());

    // Without --wait, nothing is written.
    let d2 = setup("e2e-nowait", &signer);
    run(args(&d2, &url, false, &["q=1:10000"])).unwrap();
    assert!(!d2.join("attestation.json").exists());

    // A refusal (attester outside the validator set) is exit 1 with the server's message.
    let outsider = Signer::from_secret([99; 32]);
    let d3 = setup("e2e-refused", &outsider);
    match run(args(&d3, &url, false, &["q=1:10000"])) {
        Err(Failure::Check(m)) => assert!(m.contains("not in the validator set"), "{m}"),
        other => panic!("expected exit 1, got {other:?}"),
    }

    let _ = stop.send(());
    handle.join().unwrap();
    for p in [d, d2, d3] {
        std::fs::remove_dir_all(p).unwrap();
    }
}

#[test]
fn wait_times_out_with_exit_1() {
    let node = fake_node(u32::MAX);
    let signer = node.world.signers[0].clone();
    let (url, handle, stop) = fake::serve(node);
    let d = setup("timeout", &signer);
    let mut a = args(&d, &url, true, &["q=1:10000"]);
    a.timeout = 1;
    match run(a) {
        Err(Failure::Check(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("expected exit 1, got {other:?}"),
    }
    assert!(!d.join("attestation.json").exists());
    let _ = stop.send(());
    handle.join().unwrap();
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn bad_input_is_exit_2_and_dead_endpoint_is_exit_1() {
    let signer = Signer::from_secret([5; 32]);
    let d = setup("inputs", &signer);
    // A closed port on loopback: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    match run(args(&d, &dead, false, &["q=1:10000"])) {
        Err(Failure::Check(m)) => assert!(m.contains("cannot reach"), "{m}"),
        other => panic!("expected exit 1, got {other:?}"),
    }
    let mut a = args(&d, &dead, false, &["q=1:10000"]);
    a.evidence = d.join("nope.bin");
    assert!(usage_msg(run(a)).contains("evidence file"));
    let mut a = args(&d, &dead, false, &["q=1:10000"]);
    a.key = d.join("nokey.json");
    assert!(usage_msg(run(a)).contains("key file"));
    assert!(usage_msg(run(args(&d, &dead, false, &["q=1:9000"]))).contains("sum to 9000"));
    assert!(usage_msg(run(args(&d, &dead, false, &["q=1"]))).contains("--dim \"q=1\""));
    let mut a = args(&d, &dead, false, &["q=1:10000"]);
    a.window_start = Some(u64::MAX);
    assert!(usage_msg(run(a)).contains("--window-start"));
    let mut a = args(&d, &dead, false, &["q=1:10000"]);
    a.subject = String::new();
    assert!(usage_msg(run(a)).contains("--subject"));
    std::fs::remove_dir_all(d).unwrap();
}
