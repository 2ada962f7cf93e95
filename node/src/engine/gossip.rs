//! The gossip checks of votes, proposals and attestation batches: pure
//! functions of the bytes and what the node holds (driver, store, pools),
//! called by the engine and, unchanged, by the fuzz targets
//! (`bizra-fuzz`). What the engine does after a verdict (metrics,
//! warnings, remembering content keys, the driver) stays in the engine.
//!
//! Votes and proposals pass, cheapest first: the driver's admission of the
//! claim read from the bytes (no block decoded, no signature), decoding, the
//! canonical encoding, a compact last commit rebuilt (ADR 0018), re-sends of kept content, the topic, the signature,
//! chain and membership, a proposal's attestations, then the height window
//! (ADR 0013).

use crate::admission;
use crate::metrics::{MsgKind, MSG_KINDS};
use crate::pool::AttestationPool;
use bizra_consensus::compact;
use bizra_consensus::driver::{Admission, ClaimKind, Driver, Input, FUTURE_HEIGHTS};
use bizra_consensus::genesis::Genesis;
use bizra_consensus::messages::MessageError;
use bizra_p2p::{Topic, Validation};
use bizra_proto::{consensus_message::Msg, ConsensusMessage};
use bizra_storage::Store;
use prost::Message;
use std::collections::HashMap;

/// Copies of one signed content forwarded per height (re-sends differ in
/// `attempt` only; a rogue peer can mint any number of them).
pub const MAX_FORWARDS: u8 = 8;

/// What a consensus message is checked against; nothing here is changed.
pub struct GossipView<'a> {
    /// The driver: its admission of claims ([`Driver::admit`]), signature,
    /// chain and membership checks, and its height.
    pub driver: &'a Driver,
    /// The chain, for the rules of a proposal's attestations.
    pub genesis: &'a Genesis,
    /// The store: attestations and nonces already finalized.
    pub store: &'a dyn Store,
    /// The attestation pool: a proposal's attestation pending here with the
    /// same envelope is not verified again; one remembered as finalized is
    /// refused.
    pub pool: &'a AttestationPool,
    /// Copies forwarded so far of each content (by [`content_key`]) the
    /// driver kept at its current height.
    pub forwarded: &'a HashMap<[u8; 32], u8>,
}

/// The verdict on a consensus message and what the engine does next.
#[derive(Debug)]
pub struct GossipCheck {
    /// What to report to gossipsub: `Accept` forwards, `Ignore` drops
    /// without blame, `Reject` drops and strikes the sending peer
    /// (docs/PROTOCOL.md §6). In direct mode the engine reports `Accept` as
    /// `Ignore` (ADR 0012).
    pub verdict: Validation,
    /// The decoded message's kind, for the received-message counters.
    pub received: Option<MsgKind>,
    /// Labels (kind, result) of `bizra_votes_total`; `None`: not counted.
    pub counted: Option<(&'static str, &'static str)>,
    /// What the engine does next.
    pub then: Then,
}

/// What follows a [`GossipCheck`].
// `Deliver` is large, like the `(Input, ConsensusMessage, key)` the engine
// took before; a check's result is moved once and taken apart at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Then {
    /// Nothing.
    Drop,
    /// A re-send of kept content with this content key: count the copy.
    Resent([u8; 32]),
    /// A proposal whose attestations were refused: its proposer and why.
    PayloadRefused {
        /// The proposal's `proposer` (a validator id).
        proposer: String,
        /// Why its attestations were refused ([`admission::check_payload`]).
        error: String,
    },
    /// Show the driver the input (the message and its content key with it).
    Deliver {
        /// The verified input.
        input: Input,
        /// The message as received; the engine writes it to the WAL if the
        /// driver keeps it at its current height.
        msg: ConsensusMessage,
        /// Its [`content_key`].
        key: [u8; 32],
    },
}

