//! `bizra wq-proof` and `bizra evidence` run against fake nodes on loopback, and
//! the `bizra` binary on evidence.json; what they write is checked by `bizra
//! verify`'s functions and by the independent Python spec verifier
//! (tests/spec_verifier/verify_wq_proof.py, run by `bizra_testkit::spec_verifier`). The offline checks of the
//! artifacts themselves are in proof/tests/verify_artifacts.rs.

use bizra_cli::evidence::{self, EvidenceArgs};
use bizra_cli::proof::{fixture, fixture::Fixture, EvidenceDoc};
use bizra_cli::verify::{check_wq_proof, verify_evidence};
use bizra_cli::wq_proof::{run_wq_proof, WqProofArgs};
use bizra_cli::Failure;
use bizra_consensus::merkle;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::{hash_bytes, Hash};
use bizra_proto::{BlockHeader, InclusionProof};
use bizra_testkit::spec_verifier::{python_ready, python_verdict, tmpdir};
use prost::Message;
use std::path::Path;
use std::process::Command;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn expect_invalid(r: Result<String, Failure>, field: &str) -> String {
    match r {
        Err(Failure::Check(m)) => {
            assert!(m.contains(field), "reason {m:?} does not name {field:?}");
            m
        }
        Err(Failure::Usage(m)) => panic!("expected an invalid proof (exit 1), got bad input (exit 2): {m}"),
        Ok(s) => panic!("expected an invalid proof naming {field:?}, got valid: {s}"),
    }
}

// ---------------------------------------------------------------------------
// bizra wq-proof against fake nodes
// ---------------------------------------------------------------------------

mod fake {
    use super::*;
    use bizra_consensus::weights::Components;
    use bizra_proto::node_server::{Node, NodeServer};
    use bizra_proto::*;
    use std::pin::Pin;
    use tonic::{Request, Response, Status};

    /// One validator's node, serving block `height` of a fixture world.
    pub struct FakeNode {
        pub chain_id: String,
        pub genesis_hash: Vec<u8>,
        pub signer: Signer,
        pub finalized: u64,
        pub height: u64,
        pub header: BlockHeader,
        pub head_report: Envelope,
        pub commit: GetCommitResponse,
        pub telemetry: Vec<(String, u128, Components)>,
        /// What GetEvidence serves.
        pub evidence: Vec<CommittedEvidence>,
    }

    type HeadStream = Pin<Box<dyn futures::Stream<Item = Result<GetHeadResponse, Status>> + Send>>;

    impl FakeNode {
        fn hash(&self) -> Vec<u8> {
            hash_bytes(&self.header.encode_to_vec()).to_vec()
        }
        fn at(&self, h: u64) -> Result<(), Status> {
            if h == self.height && h <= self.finalized {
                Ok(())
            } else {
                Err(Status::not_found(format!("height {h} is not served by this fake")))
            }
        }
    }

