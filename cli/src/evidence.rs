//! `bizra evidence`: export committed equivocation evidence as `evidence.json`
//! (issue 15), to be checked offline with `bizra verify evidence.json --genesis G`.
//!
//! 1. Local input, all exit 2 with nothing sent: exactly one of `--validator ID`
//!    (a validator id, 64 lower-case hex digits) and `--height H` (at least 1),
//!    the endpoint, and `--genesis` when given.
//! 2. `GetEvidence` by validator (its committed evidence, oldest first) or by
//!    height (the evidence that block carries). No evidence, or fewer items than
//!    `--index N + 1`, is exit 1 with a message saying so; so is an unreachable
//!    node or an RPC error.
//! 3. The chosen item is checked before anything is written (the evidence and
//!    its id, the offender, a header that hashes to the block hash at the height,
//!    a Merkle path from the evidence's leaf to the header's `evidence_root`,
//!    a commit certificate for that block), completed with the commit tally of
//!    `GetCommit(height)` and the epoch's weights from `GetValidators`, and
//!    written to `--out` (default `evidence.json`) through a temporary file.
//!    With `--genesis` the document must also pass `bizra verify`'s checks,
//!    or nothing is written (exit 1).
//!
//! The evidence id is printed on stdout; a one-line summary goes to stderr.

use super::attest::{connect, endpoint_url, rpc_failure, write_atomically};
use super::verify::{load_genesis, verify_evidence};
use super::{check, usage, CliResult};
use bizra_consensus::evidence;
use bizra_consensus::signing::parse_validator_id;
use bizra_proof::served::{check_served_inclusion, Served};

use bizra_proto::{
    get_evidence_request, CommittedEvidence, GetCommitRequest, GetEvidenceRequest, GetValidatorsRequest,
};
use clap::{ArgGroup, Args};
use std::path::PathBuf;

/// Arguments of `bizra evidence`.
#[derive(Args, Debug, Clone)]
#[command(
    group(ArgGroup::new("selector").required(true).args(["validator", "height"])),
    override_usage = "bizra evidence --grpc URL (--validator ID | --height H) [--index N] [--out FILE] [--genesis GENESIS]",
    after_help = "Asks the node for committed misbehaviour evidence (GetEvidence) and writes the N-th item \
returned as evidence.json: the two conflicting signed votes as DSSE envelopes, the block that carries the \
evidence (header, Merkle proof to its evidence_root) and that block's commit with its weight tally. \
Check it offline with `bizra verify evidence.json --genesis GENESIS`.\n\n\
Examples:\n  bizra evidence --grpc http://127.0.0.1:7501 --validator 3b6a27bc…0c4e\n  \
bizra evidence --grpc 127.0.0.1:7501 --height 42 --index 1 --out ev.json\n\n\
Exit codes: 0 written; 1 no such evidence, an unreachable node, or an answer that does not check; \
2 bad usage (nothing is sent)."
)]
pub struct EvidenceArgs {
    /// gRPC endpoint of a node (http:// is assumed without a scheme).
    #[arg(long, value_name = "URL")]
    pub grpc: String,
    /// The offending validator's id (64 lower-case hex digits): its committed evidence, oldest first.
    #[arg(long, value_name = "ID")]
    pub validator: Option<String>,
    /// A block height: the evidence that block carries, in block order.
    #[arg(long, value_name = "H")]
    pub height: Option<u64>,
    /// Which of the returned items to write, counting from 0.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub index: usize,
    /// Where to write evidence.json.
    #[arg(long, value_name = "FILE", default_value = "evidence.json")]
    pub out: PathBuf,
    /// The chain's genesis.json: check the document as `bizra verify` does before writing it.
    #[arg(long, value_name = "GENESIS")]
    pub genesis: Option<PathBuf>,
}

/// What `GetEvidence` is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selector {
    Validator(String),
    Height(u64),
}

impl Selector {
    fn describe(&self) -> String {
        match self {
            Selector::Validator(v) => format!("validator {v}"),
            Selector::Height(h) => format!("the block at height {h}"),
        }
    }
}