impl GossipCheck {
    fn counted(verdict: Validation, kind: &'static str, result: &'static str, received: Option<MsgKind>) -> Self {
        GossipCheck {
            verdict,
            received,
            counted: Some((kind, result)),
            then: Then::Drop,
        }
    }
}

/// Validates consensus gossip before it may be forwarded, as the engine
/// does. The checks that cost no signature come first: the encoding must be
/// canonical (prost drops unknown fields, so padded or re-encoded variants
/// of one signed message would all pass as new gossip: a strike), and the
/// driver must be able to use the claim ([`Driver::admit`]: heights, rounds,
/// proposer, future quotas; else it is ignored unverified). A re-send of
/// signed content the driver kept at this height (a rebroadcast differs
/// only in the unsigned `attempt`) is forwarded without verifying it again,
/// at most [`MAX_FORWARDS`] times per height, and not shown to the driver,
/// which already has it. At 100 validators re-sends were most of the
/// signature checks. Then `check_signed`.
///
/// `payloads` remembers the attestations of proposals verified before
/// ([`admission::check_payload`]).
pub fn check_consensus_gossip(
    view: &GossipView<'_>,
    payloads: &mut admission::VerifiedPayloads,
    topic: Topic,
    data: &[u8],
) -> GossipCheck {
    if topic == Topic::Attestations || topic == Topic::Evidence {
        return GossipCheck {
            verdict: Validation::Ignore,
            received: None,
            counted: None,
            then: Then::Drop,
        };
    }
    // The claim first, read from the bytes without decoding a proposal's
    // block: what the driver cannot use costs no decoding, no encoding check
    // and no signature (a 4 MiB block is skipped, not parsed).
    let peeked = view.driver.claim_encoded(data);
    if let Some(claim) = &peeked {
        if let Admission::Drop(reason) = view.driver.admit(claim) {
            let received = claim_kind(claim.kind);
            return GossipCheck::counted(
                Validation::Ignore,
                MSG_KINDS[received as usize],
                reason.as_str(),
                Some(received),
            );
        }
    }
    let Ok(msg) = ConsensusMessage::decode(data) else {
        return GossipCheck::counted(Validation::Reject, "unknown", "malformed", None);
    };
    let received = msg_kind(&msg);
    let label = match received {
        Some(kind) => MSG_KINDS[kind as usize],
        None => topic_kind(topic),
    };
    // Bytes whose claim could not be read without decoding: the same rule
    // on the decoded message.
    if peeked.is_none() {
        if let Some(claim) = view.driver.claim(&msg) {
            if let Admission::Drop(reason) = view.driver.admit(&claim) {
                return GossipCheck::counted(Validation::Ignore, label, reason.as_str(), received);
            }
        }
    }
    if !is_canonical(&msg, data) {
        return GossipCheck::counted(Validation::Reject, label, "non_canonical", received);
    }
    // A proposal whose last commit came compactly (ADR 0018) is rebuilt here:
    // every later check, the WAL and the content key see the full form the
    // proposer signed and stores.
    let (msg, key) = if is_compact(&msg) {
        match expand_message(view.genesis, msg) {
            Ok(full) => {
                let key = content_key(&full);
                (full, key)
            }
            Err(_) => return GossipCheck::counted(Validation::Reject, label, "malformed", received),
        }
    } else {
        let key = canonical_content_key(&msg, data);
        (msg, key)
    };
    if let Some(copies) = view.forwarded.get(&key) {
        let copies = copies.saturating_add(1);
        let verdict = if copies <= MAX_FORWARDS {
            Validation::Accept
        } else {
            Validation::Ignore
        };
        return GossipCheck {
            verdict,
            received,
            counted: Some((label, "resent")),
            then: Then::Resent(key),
        };
    }
    let mut check = check_signed(view, payloads, topic, msg, key);
    check.received = received;
    check
}

