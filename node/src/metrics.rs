//! Prometheus metrics (docs/PROTOCOL.md §12), one registry per node.
//!
//! Histograms use explicit buckets fitted to their range: finality and block
//! intervals from 1 ms to 10 min, gRPC requests from 50 us to 5 s.
//!
//! Every labelled family is created with its known label values at zero
//! ([`Metrics::new`]), so dashboards and alert rules see zeros, not gaps,
//! before the first event. The endpoint serves OpenMetrics text, or the
//! Prometheus text format 0.0.4 ([`Metrics::encode_prometheus`]) to scrapers
//! and tools that do not ask for OpenMetrics (`curl | promtool check metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of `bizra_votes_total`: consensus gossip by verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VoteLabels {
    /// `prevote`, `precommit` or `proposal`; `vote` for a vote counted
    /// `invalid` or whose kind could not be read; `unknown` for undecodable
    /// or wrong-topic bytes.
    pub kind: String,
    /// One of [`VOTE_RESULTS`], or `invalid_payload` (a proposal whose
    /// attestations were refused), `malformed` (undecodable) or
    /// `wrong_topic`.
    pub result: String,
}
/// Labels of `bizra_consensus_messages_total` and
/// `bizra_consensus_message_bytes_total` (ADR 0012).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindDirectionLabels {
    /// One of [`MSG_KINDS`].
    pub kind: String,
    /// One of [`MSG_DIRECTIONS`].
    pub direction: String,
}
/// The `validator` label of the per-validator families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidatorLabel {
    /// Validator id (64 lower-case hex digits).
    pub validator: String,
}
/// Labels of `bizra_wq_weight_component`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    /// Validator id.
    pub validator: String,
    /// `stake`, `poi` or `rep` (docs/PROTOCOL.md §5).
    pub component: String,
}
/// The `result` label of `bizra_attestations_total` and
/// `bizra_evidence_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// One of [`ATTESTATION_RESULTS`] or `finalized`; or one of
    /// [`EVIDENCE_RESULTS`].
    pub result: String,
}
/// The `method` label of `bizra_grpc_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// One of [`GRPC_METHODS`].
    pub method: String,
}
/// Labels of `bizra_grpc_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodCodeLabels {
    /// One of [`GRPC_METHODS`].
    pub method: String,
    /// One of [`GRPC_CODES`]: the code of the response headers, `OK` for a
    /// success or a streamed response.
    pub code: String,
}

/// The `kind` and `result` labels of `bizra_votes_total` that exist from the start.
pub const VOTE_KINDS: [&str; 3] = ["prevote", "precommit", "proposal"];
/// The `result` labels of `bizra_votes_total` that exist from the start:
/// `accepted` and `out_of_window` (verified, forwarded or not), `resent`
/// (a copy of content already kept at this height, not verified again),
/// `invalid` (signature, chain or membership: a strike), and the refusals
/// before any signature check (ADR 0013, docs/OPERATIONS.md §2):
/// `non_canonical` (a strike), `old_height`, `late_round`, `round_window`,
/// `not_proposer`, `future_quota`, `after_polka` (ADR 0020).
pub const VOTE_RESULTS: [&str; 11] = [
    "accepted",
    "resent",
    "invalid",
    "out_of_window",
    // Refused before the signature (issue 14, ADR 0013).
    "non_canonical",
    "old_height",
    "late_round",
    "round_window",
    "not_proposer",
    "future_quota",
    // A prevote after its round's polka (ADR 0020).
    "after_polka",
];
/// The `kind` labels of the consensus message counters, in [`MsgKind`] order.
pub const MSG_KINDS: [&str; 3] = ["proposal", "prevote", "precommit"];
/// The `direction` labels of the consensus message counters.
pub const MSG_DIRECTIONS: [&str; 2] = ["sent", "received"];
/// Buckets of `bizra_consensus_rounds_per_height` (round of the decision + 1).
pub const ROUND_BUCKETS: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0];