    #[tonic::async_trait]
    impl Node for FakeNode {
        async fn get_status(&self, _: Request<GetStatusRequest>) -> Result<Response<GetStatusResponse>, Status> {
            Ok(Response::new(GetStatusResponse {
                chain_id: self.chain_id.clone(),
                genesis_hash: self.genesis_hash.clone(),
                validator: self.signer.id().to_string(),
                finalized_height: self.finalized,
                ..Default::default()
            }))
        }
        async fn get_head(&self, _: Request<GetHeadRequest>) -> Result<Response<GetHeadResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn get_block(&self, r: Request<GetBlockRequest>) -> Result<Response<GetBlockResponse>, Status> {
            let Some(get_block_request::Selector::Height(h)) = r.into_inner().selector else {
                return Err(Status::invalid_argument("by height only"));
            };
            self.at(h)?;
            Ok(Response::new(GetBlockResponse {
                block: Some(Block {
                    header: Some(self.header.clone()),
                    last_commit: None,
                    attestations: vec![],
                    evidence: vec![],
                }),
                block_hash: self.hash(),
            }))
        }
        async fn get_commit(&self, r: Request<GetCommitRequest>) -> Result<Response<GetCommitResponse>, Status> {
            self.at(r.into_inner().height)?;
            Ok(Response::new(self.commit.clone()))
        }
        async fn get_validators(
            &self,
            r: Request<GetValidatorsRequest>,
        ) -> Result<Response<GetValidatorsResponse>, Status> {
            let epoch = r.into_inner().epoch.unwrap_or(0);
            if epoch != 0 {
                return Err(Status::not_found("unknown epoch"));
            }
            let total: u128 = self.telemetry.iter().map(|t| t.1).sum();
            Ok(Response::new(GetValidatorsResponse {
                epoch: 0,
                total_weight: total.to_string(),
                validators: self
                    .telemetry
                    .iter()
                    .map(|(id, w, c)| ValidatorInfo {
                        id: id.clone(),
                        name: String::new(),
                        stake: c.stake,
                        poi: c.poi,
                        rep: c.rep,
                        wq_weight: w.to_string(),
                        weight_share_bps: 0,
                        ..Default::default()
                    })
                    .collect(),
            }))
        }
        async fn get_head_report(
            &self,
            r: Request<GetHeadReportRequest>,
        ) -> Result<Response<GetHeadReportResponse>, Status> {
            self.at(r.into_inner().height)?;
            Ok(Response::new(GetHeadReportResponse {
                envelope: Some(self.head_report.clone()),
                report: None,
            }))
        }
        type SubscribeHeadsStream = HeadStream;
        async fn subscribe_heads(&self, _: Request<SubscribeHeadsRequest>) -> Result<Response<HeadStream>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn submit_attestation(
            &self,
            _: Request<SubmitAttestationRequest>,
        ) -> Result<Response<SubmitAttestationResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn get_attestation(
            &self,
            _: Request<GetAttestationRequest>,
        ) -> Result<Response<GetAttestationResponse>, Status> {
            Err(Status::unimplemented("fake"))
        }
        async fn get_evidence(&self, r: Request<GetEvidenceRequest>) -> Result<Response<GetEvidenceResponse>, Status> {
            let evidence = match r.into_inner().selector {
                Some(get_evidence_request::Selector::Validator(v)) => {
                    self.evidence.iter().filter(|e| e.validator == v).cloned().collect()
                }
                Some(get_evidence_request::Selector::Height(h)) => {
                    self.evidence.iter().filter(|e| e.height == h).cloned().collect()
                }
                None => return Err(Status::invalid_argument("no selector")),
            };
            Ok(Response::new(GetEvidenceResponse { evidence }))
        }
    }

