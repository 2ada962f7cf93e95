//! Message delivery: a broadcast to every node (with the faults of the run:
//! partitions, loss, delay and duplicates), the conflicting copies a
//! Byzantine node sends, and the signature check on receipt.

use super::{Delivery, Event, World};
use crate::node::Behavior;
use bizra_consensus::messages::{self, new_vote, sign_proposal, sign_vote};
use bizra_proto::{consensus_message::Msg, ConsensusMessage, VoteKind};
use rand::Rng;

impl World {
    pub(super) fn broadcast(&mut self, from: usize, msg: ConsensusMessage) {
        let n = self.nodes.len();
        let behavior = self.nodes[from].behavior;
        if behavior == Behavior::Silent {
            return;
        }
        let twin = match behavior {
            Behavior::DoubleVoter | Behavior::Equivocator => self.conflicting(from, &msg),
            _ => None,
        };
        let first = self.verify(&msg);
        let second = twin.as_ref().and_then(|t| self.verify(t));
        // Gossip relay of conflicting votes: every peer forwards what it
        // receives, so each node also gets the version sent to the other half,
        // one hop later (subject to the same faults). Only the relayed copies
        // that carry something new are modelled; for honest messages they
        // would be duplicates. Twin proposals are not relayed (no proposal
        // evidence in issue 15).
        let relay = matches!(msg.msg, Some(Msg::Vote(_)));
        for to in 0..n {
            if to == from {
                continue;
            }
            let (m, other) = match (&second, to % 2 == 1) {
                (Some(s), true) => (Some(s.clone()), first.clone()),
                (Some(s), false) => (first.clone(), Some(s.clone())),
                (None, _) => (first.clone(), None),
            };
            if let Some(m) = m {
                self.send(from, to, m);
            }
            if let Some(other) = other.filter(|_| relay) {
                let hop = 1 + self.rng.random_range(0..self.faults.max_delay_ms);
                self.send_after(from, to, other, hop);
            }
        }
    }

    /// A Byzantine twin of an own message: a conflicting vote, or for a
    /// proposal a different block at the same (height, round).
    pub(super) fn conflicting(&mut self, from: usize, msg: &ConsensusMessage) -> Option<ConsensusMessage> {
        let signer = self.nodes[from].signer.clone();
        match &msg.msg {
            Some(Msg::Vote(sv)) => {
                let v = sv.vote.as_ref()?;
                // An equivocating proposer votes for its other block.
                let twin_of = self.twins.iter().find_map(|((n, h, _), (a, b))| {
                    (*n == from && *h == v.height).then(|| {
                        if v.block_hash == a.as_slice() {
                            Some(*b)
                        } else if v.block_hash == b.as_slice() {
                            Some(*a)
                        } else {
                            None
                        }
                    })?
                });
                let value = if let Some(t) = twin_of {
                    Some(t)
                } else if v.block_hash.is_empty() {
                    let mut h = [0u8; 32];
                    self.rng.fill(&mut h);
                    Some(h)
                } else {
                    None
                };
                let kind = VoteKind::try_from(v.kind).ok()?;
                let twin = sign_vote(
                    &signer,
                    new_vote(&v.chain_id, v.height, v.round, kind, value, &v.validator),
                );
                Some(ConsensusMessage {
                    msg: Some(Msg::Vote(twin)),
                    attempt: 0,
                })
            }
            Some(Msg::Proposal(sp)) if self.nodes[from].behavior == Behavior::Equivocator => {
                let mut block = sp.block.clone()?;
                let header = block.header.as_mut()?;
                header.time_ms += 1 + self.rng.random_range(0..1000);
                let hash = messages::block_hash(&block)?;
                let mut p = sp.proposal.clone()?;
                let first: [u8; 32] = p.block_hash.clone().try_into().ok()?;
                self.twins.insert((from, p.height, p.round), (first, hash));
                p.block_hash = hash.to_vec();
                Some(ConsensusMessage {
                    msg: Some(Msg::Proposal(sign_proposal(&signer, p, block))),
                    attempt: 0,
                })
            }
            _ => None,
        }
    }

    /// Signature and membership check, once per message, as the node's
    /// gossip validation does before forwarding.
    pub(super) fn verify(&self, msg: &ConsensusMessage) -> Option<Delivery> {
        let (chain, members) = (self.genesis.chain_id(), &self.genesis.members);
        match &msg.msg {
            Some(Msg::Vote(sv)) => messages::check_vote(chain, members, sv).ok().map(Delivery::Vote),
            Some(Msg::Proposal(sp)) => messages::check_proposal(chain, members, sp)
                .ok()
                .map(|p| Delivery::Proposal(Box::new(p))),
            None => None,
        }
    }

    pub(super) fn send(&mut self, from: usize, to: usize, msg: Delivery) {
        self.send_after(from, to, msg, 0)
    }

    /// [`World::send`], `extra_ms` later (a relayed copy).
    pub(super) fn send_after(&mut self, from: usize, to: usize, msg: Delivery, extra_ms: u64) {
        self.messages += 1;
        let faulty = self.now < self.faults.heal_at;
        if faulty && self.faults.blocked(self.now, from, to) {
            return;
        }
        if faulty && self.rng.random_range(0..10_000) < self.faults.drop_bps {
            return;
        }
        let delay = extra_ms + 1 + self.rng.random_range(0..self.faults.max_delay_ms);
        if faulty && self.rng.random_range(0..10_000) < self.faults.dup_bps {
            let d2 = extra_ms + 1 + self.rng.random_range(0..self.faults.max_delay_ms * 2);
            self.push(self.now + d2, Event::Deliver { to, msg: msg.clone() });
        }
        self.push(self.now + delay, Event::Deliver { to, msg });
    }
}