/// Validates a decoded, canonical gossip message that is not a re-send:
/// topic, signature, chain and membership (Reject, which penalizes the
/// sender), a proposal's attestations (Ignore), then the height window
/// (Ignore: not forwarded, no penalty, but still shown to the driver).
fn check_signed(
    view: &GossipView<'_>,
    payloads: &mut admission::VerifiedPayloads,
    topic: Topic,
    msg: ConsensusMessage,
    key: [u8; 32],
) -> GossipCheck {
    let kind = match (&msg.msg, topic) {
        (Some(Msg::Vote(_)), Topic::Votes) => "vote",
        (Some(Msg::Proposal(_)), Topic::Proposals) => "proposal",
        _ => return GossipCheck::counted(Validation::Reject, "unknown", "wrong_topic", None),
    };
    let Some(input) = check_message(view.driver, &msg) else {
        // Counted under the kind the message claims (prevote, precommit,
        // proposal), like every other result.
        let claimed = msg_kind(&msg).map_or(kind, |k| MSG_KINDS[k as usize]);
        return GossipCheck::counted(Validation::Reject, claimed, "invalid", None);
    };
    let kind = match &input {
        Input::Vote(v) if v.kind == bizra_proto::VoteKind::Precommit => "precommit",
        Input::Vote(_) => "prevote",
        _ => "proposal",
    };
    if let Input::Proposal(p) = &input {
        let checked = admission::check_payload(view.genesis, view.store, view.pool, payloads, p.block());
        if let Err(error) = checked {
            return GossipCheck {
                verdict: Validation::Ignore,
                received: None,
                counted: Some((kind, "invalid_payload")),
                then: Then::PayloadRefused {
                    proposer: p.proposal().proposer.clone(),
                    error,
                },
            };
        }
    }
    let h = input_height(&input).unwrap_or(0);
    let ours = view.driver.height();
    let (verdict, result) = if h.saturating_add(1) < ours || h > ours.saturating_add(FUTURE_HEIGHTS) {
        // Still shown to the driver: a far-future height means we are behind.
        (Validation::Ignore, "out_of_window")
    } else {
        (Validation::Accept, "accepted")
    };
    GossipCheck {
        verdict,
        received: None,
        counted: Some((kind, result)),
        then: Then::Deliver { input, msg, key },
    }
}

/// Checks a consensus message (signature, chain, membership) into a driver input.
pub fn check_message(driver: &Driver, msg: &ConsensusMessage) -> Option<Input> {
    match &msg.msg {
        Some(Msg::Vote(sv)) => driver.check_vote(sv).ok().map(Input::Vote),
        Some(Msg::Proposal(sp)) => driver.check_proposal(sp).ok().map(Input::Proposal),
        None => None,
    }
}

/// An attestation batch from the attestations topic, admitted into `pool`
/// (`admission::admit_batch`) and its gossip verdict: a batch with nothing
/// new is ignored, a malformed one or one with a bad envelope rejected.
pub fn check_attestation_batch(
    genesis: &Genesis,
    store: &dyn Store,
    pool: &mut AttestationPool,
    data: &[u8],
    now_ms: u64,
) -> (Validation, admission::BatchVerdict) {
    let verdict = admission::admit_batch(genesis, store, pool, data, now_ms);
    let validation = match &verdict {
        admission::BatchVerdict::Accept { .. } => Validation::Accept,
        admission::BatchVerdict::Ignore { .. } => Validation::Ignore,
        admission::BatchVerdict::Reject { .. } => Validation::Reject,
    };
    (validation, verdict)
}

/// Whether `msg` is a proposal with a compact last commit (ADR 0018).
pub fn is_compact(msg: &ConsensusMessage) -> bool {
    matches!(&msg.msg, Some(Msg::Proposal(sp)) if sp.compact_last_commit.is_some())
}

