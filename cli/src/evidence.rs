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
//! Step 2 and the gRPC and checks of step 3 are [`bizra_client::evidence::fetch`];
//! this command builds the document, checks it against `--genesis`, writes it
//! and maps the errors to exit codes.

use super::attest::{connect, endpoint_url, write_atomically};
use super::verify::{load_genesis, verify_evidence};
use super::{check, usage, CliResult, Failure};
use bizra_client::evidence::{FetchError, Selector};
use bizra_consensus::signing::parse_validator_id;
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
    let fetched = bizra_client::evidence::fetch(&mut client, endpoint, selector, a.index)
        .await
        .map_err(fetch_failure)?;
    let doc = evidence_json(&fetched.evidence, &fetched.commit, fetched.validators.as_ref())
        .map_err(|e| check(format!("{endpoint}: {e}")))?;
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

/// The fetch's error as this command reports it (exit 1): a missing index
/// names `--index`, every other failure has the client's message.
fn fetch_failure(e: FetchError) -> Failure {
    match e {
        FetchError::NoIndex {
            url,
            selector,
            index,
            count,
        } => check(format!(
            "--index {index}: {url} returned {count} piece(s) of committed evidence for {selector} (indices 0 to {})",
            count - 1
        )),
        e => check(e),
    }
}

/// Assembles `evidence.json` from the node's answers (pure: in `bizra-proof`).
pub use bizra_proof::served::evidence_json;

#[cfg(test)]
mod tests {
    use super::*;
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
}
