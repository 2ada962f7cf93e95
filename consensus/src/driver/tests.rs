//! Unit tests of the driver's re-sends and timeouts (the scenarios run in
//! `bizra-sim` and the node tests).

use super::timeouts::next_timeout_scale;
use super::*;
use crate::genesis::{GenesisDoc, GenesisParams, GenesisValidator};
use bizra_proto::{consensus_message::Msg, VoteKind};

fn drivers(n: usize) -> Vec<Driver> {
    let signers: Vec<Signer> = (0..n).map(|i| Signer::from_secret([i as u8 + 1; 32])).collect();
    let doc = GenesisDoc {
        chain_id: "bizra-test".into(),
        genesis_time_ms: 1,
        params: GenesisParams::default(),
        validators: signers
            .iter()
            .enumerate()
            .map(|(i, s)| GenesisValidator {
                id: s.id().to_string(),
                stake: 1000,
                name: format!("v{i}"),
            })
            .collect(),
    };
    let (g, _) = Genesis::from_doc(&doc).expect("genesis");
    let g = Arc::new(g);
    signers
        .into_iter()
        .map(|s| {
            Driver::new(
                g.clone(),
                ChainState::genesis(&g),
                None,
                Some(s),
                None,
                Timeouts::default(),
            )
        })
        .collect()
}

/// The rotating polka re-sender (ADR 0005 amendment): at 100 validators
/// exactly 4 per round, each validator at least once in 25 rounds; at 4
/// or fewer, everyone in every round.
#[test]
fn polka_resenders_rotate_a_quarter_share() {
    let mut ds = drivers(100);
    let mut covered = [false; 100];
    for round in 0..25u32 {
        let mut count = 0;
        for (i, d) in ds.iter_mut().enumerate() {
            d.round = round;
            if d.resends_polkas() {
                count += 1;
                covered[i] = true;
            }
        }
        assert_eq!(count, 4, "round {round}");
    }
    assert!(
        covered.iter().all(|c| *c),
        "every validator re-sends within ceil(n/4) rounds"
    );
    for n in 1..=4 {
        for mut d in drivers(n) {
            for round in 0..5 {
                d.round = round;
                assert!(d.resends_polkas(), "n={n} round={round}");
            }
        }
    }
    // A non-validator (no key in the genesis) never re-sends.
    let mut observer = drivers(4).remove(0);
    observer.me = None;
    assert!(!observer.resends_polkas());
}

#[test]
fn timeout_scale_rises_by_half_after_slow_heights_and_decays_back() {
    assert_eq!(next_timeout_scale(100, true), 150);
    assert_eq!(next_timeout_scale(150, true), 225);
    assert_eq!(next_timeout_scale(300, true), TIMEOUT_SCALE_MAX_PCT);
    assert_eq!(next_timeout_scale(TIMEOUT_SCALE_MAX_PCT, true), TIMEOUT_SCALE_MAX_PCT);
    let mut pct = TIMEOUT_SCALE_MAX_PCT;
    let mut heights = 0;
    while pct > TIMEOUT_SCALE_MIN_PCT {
        pct = next_timeout_scale(pct, false);
        heights += 1;
    }
    assert!((15..=30).contains(&heights), "{heights} fast heights to decay from 4x");
    assert_eq!(next_timeout_scale(100, false), 100);
    // The scale applies to every round timeout.
    let mut d = drivers(4).remove(0);
    assert_eq!(d.round_timeout(1000, 2), 1500);
    d.timeout_scale_pct = 200;
    assert_eq!(d.round_timeout(1000, 2), 3000);
}