/// `msg` with a proposal's compact last commit expanded into its block
/// ([`compact::expand_proposal`]); anything else unchanged.
pub fn expand_message(genesis: &Genesis, msg: ConsensusMessage) -> Result<ConsensusMessage, MessageError> {
    match msg.msg {
        Some(Msg::Proposal(sp)) => Ok(ConsensusMessage {
            msg: Some(Msg::Proposal(compact::expand_proposal(
                genesis.chain_id(),
                &genesis.members,
                sp,
            )?)),
            attempt: msg.attempt,
        }),
        _ => Ok(msg),
    }
}

/// The bytes gossip sends for `msg`: its encoding, with a proposal's last
/// commit in the compact form when that can express it (ADR 0018). At 100
/// validators that keeps a proposal under 8 KiB, where every connection's
/// buffers stay.
pub fn wire_bytes(genesis: &Genesis, msg: &ConsensusMessage) -> Vec<u8> {
    if let Some(Msg::Proposal(sp)) = &msg.msg {
        if let Some(compact) = compact::compact_proposal(genesis.chain_id(), &genesis.members, sp) {
            return ConsensusMessage {
                msg: Some(Msg::Proposal(compact)),
                attempt: msg.attempt,
            }
            .encode_to_vec();
        }
    }
    msg.encode_to_vec()
}

/// Whether `data` is the one encoding of `msg` (prost's, field order, no
/// unknown fields): what honest senders produce.
pub fn is_canonical(msg: &ConsensusMessage, data: &[u8]) -> bool {
    msg.encoded_len() == data.len() && msg.encode_to_vec() == data
}

/// [`content_key`] of a message whose canonical encoding is `data`, without
/// re-encoding it: `attempt` (field 10) is the last field, so the content is
/// `data` without its `attempt` suffix.
pub fn canonical_content_key(msg: &ConsensusMessage, data: &[u8]) -> [u8; 32] {
    if msg.attempt == 0 {
        return *blake3::hash(data).as_bytes();
    }
    let suffix = 1 + prost::encoding::encoded_len_varint(msg.attempt);
    match data.len().checked_sub(suffix) {
        Some(end) if data[end] == 10 << 3 => *blake3::hash(&data[..end]).as_bytes(),
        _ => content_key(msg),
    }
}

/// The signed content of a consensus message: BLAKE3 of its encoding with
/// the unsigned `attempt` zeroed (re-sends differ only in `attempt`).
pub fn content_key(msg: &ConsensusMessage) -> [u8; 32] {
    // The encoding with `attempt` zeroed is the oneof's encoding alone
    // (proto3 omits a zero field), so no copy of the message is needed.
    let mut buf = Vec::new();
    if let Some(m) = &msg.msg {
        buf.reserve_exact(m.encoded_len());
        m.encode(&mut buf);
    }
    *blake3::hash(&buf).as_bytes()
}

/// The `kind` label of a message on `topic` whose kind is unknown.
pub fn topic_kind(topic: Topic) -> &'static str {
    match topic {
        Topic::Proposals => "proposal",
        Topic::Votes => "vote",
        Topic::Attestations => "attestation",
        Topic::Evidence => "evidence",
    }
}

/// The message kind of a claim, for the message counters.
fn claim_kind(kind: ClaimKind) -> MsgKind {
    match kind {
        ClaimKind::Proposal => MsgKind::Proposal,
        ClaimKind::Prevote => MsgKind::Prevote,
        ClaimKind::Precommit => MsgKind::Precommit,
    }
}

/// The kind of a consensus message, for the message counters.
pub fn msg_kind(msg: &ConsensusMessage) -> Option<MsgKind> {
    match &msg.msg {
        Some(Msg::Proposal(_)) => Some(MsgKind::Proposal),
        Some(Msg::Vote(sv)) => match sv.vote.as_ref().map(|v| v.kind()) {
            Some(bizra_proto::VoteKind::Precommit) => Some(MsgKind::Precommit),
            Some(_) => Some(MsgKind::Prevote),
            None => None,
        },
        None => None,
    }
}