/// Runs `bizra evidence`: fetches the chosen committed evidence, checks what the node served and writes `evidence.json`.
pub fn run(a: EvidenceArgs) -> CliResult {
    let selector = match (&a.validator, a.height) {
        (Some(v), None) => {
            parse_validator_id(v).map_err(|e| usage(format!("--validator {v:?}: {e}")))?;
            Selector::Validator(v.clone())
        }
        (None, Some(0)) => return Err(usage("--height 0 is genesis, which carries no evidence")),
        (None, Some(h)) => Selector::Height(h),
        _ => return Err(usage("give exactly one of --validator ID and --height H")),
    };
    let endpoint = endpoint_url(&a.grpc)?;
    let genesis = match &a.genesis {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| usage(format!("cannot read genesis {}: {e}", p.display())))?;
            load_genesis(&bytes)?;
            Some(bytes)
        }
        None => None,
    };
    super::runtime().block_on(export(&a, &endpoint, &selector, genesis.as_deref()))
}

async fn export(a: &EvidenceArgs, endpoint: &str, selector: &Selector, genesis: Option<&[u8]>) -> CliResult {
    let mut client = connect(endpoint).await?;
    let request = GetEvidenceRequest {
        selector: Some(match selector {
            Selector::Validator(v) => get_evidence_request::Selector::Validator(v.clone()),
            Selector::Height(h) => get_evidence_request::Selector::Height(*h),
        }),
    };
    let items = client
        .get_evidence(request)
        .await
        .map_err(|s| rpc_failure("GetEvidence", endpoint, &s))?
        .into_inner()
        .evidence;
    if items.is_empty() {
        return Err(check(format!(
            "no committed evidence for {} on {endpoint}",
            selector.describe()
        )));
    }
    let ce = items.get(a.index).ok_or_else(|| {
        check(format!(
            "--index {}: {endpoint} returned {} piece(s) of committed evidence for {} (indices 0 to {})",
            a.index,
            items.len(),
            selector.describe(),
            items.len() - 1
        ))
    })?;
    check_committed(ce, selector).map_err(|e| check(format!("{endpoint}: evidence {}: {e}", a.index)))?;
    let commit = client
        .get_commit(GetCommitRequest { height: ce.height })
        .await
        .map_err(|s| rpc_failure("GetCommit", endpoint, &s))?
        .into_inner();
    if let Some(c) = &commit.commit {
        if c.height != ce.height || c.block_hash != ce.block_hash {
            return Err(check(format!(
                "{endpoint}: GetCommit({}) answered a commit for another block",
                ce.height
            )));
        }
    }
    let epoch = ce.header.as_ref().map(|h| h.epoch).unwrap_or_default();
    let validators = match client.get_validators(GetValidatorsRequest { epoch: Some(epoch) }).await {
        Ok(r) => Some(r.into_inner()),
        // Epoch 0 weights follow from genesis alone; later ones must be recorded.
        Err(_) if epoch == 0 => None,
        Err(s) => return Err(rpc_failure("GetValidators", endpoint, &s)),
    };
    let doc = evidence_json(ce, &commit, validators.as_ref()).map_err(|e| check(format!("{endpoint}: {e}")))?;
    let text = doc.to_json_pretty();
    if let Some(g) = genesis {
        verify_evidence(text.as_bytes(), g).map_err(|e| {
            check(format!(
                "the evidence {endpoint} served does not verify against --genesis ({e}); nothing written"
            ))
        })?;
    }
    write_atomically(&a.out, text.as_bytes())?;
    let id = doc.id.clone().unwrap_or_default();
    println!("{id}");
    eprintln!(
        "duplicate-vote evidence {id} against {} committed at height {} (block {}); wrote {}",
        doc.validator,
        doc.inclusion.height,
        doc.inclusion.block_hash,
        a.out.display()
    );
    Ok(())
}

/// Assembles `evidence.json` from the node's answers (pure: in `bizra-proof`).
pub use bizra_proof::served::evidence_json;