fn rebroadcast_after(d: &Driver) -> u64 {
    let mut fx = Vec::new();
    d.schedule_rebroadcast(&mut fx);
    match fx.as_slice() {
        [Effect::ScheduleTimeout { after_ms, .. }] => *after_ms,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn rebroadcasts_back_off_within_a_round_and_wait_for_twice_the_average_height() {
    let mut d = drivers(4).remove(0);
    assert_eq!(rebroadcast_after(&d), 1000);
    d.rebroadcasts_in_round = 1;
    assert_eq!(rebroadcast_after(&d), 2000);
    d.rebroadcasts_in_round = 50;
    assert_eq!(rebroadcast_after(&d), 1000 << REBROADCAST_MAX_DOUBLINGS);
    d.rebroadcasts_in_round = 0;
    d.height_ms_avg = 3000;
    assert_eq!(rebroadcast_after(&d), 6000);
}

#[test]
fn a_timeout_the_round_already_passed_resends_nothing() {
    let mut d = drivers(4).remove(1);
    let _ = d.start(0);
    let t = |kind| Timeout {
        height: 1,
        round: 0,
        kind,
    };
    // Stuck at Propose: the timeout prevotes nil (and re-sends).
    let fx = d.handle(10, Input::Timeout(t(TimeoutKind::Propose))).unwrap();
    assert!(fx.iter().any(|e| matches!(e, Effect::Broadcast(_))));
    // Stuck at Prevote: re-sends our prevote and precommits nil.
    let fx = d.handle(20, Input::Timeout(t(TimeoutKind::Prevote))).unwrap();
    let sent = fx.iter().filter(|e| matches!(e, Effect::Broadcast(_))).count();
    assert!(sent >= 2, "{fx:?}");
    // Now at Precommit: a late Propose or Prevote timeout of this round
    // finds nothing stuck and re-sends nothing.
    for kind in [TimeoutKind::Propose, TimeoutKind::Prevote] {
        let fx = d.handle(30, Input::Timeout(t(kind))).unwrap();
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::Broadcast(_))),
            "{kind:?}: {fx:?}"
        );
    }
}

/// The votes in `fx` that `d` broadcast, checked as a peer would.
fn broadcast_votes(d: &Driver, fx: &[Effect]) -> Vec<VerifiedVote> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Broadcast(ConsensusMessage {
                msg: Some(Msg::Vote(sv)),
                ..
            }) => Some(d.check_vote(sv).expect("own vote verifies")),
            _ => None,
        })
        .collect()
}

/// bizra-sim seed 201735 (7 validators, 2 Byzantine), in isolation: a
/// validator that moved to round 1 holding at most a third of the
/// weight, after its round-0 nil precommit was lost, must re-send that
/// precommit, or the peers left in round 0 never see the 2f+1 precommits
/// that start their precommit timeout, nor f+1 of round 1 to skip on.
#[test]
fn a_validator_ahead_resends_its_last_rounds_nil_votes_to_peers_left_behind() {
    // Equal weights; v3 is down (silent), v0 alone gets ahead.
    let mut ds = drivers(4);
    let t = |round, kind| Timeout { height: 1, round, kind };
    for d in ds.iter_mut().take(3) {
        let _ = d.start(0);
    }
    // No proposal arrives: v0, v1, v2 prevote nil, and each sees the nil polka.
    let mut prevotes = Vec::new();
    for d in ds.iter_mut().take(3) {
        let fx = d.handle(1000, Input::Timeout(t(0, TimeoutKind::Propose))).unwrap();
        prevotes.extend(broadcast_votes(d, &fx));
    }
    let mut precommits = Vec::new();
    for d in ds.iter_mut().take(3) {
        for v in &prevotes {
            let fx = d.handle(1001, Input::Vote(v.clone())).unwrap();
            precommits.extend(
                broadcast_votes(d, &fx)
                    .into_iter()
                    .filter(|v| v.kind == VoteKind::Precommit),
            );
        }
        assert_eq!(d.step(), Step::Precommit);
    }
    assert_eq!(precommits.len(), 3);
    // v0 gets all three nil precommits and moves to round 1; its own
    // precommit is lost on the way to v1 and v2 (a partition).
    for v in &precommits {
        let _ = ds[0].handle(1002, Input::Vote(v.clone())).unwrap();
    }
    for d in ds.iter_mut().take(3).skip(1) {
        for v in precommits.iter().filter(|v| v.validator != 0) {
            let fx = d.handle(1002, Input::Vote(v.clone())).unwrap();
            assert!(!fx.iter().any(
                |e| matches!(e, Effect::ScheduleTimeout { timeout, .. } if timeout.kind == TimeoutKind::Precommit)
            ));
        }
    }
    let _ = ds[0]
        .handle(1500, Input::Timeout(t(0, TimeoutKind::Precommit)))
        .unwrap();
    assert_eq!(ds[0].round(), 1);
    let mut sent = ds[0].handle(2500, Input::Timeout(t(1, TimeoutKind::Propose))).unwrap();
    // The partition heals; v0's round-1 Rebroadcast timer fires.
    sent.extend(
        ds[0]
            .handle(3000, Input::Timeout(t(1, TimeoutKind::Rebroadcast)))
            .unwrap(),
    );
    let resent = broadcast_votes(&ds[0], &sent);
    assert!(
        resent
            .iter()
            .any(|v| v.round() == 0 && v.kind == VoteKind::Precommit && v.value.is_none()),
        "round-0 nil precommit not re-sent: {resent:?}"
    );
    // v1 gets them, reaches 2f+1 precommits in round 0 and follows v0.
    let mut fx = Vec::new();
    for v in resent {
        fx.extend(ds[1].handle(3001, Input::Vote(v)).unwrap());
    }
    let precommit_timeout = fx.iter().find_map(|e| match e {
        Effect::ScheduleTimeout { timeout, .. } if timeout.kind == TimeoutKind::Precommit => Some(*timeout),
        _ => None,
    });
    assert_eq!(precommit_timeout, Some(t(0, TimeoutKind::Precommit)));
    let _ = ds[1]
        .handle(3500, Input::Timeout(t(0, TimeoutKind::Precommit)))
        .unwrap();
    assert_eq!(ds[1].round(), 1);
}