/// A consensus message kind, for [`Metrics::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgKind {
    /// A signed proposal with its block.
    Proposal = 0,
    /// A signed prevote.
    Prevote = 1,
    /// A signed precommit.
    Precommit = 2,
}

/// Which way a consensus message went, for [`Metrics::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Published by this node, re-sends included.
    Sent = 0,
    /// Decoded from gossip, whatever the verdict.
    Received = 1,
}

/// The `result` labels of `bizra_attestations_total` that exist from the start.
pub const ATTESTATION_RESULTS: [&str; 4] = ["accepted", "rejected", "gossip_accepted", "gossip_rejected"];
/// The `result` labels of `bizra_evidence_total` (issue 15): `detected` by
/// this node's vote keeper, gossip verdicts, and `committed` in a finalized
/// block.
pub const EVIDENCE_RESULTS: [&str; 5] = [
    "detected",
    "gossip_accepted",
    "gossip_ignored",
    "gossip_rejected",
    "committed",
];
/// The bounded `method` label values of the gRPC metrics (see `rpc::guard::method_label`).
pub const GRPC_METHODS: [&str; 14] = [
    "GetStatus",
    "GetHead",
    "GetBlock",
    "GetCommit",
    "GetValidators",
    "GetHeadReport",
    "SubscribeHeads",
    "SubmitAttestation",
    "GetAttestation",
    "GetEvidence",
    "Health/Check",
    "Health/Watch",
    "ServerReflectionInfo",
    "unknown",
];
/// gRPC status code names, indexed by code number (the `code` label).
pub const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Seconds buckets from 1 ms to 10 min. The top ones matter at alpha-100 on
/// 2 cores, where a height takes a minute or more (mean 76 s measured).
pub const CONSENSUS_BUCKETS: [f64; 22] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0,
    120.0, 300.0, 600.0,
];
/// Seconds buckets from 50 us to 5 s.
pub const GRPC_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// The node's metrics (docs/PROTOCOL.md §12, docs/OPERATIONS.md §2), shared
/// by the engine, the gRPC guard and the metrics endpoint. A counter family
/// registered as `bizra_x` is exposed as `bizra_x_total`.
pub struct Metrics {
    /// The registry holding every family below; [`Metrics::encode`] writes
    /// it.
    pub registry: Registry,
    /// `bizra_consensus_height`: the last finalized height, set after each
    /// stored block.
    pub consensus_height: Gauge,
    /// `bizra_consensus_round`: the driver's current round.
    pub consensus_round: Gauge,
    /// `bizra_finality_latency_seconds`: from the previous stored decision
    /// (or the engine's start) to this block's, in seconds
    /// ([`CONSENSUS_BUCKETS`]); the `block_interval_ms` pause is included.
    pub finality_latency: Histogram,
    /// `bizra_block_interval_seconds`: between two consecutive stored
    /// decisions, in seconds ([`CONSENSUS_BUCKETS`]).
    pub block_interval: Histogram,
    /// `bizra_votes_total{kind,result}`: consensus gossip by verdict
    /// ([`VoteLabels`]).
    pub votes: Family<VoteLabels, Counter>,
    /// `bizra_peers`: connected peers.
    pub peers: Gauge,
    /// `bizra_sync_blocks_total`: blocks applied through sync.
    pub sync_blocks: Counter,
    /// `bizra_equivocations_total`: equivocations this node's vote keeper
    /// reported (`Effect::Evidence`), whether or not the evidence is new.
    pub equivocations: Counter,
    /// `bizra_wq_weight{validator}`: each validator's `wq_weight` in the
    /// newest epoch this node knows; set at start and at each new epoch.
    pub wq_weight: Family<ValidatorLabel, Gauge<f64, AtomicU64>>,
    /// `bizra_wq_weight_component{validator,component}`: `stake`, `poi` and
    /// `rep` of each validator in that epoch (docs/PROTOCOL.md §5).
    pub wq_weight_component: Family<ComponentLabels, Gauge<f64, AtomicU64>>,
    /// `bizra_commit_weight_share_bps`: the signed share of the weight in
    /// the last stored block's commit certificate, in basis points.
    pub commit_weight_share_bps: Gauge,
    /// `bizra_attestations_total{result}`: `accepted` and `rejected` count
    /// submissions the engine pooled or refused (duplicate, full pool; the
    /// API's own refusals are counted only in `bizra_grpc_requests_total`),
    /// `gossip_accepted` envelopes admitted from gossip, `gossip_rejected`
    /// gossip batches rejected, `finalized` attestations in stored blocks.
    pub attestations: Family<ResultLabel, Counter>,
    /// `bizra_grpc_request_duration_seconds{method}`: each call's time to
    /// its response headers, in seconds ([`GRPC_BUCKETS`]).
    pub grpc_duration: Family<MethodLabel, Histogram>,
    /// `bizra_grpc_requests_total{method,code}`: calls by method and
    /// response code.
    pub grpc_requests: Family<MethodCodeLabels, Counter>,
    /// `bizra_catching_up`: 1 while the node is catching up
    /// ([`crate::state::Status::catching_up`]), else 0.
    pub catching_up: Gauge,
    /// `bizra_validators`: validators in the genesis set.
    pub validators: Gauge,
    /// `bizra_consensus_messages_total{kind,direction}`: one per consensus
    /// message published or received (ADR 0012).
    pub messages: Family<KindDirectionLabels, Counter>,
    /// `bizra_consensus_message_bytes_total{kind,direction}`: their encoded
    /// bytes; a sent message counts once per connected peer.
    pub message_bytes: Family<KindDirectionLabels, Counter>,
    /// `bizra_consensus_rounds_per_height`: the decision's round + 1, per
    /// stored block ([`ROUND_BUCKETS`]).
    pub rounds_per_height: Histogram,
    /// `bizra_evidence_total{result}`: evidence events, [`EVIDENCE_RESULTS`].
    pub evidence: Family<ResultLabel, Counter>,
    /// `bizra_evidence_committed_total{validator}`: evidence in stored
    /// blocks, per offending validator.
    pub evidence_committed: Family<ValidatorLabel, Counter>,
    /// `bizra_validator_jailed{validator}`: 1 if the validator is jailed
    /// (`wq_weight` 0) in the newest epoch this node knows, else 0
    /// (ADR 0014).
    pub jailed: Family<ValidatorLabel, Gauge>,
    /// `bizra_validator_jailed_until_epoch{validator}`: the first epoch the
    /// validator is free again; 0 if never jailed.
    pub jailed_until: Family<ValidatorLabel, Gauge>,
    /// `bizra_evidence_pending`: evidence in this node's pool waiting for a
    /// block.
    pub evidence_pending: Gauge,
    /// `messages` and `message_bytes` resolved once, by [kind][direction]:
    /// they count every consensus message, so no label lookup per message.
    msg_counters: [[(Counter, Counter); 2]; 3],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family and creates the known label values at zero:
    /// [`VOTE_KINDS`] x [`VOTE_RESULTS`] and `proposal`/`invalid_payload`,
    /// every consensus message kind and direction, [`EVIDENCE_RESULTS`],
    /// [`ATTESTATION_RESULTS`], and each of [`GRPC_METHODS`] (with code `OK`).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            consensus_height: Gauge::default(),
            consensus_round: Gauge::default(),
            finality_latency: Histogram::new(CONSENSUS_BUCKETS),
            block_interval: Histogram::new(CONSENSUS_BUCKETS),
            votes: Family::default(),
            peers: Gauge::default(),
            sync_blocks: Counter::default(),
            equivocations: Counter::default(),
            wq_weight: Family::default(),
            wq_weight_component: Family::default(),
            commit_weight_share_bps: Gauge::default(),
            attestations: Family::default(),
            grpc_duration: Family::new_with_constructor(|| Histogram::new(GRPC_BUCKETS)),
            grpc_requests: Family::default(),
            catching_up: Gauge::default(),
            validators: Gauge::default(),
            messages: Family::default(),
            message_bytes: Family::default(),
            rounds_per_height: Histogram::new(ROUND_BUCKETS),
            evidence: Family::default(),
            evidence_committed: Family::default(),
            jailed: Family::default(),
            jailed_until: Family::default(),
            evidence_pending: Gauge::default(),
            msg_counters: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "bizra_consensus_height",
            "Last finalized height",
            m.consensus_height.clone(),
        );
        registry.register(
            "bizra_consensus_round",
            "Current consensus round",
            m.consensus_round.clone(),
        );
        registry.register(
            "bizra_finality_latency_seconds",
            "Time from the previous finalization to this one (includes the block_interval_ms pause)",
            m.finality_latency.clone(),
        );
        registry.register(
            "bizra_block_interval_seconds",
            "Time between consecutive finalized blocks",
            m.block_interval.clone(),
        );
        registry.register(
            "bizra_votes",
            "Votes received, by kind and validation result",
            m.votes.clone(),
        );
        registry.register("bizra_peers", "Connected peers", m.peers.clone());
        registry.register(
            "bizra_sync_blocks",
            "Blocks applied through sync",
            m.sync_blocks.clone(),
        );
        registry.register(
            "bizra_equivocations",
            "Equivocation evidence observed",
            m.equivocations.clone(),
        );
        registry.register(
            "bizra_wq_weight",
            "wq_weight per validator, current epoch",
            m.wq_weight.clone(),
        );
        registry.register(
            "bizra_wq_weight_component",
            "wq_weight components (stake, poi, rep) per validator, current epoch",
            m.wq_weight_component.clone(),
        );
        registry.register(
            "bizra_commit_weight_share_bps",
            "Signed weight share of the last commit certificate, in basis points",
            m.commit_weight_share_bps.clone(),
        );
        registry.register(
            "bizra_attestations",
            "PoI attestations, by result",
            m.attestations.clone(),
        );
        registry.register(
            "bizra_grpc_request_duration_seconds",
            "gRPC request duration by method",
            m.grpc_duration.clone(),
        );
        registry.register(
            "bizra_grpc_requests",
            "gRPC requests by method and status code (the code of the response headers: OK for a streamed or unary success)",
            m.grpc_requests.clone(),
        );
        registry.register(
            "bizra_catching_up",
            "1 while the node is catching up (syncing from peers), else 0",
            m.catching_up.clone(),
        );
        registry.register(
            "bizra_validators",
            "Validators in the genesis set",
            m.validators.clone(),
        );
        registry.register(
            "bizra_consensus_messages",
            "Consensus messages by kind (proposal, prevote, precommit) and direction: sent counts one per message published (re-sends included), received one per message taken from the network",
            m.messages.clone(),
        );
        registry.register(
            "bizra_consensus_message_bytes",
            "Bytes of consensus messages by kind and direction; sent counts the encoded message once per connected peer it goes to",
            m.message_bytes.clone(),
        );
        registry.register(
            "bizra_consensus_rounds_per_height",
            "Rounds a decided height took (the decision's round + 1)",
            m.rounds_per_height.clone(),
        );
        registry.register(
            "bizra_evidence",
            "Misbehaviour evidence by result: detected here, gossip verdicts, committed in finalized blocks",
            m.evidence.clone(),
        );
        registry.register(
            "bizra_evidence_committed",
            "Evidence committed in finalized blocks, per offending validator",
            m.evidence_committed.clone(),
        );
        registry.register(
            "bizra_validator_jailed",
            "1 if the validator is jailed (wq_weight 0) in the current epoch, else 0",
            m.jailed.clone(),
        );
        registry.register(
            "bizra_validator_jailed_until_epoch",
            "First epoch the validator is free again (0: never jailed)",
            m.jailed_until.clone(),
        );
        registry.register(
            "bizra_evidence_pending",
            "Evidence waiting in this node's pool for a block",
            m.evidence_pending.clone(),
        );
        let mut m = Metrics { registry, ..m };
        let counters: [[(Counter, Counter); 2]; 3] = std::array::from_fn(|k| {
            std::array::from_fn(|d| {
                let l = KindDirectionLabels {
                    kind: MSG_KINDS[k].into(),
                    direction: MSG_DIRECTIONS[d].into(),
                };
                (
                    m.messages.get_or_create(&l).clone(),
                    m.message_bytes.get_or_create(&l).clone(),
                )
            })
        });
        m.msg_counters = counters;
        // Known label values at zero: series exist before their first event.
        for kind in VOTE_KINDS {
            for result in VOTE_RESULTS {
                let _ = m.votes.get_or_create(&VoteLabels {
                    kind: kind.into(),
                    result: result.into(),
                });
            }
        }
        let _ = m.votes.get_or_create(&VoteLabels {
            kind: "proposal".into(),
            result: "invalid_payload".into(),
        });
        for result in EVIDENCE_RESULTS {
            let _ = m.evidence.get_or_create(&ResultLabel { result: result.into() });
        }
        for result in ATTESTATION_RESULTS {
            let _ = m.attestations.get_or_create(&ResultLabel { result: result.into() });
        }
        for method in GRPC_METHODS {
            let _ = m.grpc_duration.get_or_create(&MethodLabel { method: method.into() });
            let _ = m.grpc_requests.get_or_create(&MethodCodeLabels {
                method: method.into(),
                code: "OK".into(),
            });
        }
        m
    }

    /// The Prometheus text exposition format 0.0.4, for scrapers that do not
    /// accept OpenMetrics. It differs from [`Metrics::encode`] in that a
    /// counter family is named with its `_total` suffix in `# HELP` and
    /// `# TYPE` (as its samples are), and there is no `# EOF`.
    pub fn encode_prometheus(&self) -> String {
        to_prometheus_text(&self.encode())
    }

    /// The text exposition (OpenMetrics text, which Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encode metrics");
        out
    }

    /// Counts one consensus message of `bytes` bytes (`copies` peers for a
    /// sent one).
    pub fn message(&self, kind: MsgKind, dir: Direction, bytes: usize, copies: usize) {
        let (msgs, b) = &self.msg_counters[kind as usize][dir as usize];
        msgs.inc();
        b.inc_by((bytes as u64).saturating_mul(copies as u64));
    }

    /// Counts one consensus gossip message in `bizra_votes_total{kind,result}`.
    pub fn vote(&self, kind: &str, result: &str) {
        self.votes
            .get_or_create(&VoteLabels {
                kind: kind.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Counts one event in `bizra_evidence_total{result}`.
    pub fn evidence(&self, result: &str) {
        self.evidence
            .get_or_create(&ResultLabel { result: result.into() })
            .inc();
    }

    /// Counts one event in `bizra_attestations_total{result}`.
    pub fn attestation(&self, result: &str) {
        self.attestations_by(result, 1);
    }

    /// Adds `n` to `bizra_attestations_total{result}`; 0 adds nothing and
    /// creates no series.
    pub fn attestations_by(&self, result: &str, n: u64) {
        if n > 0 {
            self.attestations
                .get_or_create(&ResultLabel { result: result.into() })
                .inc_by(n);
        }
    }
}

/// Rewrites OpenMetrics text (as `prometheus-client` writes it) into the
/// Prometheus text format 0.0.4: counter families take their samples' `_total`
/// name in `# HELP`/`# TYPE`, `# UNIT` and `# EOF` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_counter_families_with_total_and_has_no_eof() {
        let m = Metrics::new();
        m.vote("prevote", "accepted");
        let text = m.encode_prometheus();
        assert!(text.contains("# HELP bizra_votes_total Votes received"), "{text}");
        assert!(text.contains("# TYPE bizra_votes_total counter\n"), "{text}");
        assert!(text.contains("# TYPE bizra_equivocations_total counter\n"), "{text}");
        assert!(text.contains("# TYPE bizra_sync_blocks_total counter\n"), "{text}");
        assert!(!text.contains("# TYPE bizra_votes counter"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        // Gauges and histograms keep their names.
        assert!(text.contains("# TYPE bizra_consensus_height gauge\n"), "{text}");
        assert!(
            text.contains("# TYPE bizra_finality_latency_seconds histogram\n"),
            "{text}"
        );
        // Every sample line is unchanged.
        let samples = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(samples(&text), samples(&m.encode()));
    }

    #[test]
    fn known_label_values_exist_at_zero_before_any_event() {
        let text = Metrics::new().encode();
        for series in [
            "bizra_attestations_total{result=\"accepted\"} 0",
            "bizra_attestations_total{result=\"rejected\"} 0",
            "bizra_attestations_total{result=\"gossip_accepted\"} 0",
            "bizra_votes_total{kind=\"precommit\",result=\"accepted\"} 0",
            "bizra_votes_total{kind=\"proposal\",result=\"invalid_payload\"} 0",
            "bizra_grpc_request_duration_seconds_count{method=\"GetHead\"} 0",
            "bizra_grpc_request_duration_seconds_count{method=\"Health/Check\"} 0",
            "bizra_grpc_requests_total{method=\"GetStatus\",code=\"OK\"} 0",
            "bizra_catching_up 0",
            "bizra_validators 0",
            "bizra_consensus_messages_total{kind=\"prevote\",direction=\"received\"} 0",
            "bizra_consensus_message_bytes_total{kind=\"proposal\",direction=\"sent\"} 0",
            "bizra_consensus_rounds_per_height_count 0",
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
    }

    #[test]
    fn messages_are_counted_by_kind_and_direction_and_sent_bytes_per_peer() {
        let m = Metrics::new();
        m.message(MsgKind::Prevote, Direction::Received, 150, 1);
        m.message(MsgKind::Prevote, Direction::Received, 150, 1);
        m.message(MsgKind::Proposal, Direction::Sent, 1000, 99);
        let text = m.encode();
        for series in [
            "bizra_consensus_messages_total{kind=\"prevote\",direction=\"received\"} 2",
            "bizra_consensus_message_bytes_total{kind=\"prevote\",direction=\"received\"} 300",
            "bizra_consensus_messages_total{kind=\"proposal\",direction=\"sent\"} 1",
            "bizra_consensus_message_bytes_total{kind=\"proposal\",direction=\"sent\"} 99000",
            "bizra_consensus_messages_total{kind=\"precommit\",direction=\"sent\"} 0",
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
    }

    #[test]
    fn every_contract_metric_is_exported() {
        let m = Metrics::new();
        m.vote("prevote", "accepted");
        m.attestation("accepted");
        m.wq_weight
            .get_or_create(&ValidatorLabel { validator: "ab".into() })
            .set(1.0);
        m.wq_weight_component
            .get_or_create(&ComponentLabels {
                validator: "ab".into(),
                component: "poi".into(),
            })
            .set(2.0);
        m.grpc_duration
            .get_or_create(&MethodLabel {
                method: "GetHead".into(),
            })
            .observe(0.001);
        let text = m.encode();
        for name in [
            "bizra_consensus_height",
            "bizra_consensus_round",
            "bizra_finality_latency_seconds_bucket",
            "bizra_block_interval_seconds_bucket",
            "bizra_votes_total{kind=\"prevote\",result=\"accepted\"}",
            "bizra_peers",
            "bizra_sync_blocks_total",
            "bizra_equivocations_total",
            "bizra_wq_weight{validator=\"ab\"}",
            "bizra_wq_weight_component{validator=\"ab\",component=\"poi\"}",
            "bizra_commit_weight_share_bps",
            "bizra_attestations_total{result=\"accepted\"}",
            "bizra_grpc_request_duration_seconds_bucket{le=\"0.001\",method=\"GetHead\"}",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
