//! Accountability end to end (issue 15): a validator that equivocates on
//! purpose has its evidence committed, is jailed from the same epoch
//! boundary on every node, the chain goes on without it, and the exported
//! evidence.json verifies offline (and fails when altered).
//!
//! Real `bizra` processes on loopback (ports 24000-24300): nodes 0-2 run,
//! the test holds validator 3's key and speaks for it through a libp2p peer.

use bizra_consensus::evidence;
use bizra_consensus::messages::{new_vote, sign_vote};
use bizra_consensus::signing::Signer;
use bizra_consensus::types::epoch_of;
use bizra_p2p::Topic;
use bizra_proto::{
    consensus_message::Msg, get_evidence_request::Selector, ConsensusMessage, GetEvidenceRequest, GetValidatorsRequest,
    GetValidatorsResponse, VoteKind,
};
use bizra_tests::attack::{load_key, rogue};
use bizra_tests::{bizra_bin, connect, Testnet};
use prost::Message;
use std::process::Command;
use std::time::{Duration, Instant};

const HONEST: [usize; 3] = [0, 1, 2];
const EPOCH: u64 = 50;
const PORT: u16 = 24000;

async fn rejected(net: &Testnet) -> f64 {
    net.metric_all(&HONEST, "bizra_evidence_total", &["result=\"gossip_rejected\""])
        .await
}

async fn validators(net: &Testnet, k: usize, epoch: u64) -> GetValidatorsResponse {
    let mut c = connect(&net.nodes[k].grpc).await.expect("connect");
    c.get_validators(GetValidatorsRequest { epoch: Some(epoch) })
        .await
        .unwrap_or_else(|e| panic!("node{k} GetValidators({epoch}): {e}"))
        .into_inner()
}

async fn committed_evidence(net: &Testnet, k: usize, validator: &str) -> Vec<bizra_proto::CommittedEvidence> {
    let Some(mut c) = connect(&net.nodes[k].grpc).await else {
        return vec![];
    };
    c.get_evidence(GetEvidenceRequest {
        selector: Some(Selector::Validator(validator.to_string())),
    })
    .await
    .map(|r| r.into_inner().evidence)
    .unwrap_or_default()
}