/// A tiny lossless network of drivers: delivers every broadcast to the
/// other drivers (checked as a host would), answers value requests with an
/// empty payload and fires scheduled timeouts when nothing else is left.
/// `seen[i]` collects every effect driver `i` returned.
struct Net {
    queue: std::collections::VecDeque<(usize, Effect)>,
    timers: Vec<(u64, usize, Timeout)>,
    seen: Vec<Vec<Effect>>,
}

impl Net {
    fn start(ds: &mut [Driver], now: u64) -> Self {
        let mut net = Net {
            queue: Default::default(),
            timers: Vec::new(),
            seen: vec![Vec::new(); ds.len()],
        };
        for (i, d) in ds.iter_mut().enumerate() {
            let fx = d.start(now);
            net.push(i, fx);
        }
        net
    }

    fn push(&mut self, i: usize, fx: Vec<Effect>) {
        self.seen[i].extend(fx.iter().cloned());
        self.queue.extend(fx.into_iter().map(|e| (i, e)));
    }

    /// Runs until `done` holds. Precommits signed by a validator in `hold`
    /// are not delivered; those meant for driver 0 are returned.
    fn run_until(
        &mut self,
        ds: &mut [Driver],
        now: &mut u64,
        hold: &[usize],
        done: impl Fn(&[Driver]) -> bool,
    ) -> Vec<VerifiedVote> {
        let mut held = Vec::new();
        for _ in 0..100_000 {
            if done(ds) {
                return held;
            }
            let Some((i, e)) = self.queue.pop_front() else {
                self.timers.sort_by_key(|(at, _, _)| *at);
                assert!(!self.timers.is_empty(), "the network went quiet");
                let (at, j, t) = self.timers.remove(0);
                *now = (*now).max(at);
                let fx = ds[j].handle(*now, Input::Timeout(t)).unwrap();
                self.push(j, fx);
                continue;
            };
            match e {
                Effect::Broadcast(m) => {
                    for j in (0..ds.len()).filter(|j| *j != i) {
                        let input = match &m.msg {
                            Some(Msg::Vote(sv)) => {
                                let v = ds[j].check_vote(sv).expect("honest vote checks");
                                if v.kind == VoteKind::Precommit && hold.contains(&v.validator) {
                                    if j == 0 {
                                        held.push(v);
                                    }
                                    continue;
                                }
                                Input::Vote(v)
                            }
                            Some(Msg::Proposal(sp)) => {
                                Input::Proposal(ds[j].check_proposal(sp).expect("honest proposal checks"))
                            }
                            _ => continue,
                        };
                        let fx = ds[j].handle(*now, input).unwrap();
                        self.push(j, fx);
                    }
                }
                Effect::RequestValue { height, round } => {
                    let input = Input::ProposeValue {
                        height,
                        round,
                        attestations: Vec::new(),
                        evidence: Vec::new(),
                    };
                    let fx = ds[i].handle(*now, input).unwrap();
                    self.push(i, fx);
                }
                Effect::ScheduleTimeout { timeout, after_ms } => self.timers.push((*now + after_ms, i, timeout)),
                _ => {}
            }
        }
        panic!("no progress in 100,000 events");
    }
}