    pub struct Served {
        pub url: String,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl Drop for Served {
        fn drop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    /// Serves `node` on 127.0.0.1 in a background thread until dropped.
    pub fn serve(node: FakeNode) -> Served {
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
        Served {
            url: format!("http://{addr}"),
            stop: Some(stop_tx),
            handle: Some(handle),
        }
    }
}

/// How a fake node deviates from the honest world.
#[derive(Clone, Copy, Default)]
struct Deviation {
    other_block: bool,
    other_genesis: bool,
    bad_head_signature: bool,
    finalized: Option<u64>,
}

/// A world at height 3 whose block hash is the BLAKE3 of a real header.
fn honest_world() -> (Fixture, BlockHeader) {
    let mut f = Fixture::new(4, 3, 1);
    let header = BlockHeader {
        chain_id: f.chain_id().to_string(),
        height: 3,
        parent_hash: vec![2; 32],
        proposer: f.signers[0].id().to_string(),
        time_ms: 1_700_000_003_000,
        payload_root: merkle::root(&[]).to_vec(),
        last_commit_hash: vec![1; 32],
        epoch: 0,
        evidence_root: vec![],
    };
    f.block_hash = hash_bytes(&header.encode_to_vec());
    (f, header)
}

fn fake_node(f: &Fixture, header: &BlockHeader, i: usize, d: Deviation) -> fake::FakeNode {
    let mut header = header.clone();
    if d.other_block {
        header.time_ms += 1;
    }
    let hash = hash_bytes(&header.encode_to_vec());
    let mut head_report = f.head_report(i, 3, hash);
    if d.bad_head_signature {
        head_report.signatures[0].sig[7] ^= 1;
    }
    let c = f.commit_part(&[0, 1, 2, 3], f.block_hash);
    let commit = bizra_proto::GetCommitResponse {
        commit: None,
        signatures: c.signatures,
        signers: c.signers,
        signed_weight: c.signed_weight.to_string(),
        total_weight: c.total_weight.to_string(),
        share_bps: c.share_bps,
        fast_final: c.fast_final,
        economic_final: c.economic_final,
    };
    fake::FakeNode {
        chain_id: f.chain_id().to_string(),
        genesis_hash: if d.other_genesis {
            vec![9; 32]
        } else {
            f.genesis.hash.to_vec()
        },
        signer: f.signers[i].clone(),
        finalized: d.finalized.unwrap_or(3 + i as u64),
        height: 3,
        header,
        head_report,
        commit,
        telemetry: f.weights(),
        evidence: vec![],
    }
}

fn serve_world(devs: [Deviation; 3]) -> (Fixture, Vec<fake::Served>) {
    let (f, header) = honest_world();
    let served = (0..3)
        .map(|i| fake::serve(fake_node(&f, &header, i, devs[i])))
        .collect();
    (f, served)
}

fn gate_args(served: &[fake::Served], out: &Path) -> WqProofArgs {
    WqProofArgs {
        grpc: served.iter().map(|s| s.url.clone()).collect(),
        min_height: 3,
        timeout: 5,
        out: out.to_path_buf(),
        genesis: None,
    }
}

#[test]
fn wq_proof_against_agreeing_fake_nodes_writes_a_verifiable_proof() {
    let (f, served) = serve_world([Deviation::default(); 3]);
    let d = tmpdir("gate-ok");
    let out = d.join("wq_proof.json");
    let o = run_wq_proof(&gate_args(&served, &out)).unwrap();
    assert!(o.ok, "{:?}", o.problem);
    assert_eq!(o.proof.height, 3);
    assert_eq!(o.proof.agreement, "B3/B3/B3");
    assert_eq!(o.proof.block_hash, hex::encode(f.block_hash));
    assert_eq!(
        o.line,
        format!(
            "B3/B3/B3 agreement at height 3 (head {}…, 100.00% weight)",
            &o.proof.block_hash[..8]
        )
    );
    let written = std::fs::read(&out).unwrap();
    assert_eq!(written, o.json.as_bytes());
    let s = check_wq_proof(&written, &f.genesis_bytes).unwrap();
    assert!(s.starts_with("valid: B3/B3/B3"), "{s}");
    if python_ready() {
        assert_eq!(python_verdict("gate-ok", &written, &f.genesis_bytes), 0);
    }

    // With --genesis the gate checks exactly as `bizra verify` does.
    let g = d.join("genesis.json");
    std::fs::write(&g, &f.genesis_bytes).unwrap();
    let mut a = gate_args(&served, &d.join("wq_proof2.json"));
    a.genesis = Some(g);
    assert!(run_wq_proof(&a).unwrap().ok);
    // ... and refuses a genesis the nodes are not on.
    let g2 = d.join("other-genesis.json");
    std::fs::write(&g2, Fixture::new(4, 3, 2).genesis_bytes).unwrap();
    a.genesis = Some(g2);
    a.out = d.join("wq_proof3.json");
    match run_wq_proof(&a) {
        Err(Failure::Check(m)) => assert!(m.contains("different genesis"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!a.out.exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn wq_proof_with_a_disagreeing_head_writes_the_proof_and_fails() {
    let dev = Deviation {
        other_block: true,
        ..Default::default()
    };
    let (f, served) = serve_world([Deviation::default(), dev, Deviation::default()]);
    let d = tmpdir("gate-disagree");
    let out = d.join("wq_proof.json");
    let o = run_wq_proof(&gate_args(&served, &out)).unwrap();
    assert!(!o.ok);
    let mine = &o.proof.block_hash[..8];
    let theirs = &o.proof.validators[1].block_hash[..8];
    assert_eq!(o.proof.agreement, format!("B3:{mine}/B3:{theirs}/B3:{mine}"));
    assert!(!o.proof.wq_head_agreement);
    assert!(
        o.problem.as_deref().unwrap().contains("heads disagree"),
        "{:?}",
        o.problem
    );
    assert!(o.line.starts_with(&o.proof.agreement));
    // Written for diagnosis, and `bizra verify` rejects it.
    let written = std::fs::read(&out).unwrap();
    expect_invalid(check_wq_proof(&written, &f.genesis_bytes), "validators[1].block_hash");
    if python_ready() {
        assert_eq!(python_verdict("gate-disagree", &written, &f.genesis_bytes), 1);
    }
    let _ = std::fs::remove_dir_all(&d);
}

fn expect_gate_failure(devs: [Deviation; 3], timeout: u64, needle: &str) {
    let (_f, served) = serve_world(devs);
    let d = tmpdir(&format!("gate-fail-{}", needle.len()));
    let out = d.join("wq_proof.json");
    let mut a = gate_args(&served, &out);
    a.timeout = timeout;
    match run_wq_proof(&a) {
        Err(Failure::Check(m)) => {
            assert!(m.contains(needle), "{m:?} does not contain {needle:?}");
            eprintln!("{m}");
        }
        other => panic!("expected a check failure containing {needle:?}, got {other:?}"),
    }
    assert!(!out.exists(), "a failed gate wrote {}", out.display());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn wq_proof_refuses_other_genesis_bad_signatures_and_times_out() {
    let d = Deviation::default();
    expect_gate_failure(
        [
            d,
            d,
            Deviation {
                other_genesis: true,
                ..d
            },
        ],
        5,
        "is on a different genesis",
    );
    expect_gate_failure(
        [
            d,
            Deviation {
                bad_head_signature: true,
                ..d
            },
            d,
        ],
        5,
        "validators[1].envelope.signatures[0].sig",
    );
    expect_gate_failure(
        [
            d,
            d,
            Deviation {
                finalized: Some(2),
                ..d
            },
        ],
        1,
        "timeout waiting for height 3",
    );
}

// ---------------------------------------------------------------------------
// evidence.json
// ---------------------------------------------------------------------------

/// A real chain (genesis, block 1, block 2 carrying two pieces of evidence,
/// each validated by `ChainState`) with validator 3's conflicting prevotes at
/// index 1, and its `evidence.json` committed by `signers`.
fn ev_world(signers: &[usize]) -> (Fixture, fixture::EvidenceChain, EvidenceDoc) {
    let mut f = Fixture::new(4, 2, 1);
    let chain = f.evidence_chain(3);
    let doc = f.evidence_doc(&chain, signers);
    (f, chain, doc)
}

fn ev_json(d: &EvidenceDoc) -> Vec<u8> {
    d.to_json_pretty().into_bytes()
}

fn bizra(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bizra"))
        .args(args)
        .output()
        .expect("run bizra")
}

#[test]
fn bizra_verify_binary_checks_evidence_json() {
    let (f, _, valid) = ev_world(&[0, 1, 2, 3]);
    let d = tmpdir("ev-bin");
    let g = d.join("genesis.json");
    std::fs::write(&g, &f.genesis_bytes).unwrap();
    let run = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = bizra(&["verify".as_ref(), p.as_os_str(), "--genesis".as_ref(), g.as_os_str()]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, _) = run("evidence.json", &ev_json(&valid));
    assert_eq!(code, Some(0));
    assert!(out.starts_with("valid: duplicate-vote evidence"), "{out}");
    let mut bad = valid.clone();
    bad.votes[1] = bad.votes[0].clone();
    let (code, _, err) = run("bad.json", &ev_json(&bad));
    assert_eq!(code, Some(1));
    assert!(err.starts_with("error: votes:") && err.contains("no conflict"), "{err}");
    let (code, _, err) = run("malformed.json", b"{\"version\": \"evidence/1\", \"kind\": 7}");
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    // `bizra evidence` is documented.
    let o = bizra(&["evidence".as_ref(), "--help".as_ref()]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for needle in [
        "--validator",
        "--height",
        "--index",
        "--out",
        "evidence.json",
        "bizra verify",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A fake node serving the evidence world's block 2, its commit and evidence.
fn evidence_node(f: &Fixture, chain: &fixture::EvidenceChain) -> fake::FakeNode {
    let c = f.commit_part(&[0, 1, 2, 3], f.block_hash);
    // Validator 1's evidence (index 0 in the block) is served too, for --height.
    let mut other = chain.committed.clone();
    let ev0 = chain.block.evidence[0].clone();
    let leaves: Vec<Hash> = chain
        .block
        .evidence
        .iter()
        .map(bizra_consensus::evidence::leaf)
        .collect();
    other.id = hex::encode(bizra_consensus::evidence::evidence_id(&ev0));
    other.evidence = Some(ev0);
    other.validator = f.signers[1].id().to_string();
    other.proof = Some(InclusionProof {
        leaf_index: 0,
        leaf_count: 2,
        siblings: merkle::proof(&leaves, 0).unwrap().iter().map(|s| s.to_vec()).collect(),
    });
    fake::FakeNode {
        chain_id: f.chain_id().to_string(),
        genesis_hash: f.genesis.hash.to_vec(),
        signer: f.signers[0].clone(),
        finalized: 2,
        height: 2,
        header: chain.block.header.clone().unwrap(),
        head_report: f.head_report(0, 2, f.block_hash),
        commit: bizra_proto::GetCommitResponse {
            commit: chain.committed.commit.clone(),
            signatures: c.signatures,
            signers: c.signers,
            signed_weight: c.signed_weight.to_string(),
            total_weight: c.total_weight.to_string(),
            share_bps: c.share_bps,
            fast_final: c.fast_final,
            economic_final: c.economic_final,
        },
        telemetry: f.weights(),
        evidence: vec![other, chain.committed.clone()],
    }
}

#[test]
fn bizra_evidence_exports_a_verifiable_evidence_json() {
    let (f, chain, _) = ev_world(&[0, 1, 2, 3]);
    let served = fake::serve(evidence_node(&f, &chain));
    let d = tmpdir("ev-export");
    let args = |validator: Option<&str>, height: Option<u64>, index: usize, out: &str| EvidenceArgs {
        grpc: served.url.clone(),
        validator: validator.map(str::to_string),
        height,
        index,
        out: d.join(out),
        genesis: None,
    };
    let offender = f.signers[3].id();
    evidence::run(args(Some(offender), None, 0, "evidence.json")).unwrap();
    let written = std::fs::read(d.join("evidence.json")).unwrap();
    let s = verify_evidence(&written, &f.genesis_bytes).unwrap();
    assert!(s.contains(&format!("against {offender}")), "{s}");
    let doc: EvidenceDoc = serde_json::from_slice(&written).unwrap();
    assert_eq!(doc.inclusion.height, 2);
    assert!(doc.inclusion.telemetry.is_some());
    assert!(!d.join("evidence.json.tmp").exists());
    if python_ready() {
        assert_eq!(python_verdict("ev-export", &written, &f.genesis_bytes), 0);
    }
    // By height: index 0 is validator 1's, index 1 validator 3's.
    evidence::run(args(None, Some(2), 0, "h0.json")).unwrap();
    let h0: EvidenceDoc = serde_json::from_slice(&std::fs::read(d.join("h0.json")).unwrap()).unwrap();
    assert_eq!(h0.validator, f.signers[1].id());
    verify_evidence(&std::fs::read(d.join("h0.json")).unwrap(), &f.genesis_bytes).unwrap();
    evidence::run(args(None, Some(2), 1, "h1.json")).unwrap();
    assert_eq!(std::fs::read(d.join("h1.json")).unwrap(), written);
    // None, or not that many: exit 1, nothing written.
    for (a, needle) in [
        (
            args(Some(f.signers[0].id()), None, 0, "none.json"),
            "no committed evidence for validator",
        ),
        (
            args(None, Some(1), 0, "none.json"),
            "no committed evidence for the block at height 1",
        ),
        (args(Some(offender), None, 1, "none.json"), "--index 1"),
    ] {
        match evidence::run(a) {
            Err(Failure::Check(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
            other => panic!("expected exit 1 ({needle}), got {other:?}"),
        }
        assert!(!d.join("none.json").exists());
    }
    // With --genesis the document is checked first: another chain's genesis refuses it.
    let g2 = d.join("other-genesis.json");
    std::fs::write(&g2, Fixture::new(4, 2, 2).genesis_bytes).unwrap();
    let mut a = args(Some(offender), None, 0, "checked.json");
    a.genesis = Some(g2);
    match evidence::run(a) {
        Err(Failure::Check(m)) => assert!(m.contains("does not verify against --genesis"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!d.join("checked.json").exists());
    let g = d.join("genesis.json");
    std::fs::write(&g, &f.genesis_bytes).unwrap();
    let mut a = args(Some(offender), None, 0, "checked.json");
    a.genesis = Some(g);
    evidence::run(a).unwrap();
    assert!(d.join("checked.json").exists());
    // The real binary: usage errors are exit 2.
    let o = bizra(&["evidence".as_ref(), "--grpc".as_ref(), served.url.as_ref()]);
    assert_eq!(o.status.code(), Some(2));
    let o = bizra(&[
        "evidence".as_ref(),
        "--grpc".as_ref(),
        served.url.as_ref(),
        "--validator".as_ref(),
        "nothex".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    // ... and a missing piece of evidence exit 1, through the binary too.
    let o = bizra(&[
        "evidence".as_ref(),
        "--grpc".as_ref(),
        served.url.as_ref(),
        "--height".as_ref(),
        "1".as_ref(),
        "--out".as_ref(),
        d.join("none.json").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&d);
}
