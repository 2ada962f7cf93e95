//! Tests of `bizra testnet perturb`: the schedule, the report, the mode.

use super::compose::{services, verb_args};
use super::observe::note_lag;
use super::report::{finality, spread, Outcome, FINALITY};
use super::target::{detect_mode, Mode};
use super::*;
use bizra_client::{HistDelta, Scrape};

#[test]
fn schedule_is_seeded_and_bounded_to_a_third() {
    let a = schedule(7, 100, 50);
    let b = schedule(7, 100, 50);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_ne!(format!("{a:?}"), format!("{:?}", schedule(8, 100, 50)));
    for p in &a {
        assert!(!p.nodes.is_empty() && p.nodes.len() <= 33, "{p:?}");
        assert!(p.nodes.iter().all(|&k| k < 100));
    }
    for p in schedule(1, 4, 20) {
        assert_eq!(p.nodes.len(), 1, "4 validators: one at a time");
    }
    let kinds: std::collections::HashSet<_> = a.iter().map(|p| format!("{:?}", p.action)).collect();
    assert_eq!(kinds.len(), 4);
}

fn hist(counts: [u64; 3], sum: f64) -> Scrape {
    // cumulative buckets le=10, le=60, le=+Inf
    Scrape::parse(&format!(
        "{FINALITY}_bucket{{le=\"10.0\"}} {}\n{FINALITY}_bucket{{le=\"60.0\"}} {}\n{FINALITY}_bucket{{le=\"+Inf\"}} {}\n{FINALITY}_sum {sum}\n{FINALITY}_count {}\n",
        counts[0], counts[1], counts[2], counts[2]
    ))
}

#[test]
fn finality_is_the_runs_window_and_a_restart_counts_from_zero() {
    // node0: 10 fast before, +10 slow (10..60 s) during the run.
    // node1: restarted (its count went down): all 4 of its slow ones count.
    // node2: no answer at the end: left out.
    let before = vec![
        Some(hist([10, 10, 10], 50.0)),
        Some(hist([0, 50, 50], 1000.0)),
        Some(hist([1, 1, 1], 1.0)),
    ];
    let after = vec![Some(hist([10, 20, 20], 450.0)), Some(hist([0, 4, 4], 160.0)), None];
    let f = finality(&before, &after);
    assert_eq!(f.nodes_scraped, 2);
    assert_eq!(f.observations, 14.0);
    assert_eq!(f.mean_s, Some((400.0 + 160.0) / 14.0));
    let p50 = f.p50_s.expect("p50");
    assert!(p50 > 10.0 && p50 < 60.0, "{p50}");
    // None of the 10 fast pre-run observations are in the window.
    assert_eq!(
        HistDelta::between(&before[0].clone().unwrap(), &after[0].clone().unwrap(), FINALITY).buckets[0].1,
        0.0
    );
}

#[test]
fn verb_args_is_one_command_for_all_nodes() {
    let p = Perturbation {
        action: Action::KillStart,
        nodes: vec![3, 17],
    };
    let svcs = services(&p);
    assert_eq!(verb_args("kill", &svcs), vec!["kill", "node3", "node17"]);
}

#[test]
fn lag_counts_only_answering_nodes() {
    let mut lag = vec![0, 5, 0];
    note_lag(&mut lag, &[Some(10), Some(8), None]);
    assert_eq!(lag, vec![0, 5, 0]);
    note_lag(&mut lag, &[Some(20), Some(11), Some(2)]);
    assert_eq!(lag, vec![0, 9, 18]);
}

#[test]
fn mode_follows_the_flags_and_the_directory() {
    let compose = |p: &str| Mode::Compose { project: p.into() };
    let swarm = |s: &str| Mode::Swarm { stack: s.into() };
    // As before: a compose directory, or anything without stack.yml.
    assert_eq!(detect_mode(None, None, "t4", true, false), compose("t4"));
    assert_eq!(detect_mode(None, None, "t4", false, false), compose("t4"));
    assert_eq!(detect_mode(None, Some("p"), "t4", true, false), compose("p"));
    // Both files: compose unless asked for the stack.
    assert_eq!(detect_mode(None, None, "t4", true, true), compose("t4"));
    assert_eq!(detect_mode(Some("s"), None, "t4", true, true), swarm("s"));
    // stack.yml only: the stack named after the directory.
    assert_eq!(detect_mode(None, None, "st4", false, true), swarm("st4"));
    assert_eq!(detect_mode(Some("other"), None, "st4", false, true), swarm("other"));
    // An explicit compose project wins over the directory's contents.
    assert_eq!(detect_mode(None, Some("p"), "st4", false, true), compose("p"));
}

#[test]
fn stack_and_project_conflict() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: PerturbArgs,
    }
    let ok = Cli::try_parse_from(["x", "--dir", "/tmp/st4", "--stack", "st4"]).expect("parses");
    assert_eq!(ok.a.stack.as_deref(), Some("st4"));
    assert!(Cli::try_parse_from(["x", "--dir", "d", "--stack", "s", "--project", "p"]).is_err());
}

#[test]
fn swarm_fields_are_absent_from_a_compose_report() {
    let o = Outcome {
        action: Action::KillStart,
        nodes: vec![1],
        started_s: 0.0,
        apply_s: 0.0,
        undo_s: 0.0,
        recovered: true,
        recover_s: 1.0,
        height_at_undo: 5,
        substitute_for: None,
        substitution_reason: None,
        notes: Vec::new(),
    };
    let j = serde_json::to_value(&o).expect("json");
    assert!(j.get("substitute_for").is_none() && j.get("substitution_reason").is_none());
    assert!(j.get("notes").is_none());
    let o = Outcome {
        action: Action::PauseUnpause,
        substitute_for: Some(Action::Disconnect),
        substitution_reason: Some("refused".into()),
        ..o
    };
    let j = serde_json::to_value(&o).expect("json");
    assert_eq!(j["action"], "pause_unpause");
    assert_eq!(j["substitute_for"], "disconnect");
    assert_eq!(j["substitution_reason"], "refused");
    assert_eq!(
        serde_json::to_value(Action::ScaleToZero).expect("json"),
        "scale_to_zero"
    );
    assert_eq!(serde_json::to_value(Action::KillTask).expect("json"), "kill_task");
}

#[test]
fn spread_is_min_median_max() {
    assert_eq!(spread(vec![]), None);
    assert_eq!(spread(vec![5, 1, 9, 3]), Some((1, 5, 9)));
}