/// Late precommits grow the last commit without a certificate per vote
/// (at 100 validators that rebuilt and cloned all N signatures dozens of
/// times a height): the host gets the grown certificate once, when it asks
/// or before the next decision.
#[test]
fn late_precommits_grow_the_last_commit_once_not_per_vote() {
    let mut ds = drivers(4);
    let mut now = 1;
    let mut net = Net::start(&mut ds, now);
    // v3's precommits are late: the others decide height 1 on three.
    let late = net.run_until(&mut ds, &mut now, &[3], |ds| ds[..3].iter().all(|d| d.height() == 2));
    let late: Vec<_> = late.into_iter().filter(|v| v.height() == 1).collect();
    assert_eq!(late.len(), 1, "v3's one precommit at height 1 was held for v0");
    let decided = |fx: &[Effect]| {
        fx.iter()
            .find_map(|e| match e {
                Effect::Decided { commit, .. } if commit.height == 1 => Some(commit.precommits.len()),
                _ => None,
            })
            .expect("v0 decided height 1")
    };
    assert_eq!(decided(&net.seen[0]), 3);

    let fx = ds[0].handle(now, Input::Vote(late[0].clone())).unwrap();
    assert!(fx.contains(&Effect::Kept), "{fx:?}");
    assert!(!fx.iter().any(|e| matches!(e, Effect::CommitUpdated(_))), "{fx:?}");
    let grown = ds[0].take_commit_update().expect("the commit grew");
    assert_eq!((grown.height, grown.precommits.len()), (1, 4));
    assert_eq!(ds[0].take_commit_update(), None, "handed out once");
    assert_eq!(ds[0].last_commit().map(|c| c.precommits.len()), Some(4));

    // A second driver gets the late precommit but is never asked: the grown
    // certificate comes out as CommitUpdated right before its next decision.
    let fx = ds[1].handle(now, Input::Vote(late[0].clone())).unwrap();
    assert!(!fx.iter().any(|e| matches!(e, Effect::CommitUpdated(_))), "{fx:?}");
    net.seen.iter_mut().for_each(Vec::clear);
    let _ = net.run_until(&mut ds, &mut now, &[], |ds| ds.iter().all(|d| d.height() == 3));
    let seen = &net.seen;
    let pos = |pred: &dyn Fn(&Effect) -> bool| seen[1].iter().position(pred);
    let updated = pos(&|e| matches!(e, Effect::CommitUpdated(c) if c.height == 1 && c.precommits.len() == 4));
    let decided2 = pos(&|e| matches!(e, Effect::Decided { commit, .. } if commit.height == 2));
    assert!(
        updated.is_some() && decided2.is_some() && updated < decided2,
        "{updated:?} {decided2:?}"
    );
    assert_eq!(
        seen[1].iter().filter(|e| matches!(e, Effect::CommitUpdated(_))).count(),
        1,
        "one update for the one late precommit"
    );
    // v0 already handed its update out: nothing more before height 2.
    assert!(!seen[0]
        .iter()
        .any(|e| matches!(e, Effect::CommitUpdated(c) if c.height == 1)));
}