/// The height a driver input is for.
pub fn input_height(i: &Input) -> Option<u64> {
    match i {
        Input::Vote(v) => Some(v.height()),
        Input::Proposal(p) => Some(p.proposal().height),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizra_proto::{SignedVote, Vote};

    fn vote_msg(attempt: u64) -> ConsensusMessage {
        ConsensusMessage {
            msg: Some(Msg::Vote(SignedVote {
                vote: Some(Vote {
                    chain_id: "c".into(),
                    height: 3,
                    round: 1,
                    kind: 1,
                    block_hash: vec![9; 32],
                    validator: "v".into(),
                }),
                signature: vec![1; 64],
            })),
            attempt,
        }
    }

    /// D1: a real vote padded with an unknown field, or with a field
    /// repeated (prost keeps the last), decodes to the same message; only the
    /// one canonical encoding passes. Re-sends (other `attempt`) are
    /// canonical and share the content key, which bounds their forwarding.
    #[test]
    fn only_the_canonical_encoding_passes_and_attempts_share_a_content_key() {
        let m = vote_msg(0);
        let bytes = m.encode_to_vec();
        assert!(is_canonical(&m, &bytes));
        // Unknown field 15 (varint 1) appended.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[15 << 3, 1]);
        let d = ConsensusMessage::decode(padded.as_slice()).unwrap();
        assert_eq!(d, m, "prost drops the unknown field");
        assert!(!is_canonical(&d, &padded));
        // `attempt` encoded twice (the last one wins).
        let mut twice = vote_msg(5).encode_to_vec();
        twice.extend_from_slice(&[10 << 3, 5]);
        let d = ConsensusMessage::decode(twice.as_slice()).unwrap();
        assert!(!is_canonical(&d, &twice));
        let r = vote_msg(7);
        assert!(is_canonical(&r, &r.encode_to_vec()));
        assert_eq!(content_key(&r), content_key(&m));
        assert_ne!(r.encode_to_vec(), bytes);
        // The content key read off the canonical bytes is the same.
        for attempt in [0, 1, 127, 128, 300, u64::MAX] {
            let v = vote_msg(attempt);
            assert_eq!(
                canonical_content_key(&v, &v.encode_to_vec()),
                content_key(&m),
                "{attempt}"
            );
        }
    }

    fn check(driver: &Driver, topic: Topic, data: &[u8]) -> GossipCheck {
        let w = crate::test_world::world();
        let pool = w.pool();
        let forwarded = HashMap::new();
        let view = GossipView {
            driver,
            genesis: &w.genesis,
            store: &w.store,
            pool: &pool,
            forwarded: &forwarded,
        };
        check_consensus_gossip(&view, &mut admission::VerifiedPayloads::default(), topic, data)
    }

    /// A vote with a bad signature is a strike, counted under the kind it
    /// claims (the pre-created prevote/precommit `invalid` series).
    #[test]
    fn a_forged_vote_is_counted_as_the_kind_it_claims() {
        let w = crate::test_world::world();
        let d = w.driver(None);
        let h = d.height();
        for (kind, label) in [
            (bizra_proto::VoteKind::Prevote, "prevote"),
            (bizra_proto::VoteKind::Precommit, "precommit"),
        ] {
            let mut sv = w.vote(1, h, 0, kind, None);
            sv.signature[0] ^= 1;
            let msg = ConsensusMessage {
                msg: Some(Msg::Vote(sv)),
                attempt: 0,
            };
            let c = check(&d, Topic::Votes, &msg.encode_to_vec());
            assert_eq!(c.verdict, Validation::Reject);
            assert_eq!(c.counted, Some((label, "invalid")));
        }
    }

    /// A proposal the driver cannot use is dropped on its claim, read from
    /// the bytes: its block is never decoded (here it would not decode).
    #[test]
    fn a_dropped_proposal_is_not_decoded() {
        let w = crate::test_world::world();
        let d = w.driver(None);
        let sp = w.next_proposals[0].clone();
        let mut proposal = sp.proposal.clone().expect("proposal");
        // Rounds far ahead of the driver's: dropped before any signature.
        proposal.round = 50;
        let mut inner = Vec::new();
        prost::encoding::message::encode(1, &proposal, &mut inner);
        prost::encoding::bytes::encode(2, &sp.signature, &mut inner);
        prost::encoding::bytes::encode(3, &vec![0xffu8; 1 << 20], &mut inner);
        let mut garbage = Vec::new();
        prost::encoding::bytes::encode(1, &inner, &mut garbage);
        assert!(ConsensusMessage::decode(garbage.as_slice()).is_err());
        let c = check(&d, Topic::Proposals, &garbage);
        assert_eq!(c.verdict, Validation::Ignore);
        assert_eq!(c.received, Some(MsgKind::Proposal));
        assert!(
            matches!(c.counted, Some(("proposal", "round_window" | "not_proposer"))),
            "{:?}",
            c.counted
        );
        // The same bytes at a usable round are decoded, and refused as malformed.
        proposal.round = 0;
        let mut inner = Vec::new();
        prost::encoding::message::encode(1, &proposal, &mut inner);
        prost::encoding::bytes::encode(3, &vec![0xffu8; 64], &mut inner);
        let mut usable = Vec::new();
        prost::encoding::bytes::encode(1, &inner, &mut usable);
        let c = check(&d, Topic::Proposals, &usable);
        assert_eq!(c.verdict, Validation::Reject);
        assert_eq!(c.counted, Some(("unknown", "malformed")));
    }

    /// ADR 0018: a proposal goes out with its last commit compact, is
    /// rebuilt on receipt and delivered exactly as the full one (same
    /// message, same content key, same verdict); the full form is still
    /// taken, and a compact commit that does not add up is a strike.
    #[test]
    fn a_compact_proposal_is_delivered_as_the_full_one() {
        let w = crate::test_world::world();
        let d = w.driver(None);
        let full = ConsensusMessage {
            msg: Some(Msg::Proposal(w.next_proposals[0].clone())),
            attempt: 0,
        };
        let wire = wire_bytes(&w.genesis, &full);
        let sent = ConsensusMessage::decode(wire.as_slice()).expect("decodes");
        assert!(is_compact(&sent), "the world's commit is in validator order");
        assert!(
            wire.len() < full.encoded_len(),
            "{} B against {} B",
            wire.len(),
            full.encoded_len()
        );
        let from_full = check(&d, Topic::Proposals, &full.encode_to_vec());
        let from_compact = check(&d, Topic::Proposals, &wire);
        assert_eq!(from_compact.verdict, from_full.verdict);
        assert_eq!(from_compact.counted, Some(("proposal", "accepted")));
        match (from_compact.then, from_full.then) {
            (Then::Deliver { msg, key, .. }, Then::Deliver { msg: m2, key: k2, .. }) => {
                assert_eq!(msg, full);
                assert_eq!((key, k2), (content_key(&full), content_key(&full)));
                assert_eq!(m2, full);
            }
            other => panic!("not delivered: {other:?}"),
        }
        // A signature short, or both forms at once: malformed, a strike.
        let mut short = sent.clone();
        if let Some(Msg::Proposal(sp)) = &mut short.msg {
            sp.compact_last_commit.as_mut().expect("compact").signatures.pop();
        }
        let mut both = sent.clone();
        if let Some(Msg::Proposal(sp)) = &mut both.msg {
            sp.block.as_mut().expect("block").last_commit =
                w.next_proposals[0].block.as_ref().unwrap().last_commit.clone();
        }
        for bad in [short, both] {
            let c = check(&d, Topic::Proposals, &bad.encode_to_vec());
            assert_eq!(c.verdict, Validation::Reject);
            assert_eq!(c.counted, Some(("proposal", "malformed")));
        }
    }
}