fn verify(file: &std::path::Path, genesis: &std::path::Path) -> (i32, String) {
    let out = Command::new(bizra_bin())
        .arg("verify")
        .arg(file)
        .arg("--genesis")
        .arg(genesis)
        .output()
        .expect("run bizra verify");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The independent Python spec verifier's exit code, or None without
/// python3 + cryptography.
fn python_verify(file: &std::path::Path, genesis: &std::path::Path) -> Option<(i32, String)> {
    let ready = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        eprintln!("NOTICE: skipping the Python spec verifier: `python3 -c 'import cryptography'` fails");
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec_verifier/verify_wq_proof.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(file)
        .arg("--genesis")
        .arg(genesis)
        .output()
        .expect("run python3");
    Some((
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn an_equivocating_validator_is_jailed_and_its_evidence_verifies_offline() {
    let mut net = Testnet::init(
        "evidence-e2e",
        4,
        PORT,
        &["--block-interval-ms", "100", "--epoch-length", &EPOCH.to_string()],
    );
    for k in HONEST {
        net.start(k);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        net.wait_height(&HONEST, 3, Duration::from_secs(120)).await;
        let s0 = net.status(0).await.expect("status");
        let chain_id = s0.chain_id.clone();
        let (secret, id3) = load_key(&net.nodes[3].home);
        let byz = Signer::from_secret(secret);
        let peers = HONEST.iter().map(|&k| net.p2p_addr(k)).collect();
        let (p2p, mut events) = rogue(secret, &chain_id, PORT + 3, peers, 0).await;
        let vote =
            |h: u64, r: u32, b: u8| sign_vote(&byz, new_vote(&chain_id, h, r, VoteKind::Prevote, Some([b; 32]), &id3));

        // 1. Bad evidence from a peer: a strike on every node, never committed.
        let r0 = rejected(&net).await;
        let h = net.status(0).await.expect("status").consensus_height;
        let mut forged = evidence::duplicate_vote(vote(h, 0, 1), vote(h, 0, 2)).expect("conflict");
        if let Some(bizra_proto::evidence::Kind::DuplicateVote(d)) = &mut forged.kind {
            d.second.as_mut().expect("vote").signature[7] ^= 1;
        }
        p2p.publish(Topic::Evidence, forged.encode_to_vec())
            .await
            .expect("publish forged evidence");
        let deadline = Instant::now() + Duration::from_secs(20);
        while rejected(&net).await < r0 + 3.0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let r1 = rejected(&net).await;
        println!("forged evidence: gossip_rejected on nodes 0-2 went {r0} -> {r1}");
        assert!(
            r1 >= r0 + 3.0,
            "every honest node rejects forged evidence ({r0} -> {r1})"
        );

        // 2. Equivocate on purpose: two prevotes for different blocks at the
        // height and round the nodes are in, until evidence is committed.
        let first_height = net.status(0).await.expect("status").consensus_height;
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut attempt = 1u64;
        let committed = loop {
            let found = committed_evidence(&net, 0, &id3).await;
            if !found.is_empty() {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "no evidence committed against validator 3 in 90 s"
            );
            let s = net.status(0).await.expect("status");
            for b in [1u8, 2] {
                attempt += 1;
                let data = ConsensusMessage {
                    msg: Some(Msg::Vote(vote(s.consensus_height, s.consensus_round, b))),
                    attempt,
                }
                .encode_to_vec();
                let _ = p2p.publish(Topic::Votes, data).await;
            }
            while events.try_recv().is_ok() {}
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let ev = &committed[0];
        println!(
            "equivocation from height {first_height}: evidence {} committed at height {} (votes at height {})",
            ev.id,
            ev.height,
            evidence::votes(ev.evidence.as_ref().expect("evidence"))
                .expect("votes")
                .0
                .height
        );
        assert_eq!(ev.validator, id3);
        assert!(
            ev.height <= first_height + 2 * EPOCH,
            "committed within 2 epochs: equivocated at {first_height}, committed at {}",
            ev.height
        );
        // The forged evidence made it into no block.
        let forged_id = hex::encode(evidence::evidence_id(&forged));
        assert!(committed.iter().all(|e| e.id != forged_id), "forged evidence committed");

        // 3. Jailed from the next boundary, identically on every node.
        let jail_epoch = epoch_of(ev.height, EPOCH) + 1;
        net.wait_height(&HONEST, jail_epoch * EPOCH + 1, Duration::from_secs(120))
            .await;
        let mut seen: Option<GetValidatorsResponse> = None;
        for k in HONEST {
            let before = validators(&net, k, jail_epoch - 1).await;
            let after = validators(&net, k, jail_epoch).await;
            let v3 = |r: &GetValidatorsResponse| r.validators.iter().find(|v| v.id == id3).cloned().expect("v3 listed");
            assert!(!v3(&before).jailed, "node{k}: not jailed in epoch {}", jail_epoch - 1);
            assert_ne!(v3(&before).wq_weight, "0");
            let j = v3(&after);
            println!(
                "node{k}: epoch {jail_epoch}: validator 3 jailed={} until epoch {} wq_weight {} (total {})",
                j.jailed, j.jailed_until_epoch, j.wq_weight, after.total_weight
            );
            assert!(j.jailed, "node{k}: validator 3 jailed from epoch {jail_epoch}");
            assert_eq!(j.wq_weight, "0");
            assert_eq!(j.poi, 0);
            assert_eq!(j.jailed_until_epoch, jail_epoch + 2, "default jail_epochs = 2");
            for v in after.validators.iter().filter(|v| v.id != id3) {
                assert!(!v.jailed && v.wq_weight != "0", "node{k}: {} jailed", v.id);
            }
            match &seen {
                None => seen = Some(after),
                Some(s) => assert_eq!(s, &after, "node{k} disagrees on epoch {jail_epoch}'s weights"),
            }
        }
        let committed_metric = net
            .metric_all(&HONEST, "bizra_evidence_total", &["result=\"committed\""])
            .await;
        assert!(
            committed_metric >= 3.0,
            "each node counts the committed evidence: {committed_metric}"
        );
        let per_validator = net
            .metric_all(
                &HONEST,
                "bizra_evidence_committed_total",
                &[&format!("validator=\"{id3}\"")],
            )
            .await;
        assert!(per_validator >= 3.0, "{per_validator}");

        // 4. The chain goes on with validator 3 jailed, and the gate's proof
        // carries the jailed validator in its telemetry and still verifies.
        net.wait_height(&HONEST, jail_epoch * EPOCH + 5, Duration::from_secs(120))
            .await;
        let proof_file = net.dir.join("wq_proof.json");
        let urls: Vec<&str> = HONEST.iter().map(|&k| net.nodes[k].grpc.as_str()).collect();
        let out = Command::new(bizra_bin())
            .args(["wq-proof", "--grpc", &urls.join(","), "--timeout", "60", "--min-height"])
            .arg((jail_epoch * EPOCH + 5).to_string())
            .arg("--out")
            .arg(&proof_file)
            .output()
            .expect("run bizra wq-proof");
        assert!(
            out.status.success(),
            "wq-proof: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let proof: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&proof_file).expect("read")).expect("json");
        let proof_epoch = epoch_of(proof["height"].as_u64().expect("height"), EPOCH);
        let jailed = &proof["telemetry"]["jailed"];
        println!(
            "wq_proof at height {} (epoch {proof_epoch}): telemetry.jailed = {jailed}",
            proof["height"]
        );
        if proof_epoch < jail_epoch + 2 {
            assert_eq!(jailed[&id3], jail_epoch + 2, "telemetry.jailed names validator 3");
            assert_eq!(proof["telemetry"]["wq_weight"][&id3], "0");
        } else {
            assert_eq!(jailed, &serde_json::json!({}), "the term is over");
        }
        let (code, text) = verify(&proof_file, &net.dir.join("genesis.json"));
        assert_eq!(code, 0, "bizra verify wq_proof.json: {text}");
        if let Some((code, text)) = python_verify(&proof_file, &net.dir.join("genesis.json")) {
            assert_eq!(code, 0, "Python spec verifier, wq_proof.json: {text}");
        }
        net.assert_agreement(&HONEST, jail_epoch * EPOCH + 5).await;

        // 5. evidence.json: exported, verified offline, refused when altered.
        let file = net.dir.join("evidence.json");
        let genesis = net.dir.join("genesis.json");
        let out = Command::new(bizra_bin())
            .args(["evidence", "--grpc", &net.nodes[1].grpc, "--validator", &id3, "--out"])
            .arg(&file)
            .output()
            .expect("run bizra evidence");
        assert!(
            out.status.success(),
            "bizra evidence: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let (code, text) = verify(&file, &genesis);
        println!("bizra verify evidence.json: exit {code}: {}", text.trim());
        assert_eq!(code, 0, "{text}");
        if let Some((code, text)) = python_verify(&file, &genesis) {
            println!("Python spec verifier, evidence.json: exit {code}: {}", text.trim());
            assert_eq!(code, 0, "{text}");
        }
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        assert_eq!(doc["version"], "evidence/1");
        assert_eq!(doc["kind"], "duplicate-vote");
        assert_eq!(doc["validator"], id3.as_str());

        // One vote altered: its round changed (payload re-encoded, old signature kept).
        let mut altered = doc.clone();
        let b64 = |s: &str| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
        };
        let mut v0 =
            bizra_proto::Vote::decode(b64(altered["votes"][0]["payload"].as_str().expect("payload")).as_slice())
                .expect("vote");
        v0.round += 1;
        {
            use base64::Engine as _;
            altered["votes"][0]["payload"] =
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(v0.encode_to_vec()));
        }
        let bad = net.dir.join("evidence-altered.json");
        std::fs::write(&bad, serde_json::to_vec_pretty(&altered).expect("json")).expect("write");
        let (code, text) = verify(&bad, &genesis);
        println!("altered vote: exit {code}: {}", text.trim());
        assert_eq!(code, 1, "{text}");
        if let Some((code, text)) = python_verify(&bad, &genesis) {
            assert_eq!(code, 1, "Python spec verifier, altered vote: {text}");
        }

        // Two votes that do not conflict: the second replaced by the first.
        let mut same = doc.clone();
        same["votes"][1] = same["votes"][0].clone();
        let bad = net.dir.join("evidence-same.json");
        std::fs::write(&bad, serde_json::to_vec_pretty(&same).expect("json")).expect("write");
        let (code, text) = verify(&bad, &genesis);
        println!("non-conflicting votes: exit {code}: {}", text.trim());
        assert_eq!(code, 1, "{text}");

        p2p.shutdown();
    });
}