/// Checks what `GetEvidence` answered before anything is written: evidence of a
/// known kind whose id and offender are as stated (and as asked for), a header
/// that hashes to `block_hash` at `height`, a Merkle path from the evidence's
/// leaf to the header's `evidence_root`, and (if present) a commit certificate
/// for that block. Signatures and quorum need genesis: `bizra verify` (or
/// `--genesis`) checks them.
fn check_committed(ce: &CommittedEvidence, selector: &Selector) -> Result<(), String> {
    let ev = ce.evidence.as_ref().ok_or("the answer has no evidence")?;
    let (a, b) = evidence::votes(ev).ok_or("not duplicate-vote evidence with two votes")?;
    if a.validator != b.validator || a.validator != ce.validator {
        return Err(format!(
            "the votes are by {} and {}, the answer names {}",
            a.validator, b.validator, ce.validator
        ));
    }
    let id = hex::encode(evidence::evidence_id(ev));
    if ce.id != id {
        return Err(format!("id {:?}, but the evidence hashes to {id}", ce.id));
    }
    match selector {
        Selector::Validator(v) if *v != ce.validator => {
            return Err(format!(
                "asked for validator {v}, got evidence against {}",
                ce.validator
            ))
        }
        Selector::Height(h) if *h != ce.height => {
            return Err(format!("asked for height {h}, got evidence in block {}", ce.height))
        }
        _ => {}
    }
    check_served_inclusion(
        Served {
            header: ce.header.as_ref(),
            block_hash: &ce.block_hash,
            height: ce.height,
            proof: ce.proof.as_ref(),
            commit: ce.commit.as_ref(),
        },
        "evidence_root",
        |h| &h.evidence_root,
        &evidence::leaf(ev),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Failure;
    use bizra_proof::fixture::Fixture;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<EvidenceArgs, clap::Error> {
        let cli = crate::Cli::try_parse_from(std::iter::once("bizra").chain(args.iter().copied()))?;
        match cli.command {
            crate::Command::Evidence(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exactly_one_selector_is_required() {
        let v = "ab".repeat(32);
        let a = parse(&["evidence", "--grpc", "127.0.0.1:1", "--validator", &v]).unwrap();
        assert_eq!(a.index, 0);
        assert_eq!(a.out, PathBuf::from("evidence.json"));
        let a = parse(&[
            "evidence", "--grpc", "x", "--height", "4", "--index", "2", "--out", "e.json",
        ])
        .unwrap();
        assert_eq!((a.height, a.index), (Some(4), 2));
        // Neither, or both: a clap usage error (exit 2).
        for bad in [
            vec!["evidence", "--grpc", "x"],
            vec!["evidence", "--grpc", "x", "--height", "4", "--validator", &v],
            vec!["evidence", "--validator", &v],
            vec!["evidence", "--grpc", "x", "--height", "-1"],
        ] {
            let e = parse(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }

    #[test]
    fn bad_selectors_are_exit_2_before_anything_is_sent() {
        let a = |validator: Option<&str>, height: Option<u64>| EvidenceArgs {
            // Nothing listens here; a usage error must come first.
            grpc: "127.0.0.1:1".into(),
            validator: validator.map(str::to_string),
            height,
            index: 0,
            out: std::env::temp_dir().join("bizra-evidence-never-written.json"),
            genesis: None,
        };
        for (args, needle) in [
            (a(Some("xyz"), None), "--validator"),
            (a(Some(&"AB".repeat(32)), None), "--validator"),
            (a(None, Some(0)), "--height 0"),
            (a(None, None), "exactly one"),
        ] {
            match run(args) {
                Err(Failure::Usage(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("expected exit 2 naming {needle}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_lying_answer_is_refused() {
        let mut f = Fixture::new(4, 2, 7);
        let chain = f.evidence_chain(3);
        let me = Selector::Validator(f.signers[3].id().to_string());
        check_committed(&chain.committed, &me).unwrap();
        check_committed(&chain.committed, &Selector::Height(2)).unwrap();
        let mut ce = chain.committed.clone();
        ce.id = "00".repeat(32);
        assert!(check_committed(&ce, &me).unwrap_err().contains("id"));
        assert!(check_committed(&chain.committed, &Selector::Height(3))
            .unwrap_err()
            .contains("asked for height 3"));
        assert!(
            check_committed(&chain.committed, &Selector::Validator(f.signers[1].id().to_string()))
                .unwrap_err()
                .contains("asked for validator")
        );
        let mut ce = chain.committed.clone();
        ce.proof.as_mut().unwrap().leaf_index = 0;
        assert!(check_committed(&ce, &me).unwrap_err().contains("Merkle proof"));
        let mut ce = chain.committed.clone();
        ce.header.as_mut().unwrap().time_ms += 1;
        assert!(check_committed(&ce, &me).unwrap_err().contains("block_hash"));
        let mut ce = chain.committed.clone();
        ce.validator = f.signers[0].id().to_string();
        assert!(check_committed(&ce, &Selector::Height(2))
            .unwrap_err()
            .contains("the answer names"));
    }
}
