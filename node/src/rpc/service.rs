//! `bizra.node.v1.Node`: every rpc of `node.proto`, read from the store,
//! the genesis, the status snapshot and the epoch weights in [`Shared`].
//!
//! Status codes: a malformed request is `INVALID_ARGUMENT`; a height above the
//! finalized head, an unknown hash, epoch or attestation id is `NOT_FOUND`
//! (as is "no finalized block yet"); an attestation above
//! [`MAX_SUBMIT_BYTES`] is `RESOURCE_EXHAUSTED`; the engine's refusals map as
//! in [`SubmitError`]; an engine that is not running is `UNAVAILABLE`; a store
//! failure is `INTERNAL`. Nothing here panics on input.

use crate::state::{EngineRequest, HeadEvent, Shared, SubmitError};
use bizra_consensus::types::{block_label, Hash};
use bizra_consensus::validators::EpochWeights;
use bizra_consensus::{certificate, chain, evidence, merkle, quorum};
use bizra_proto::node_server::Node;
use bizra_proto::{
    get_block_request, get_evidence_request, payload_type, Block, BlockHeader, CommittedEvidence, Envelope,
    EnvelopeSignature, GetAttestationRequest, GetAttestationResponse, GetBlockRequest, GetBlockResponse,
    GetCommitRequest, GetCommitResponse, GetEvidenceRequest, GetEvidenceResponse, GetHeadReportRequest,
    GetHeadReportResponse, GetHeadRequest, GetHeadResponse, GetStatusRequest, GetStatusResponse, GetValidatorsRequest,
    GetValidatorsResponse, HeadReport, InclusionProof, SubmitAttestationRequest, SubmitAttestationResponse,
    SubscribeHeadsRequest, ValidatorInfo,
};
use futures::Stream;
use prost::Message;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

/// Largest attestation envelope accepted by `SubmitAttestation` (encoded
/// size): the consensus limit, checked here before the engine sees it.
pub const MAX_SUBMIT_BYTES: usize = bizra_consensus::poi::MAX_ATTESTATION_BYTES;
/// How long `SubmitAttestation` waits for room in the engine's queue.
const ENGINE_SEND_WAIT: Duration = Duration::from_secs(5);
/// How long `SubmitAttestation` waits for the engine's verdict.
const ENGINE_REPLY_WAIT: Duration = Duration::from_secs(10);
/// Most committed evidence one GetEvidence answer carries (by validator: the newest).
pub const MAX_EVIDENCE_RESPONSE: usize = 32;

type HeadStream = Pin<Box<dyn Stream<Item = Result<GetHeadResponse, Status>> + Send + 'static>>;

/// The `bizra.node.v1.Node` service (docs/PROTOCOL.md §8), answering from
/// [`Shared`]; [`crate::rpc::serve_listener`] puts it behind the limits.
pub struct NodeService {
    shared: Arc<Shared>,
    subscribers: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl NodeService {
    /// `max_subscribers` bounds open `SubscribeHeads` streams; `stop` turning
    /// true (or its sender dropping) ends them.
    pub fn new(shared: Arc<Shared>, max_subscribers: usize, stop: watch::Receiver<bool>) -> Self {
        let n = max_subscribers.clamp(1, Semaphore::MAX_PERMITS);
        NodeService {
            shared,
            subscribers: Arc::new(Semaphore::new(n)),
            stop,
        }
    }

    /// The finalized head, if any.
    fn head(&self) -> Result<Option<(u64, Hash)>, Status> {
        self.shared.store.head().map_err(internal)
    }

    /// The finalized head, or `NOT_FOUND`.
    fn require_head(&self) -> Result<(u64, Hash), Status> {
        self.head()?.ok_or_else(no_block)
    }

    /// `height`, or the head for 0; `NOT_FOUND` above the head.
    fn finalized_height(&self, height: u64) -> Result<u64, Status> {
        let (head, _) = self.require_head()?;
        if height == 0 {
            Ok(head)
        } else if height > head {
            Err(above_head(height, head))
        } else {
            Ok(height)
        }
    }

    fn block_at(&self, height: u64) -> Result<(Block, Hash), Status> {
        let block = self
            .shared
            .store
            .block(height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("finalized block {height} is missing from the store")))?;
        let hash = bizra_consensus::messages::block_hash(&block)
            .ok_or_else(|| internal(format!("finalized block {height} has no header")))?;
        Ok((block, hash))
    }

    fn header_at(&self, height: u64) -> Result<(BlockHeader, Hash), Status> {
        let (block, hash) = self.block_at(height)?;
        Ok((block.header.unwrap_or_default(), hash))
    }

    fn epoch_weights(&self, height: u64) -> Result<EpochWeights, Status> {
        let epoch = bizra_consensus::types::epoch_of(height, self.shared.genesis.params().epoch_length);
        self.shared.weights_for_height(height).ok_or_else(|| {
            Status::failed_precondition(format!(
                "the weights of epoch {epoch} (height {height}) are not known to this node yet"
            ))
        })
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "gRPC: internal error");
    Status::internal(format!("internal error: {e}"))
}

fn no_block() -> Status {
    Status::not_found("no finalized block yet")
}

fn above_head(height: u64, head: u64) -> Status {
    Status::not_found(format!("height {height} is above the finalized head {head}"))
}

fn head_response(height: u64, hash: &Hash, header: BlockHeader) -> GetHeadResponse {
    GetHeadResponse {
        height,
        block_hash: hash.to_vec(),
        label: block_label(height),
        header: Some(header),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Parses an attestation id: 64 lower-case hex digits.
fn parse_attestation_id(id: &str) -> Result<Hash, Status> {
    let ok = id.len() == 64 && id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    let bytes = ok.then(|| hex::decode(id).ok()).flatten();
    bytes.and_then(|b| <Hash>::try_from(b.as_slice()).ok()).ok_or_else(|| {
        let shown: String = id.chars().take(80).collect();
        Status::invalid_argument(format!(
            "attestation id {shown:?} is not 64 lower-case hex digits (BLAKE3 of the payload)"
        ))
    })
}

fn submit_status(e: SubmitError) -> Status {
    match e {
        SubmitError::Invalid(m) => Status::invalid_argument(m),
        SubmitError::Precondition(m) => Status::failed_precondition(m),
        SubmitError::Duplicate(m) => Status::already_exists(m),
        SubmitError::Exhausted(m) => Status::resource_exhausted(m),
    }
}

struct Subscription {
    rx: broadcast::Receiver<HeadEvent>,
    stop: watch::Receiver<bool>,
    first: Option<GetHeadResponse>,
    last: u64,
    _permit: OwnedSemaphorePermit,
}

impl Subscription {
    async fn next(mut self) -> Option<(Result<GetHeadResponse, Status>, Self)> {
        if let Some(first) = self.first.take() {
            self.last = first.height;
            return Some((Ok(first), self));
        }
        loop {
            let ev = tokio::select! {
                ev = self.rx.recv() => ev,
                _ = self.stop.wait_for(|s| *s) => return None,
            };
            match ev {
                // Heads are final: an older or repeated height is a duplicate
                // of what this stream already sent.
                Ok(ev) if ev.height <= self.last => continue,
                Ok(ev) => {
                    self.last = ev.height;
                    return Some((Ok(head_response(ev.height, &ev.hash, ev.header)), self));
                }
                // A slow subscriber skips to the newest heads.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn get_status(&self, _: Request<GetStatusRequest>) -> Result<Response<GetStatusResponse>, Status> {
        let s = self.shared.status();
        let g = &self.shared.genesis;
        // Before the first block the finalized "block" is genesis (B0).
        let finalized_hash = if s.finalized_height == 0 && s.finalized_hash == [0u8; 32] {
            g.hash
        } else {
            s.finalized_hash
        };
        Ok(Response::new(GetStatusResponse {
            chain_id: g.chain_id().to_string(),
            genesis_hash: g.hash.to_vec(),
            validator: self.shared.signer.id().to_string(),
            finalized_height: s.finalized_height,
            finalized_hash: finalized_hash.to_vec(),
            consensus_height: s.consensus_height,
            consensus_round: s.consensus_round,
            catching_up: s.catching_up,
            best_peer_height: s.best_peer_height,
            peers: s.peers,
            epoch: s.epoch,
            version: self.shared.version.to_string(),
        }))
    }

    async fn get_head(&self, _: Request<GetHeadRequest>) -> Result<Response<GetHeadResponse>, Status> {
        if let Some(h) = self.shared.cached_head() {
            return Ok(Response::new(head_response(h.height, &h.hash, h.header.clone())));
        }
        let (height, _) = self.require_head()?;
        let (header, hash) = self.header_at(height)?;
        Ok(Response::new(head_response(height, &hash, header)))
    }

    async fn get_block(&self, req: Request<GetBlockRequest>) -> Result<Response<GetBlockResponse>, Status> {
        let height =
            match req.into_inner().selector {
                None => return Err(Status::invalid_argument("missing selector: set height or hash")),
                Some(get_block_request::Selector::Height(0)) => {
                    return Err(Status::invalid_argument(
                        "height 0 is genesis (B0), which has no block; the first block is height 1",
                    ))
                }
                Some(get_block_request::Selector::Height(h)) => {
                    let head = self.head()?.map_or(0, |(h, _)| h);
                    if h > head {
                        return Err(above_head(h, head));
                    }
                    h
                }
                Some(get_block_request::Selector::Hash(bytes)) => {
                    let hash: Hash = bytes.as_slice().try_into().map_err(|_| {
                        Status::invalid_argument(format!("block hash must be 32 bytes, got {}", bytes.len()))
                    })?;
                    self.shared.store.height_of(&hash).map_err(internal)?.ok_or_else(|| {
                        Status::not_found(format!("no finalized block has hash {}", hex::encode(hash)))
                    })?
                }
            };
        let (block, hash) = self.block_at(height)?;
        Ok(Response::new(GetBlockResponse {
            block: Some(block),
            block_hash: hash.to_vec(),
        }))
    }

    async fn get_commit(&self, req: Request<GetCommitRequest>) -> Result<Response<GetCommitResponse>, Status> {
        let height = self.finalized_height(req.into_inner().height)?;
        let commit = self.shared.store.commit(height).map_err(internal)?.ok_or_else(|| {
            internal(format!(
                "the commit of finalized height {height} is missing from the store"
            ))
        })?;
        let weights = self.epoch_weights(height)?;
        let g = &self.shared.genesis;
        let tally = certificate::tally_trusted(&g.members, &weights, &commit);
        let signers = tally.signers.iter().map(|&i| g.members.get(i).id.clone()).collect();
        let signatures = commit
            .precommits
            .iter()
            .filter_map(|sv| {
                let vote = sv.vote.as_ref()?;
                Some(Envelope {
                    payload_type: payload_type::VOTE.to_string(),
                    payload: vote.encode_to_vec(),
                    signatures: vec![EnvelopeSignature {
                        keyid: vote.validator.clone(),
                        sig: sv.signature.clone(),
                    }],
                })
            })
            .collect();
        let p = g.params();
        Ok(Response::new(GetCommitResponse {
            signatures,
            signers,
            signed_weight: tally.signed_weight.to_string(),
            total_weight: tally.total_weight.to_string(),
            share_bps: tally.share_bps(),
            fast_final: quorum::reaches(tally.signed_weight, tally.total_weight, p.fast_threshold_bps),
            economic_final: quorum::reaches(tally.signed_weight, tally.total_weight, p.economic_threshold_bps),
            commit: Some(commit),
        }))
    }

    async fn get_validators(
        &self,
        req: Request<GetValidatorsRequest>,
    ) -> Result<Response<GetValidatorsResponse>, Status> {
        let w = match req.into_inner().epoch {
            Some(e) => self
                .shared
                .weights_for_epoch(e)
                .ok_or_else(|| Status::not_found(format!("epoch {e} is not known to this node")))?,
            None => self
                .shared
                .current_weights()
                .ok_or_else(|| Status::failed_precondition("this node has no epoch weights yet"))?,
        };
        let members = &self.shared.genesis.members;
        let validators = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let c = w.components.get(i).cloned().unwrap_or_default();
                let weight = w.weights.get(i).copied().unwrap_or(0);
                ValidatorInfo {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    stake: c.stake,
                    poi: c.poi,
                    rep: c.rep,
                    wq_weight: weight.to_string(),
                    weight_share_bps: quorum::share_bps(weight, w.total),
                    jailed: w.is_jailed(i),
                    jailed_until_epoch: w.jailed_until(i),
                }
            })
            .collect();
        Ok(Response::new(GetValidatorsResponse {
            epoch: w.epoch,
            total_weight: w.total.to_string(),
            validators,
        }))
    }

    async fn get_head_report(
        &self,
        req: Request<GetHeadReportRequest>,
    ) -> Result<Response<GetHeadReportResponse>, Status> {
        let height = self.finalized_height(req.into_inner().height)?;
        let hash = self.shared.store.block_hash(height).map_err(internal)?.ok_or_else(|| {
            internal(format!(
                "the hash of finalized height {height} is missing from the store"
            ))
        })?;
        let g = &self.shared.genesis;
        let signer = &self.shared.signer;
        let report = HeadReport {
            chain_id: g.chain_id().to_string(),
            genesis_hash: g.hash.to_vec(),
            height,
            block_hash: hash.to_vec(),
            validator: signer.id().to_string(),
            time_ms: now_ms(),
        };
        let payload = report.encode_to_vec();
        let sig = signer.sign(payload_type::HEAD_REPORT, &payload);
        let envelope = Envelope {
            payload_type: payload_type::HEAD_REPORT.to_string(),
            payload,
            signatures: vec![EnvelopeSignature {
                keyid: signer.id().to_string(),
                sig: sig.to_vec(),
            }],
        };
        Ok(Response::new(GetHeadReportResponse {
            envelope: Some(envelope),
            report: Some(report),
        }))
    }

    type SubscribeHeadsStream = HeadStream;

    async fn subscribe_heads(
        &self,
        _: Request<SubscribeHeadsRequest>,
    ) -> Result<Response<Self::SubscribeHeadsStream>, Status> {
        let permit = self.subscribers.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many SubscribeHeads streams are open on this node; retry later")
        })?;
        // Subscribe before reading the head, so no head falls between them.
        let rx = self.shared.heads.subscribe();
        let first = match self.head()? {
            Some((height, _)) => {
                let (header, hash) = self.header_at(height)?;
                Some(head_response(height, &hash, header))
            }
            None => None,
        };
        let sub = Subscription {
            rx,
            stop: self.stop.clone(),
            first,
            last: 0,
            _permit: permit,
        };
        let stream = futures::stream::unfold(sub, Subscription::next);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn submit_attestation(
        &self,
        req: Request<SubmitAttestationRequest>,
    ) -> Result<Response<SubmitAttestationResponse>, Status> {
        let envelope = req
            .into_inner()
            .envelope
            .ok_or_else(|| Status::invalid_argument("missing envelope: SubmitAttestation needs a DSSE envelope"))?;
        let size = envelope.encoded_len();
        if size > MAX_SUBMIT_BYTES {
            return Err(Status::resource_exhausted(format!(
                "attestation is {size} bytes, above the limit of {MAX_SUBMIT_BYTES}"
            )));
        }
        // The rules (and the signature check) here, on the API's threads;
        // the engine only looks for duplicates and pools it.
        let checked =
            crate::admission::check(&self.shared.genesis, &envelope, crate::engine::now_ms()).map_err(submit_status)?;
        let (reply, answer) = oneshot::channel();
        let request = EngineRequest::SubmitAttestation {
            envelope,
            checked: Box::new(checked),
            reply,
        };
        match tokio::time::timeout(ENGINE_SEND_WAIT, self.shared.requests.send(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Status::unavailable("the consensus engine is not running")),
            Err(_) => return Err(Status::unavailable("the consensus engine is busy; retry later")),
        }
        match tokio::time::timeout(ENGINE_REPLY_WAIT, answer).await {
            Ok(Ok(Ok(id))) => Ok(Response::new(SubmitAttestationResponse { id })),
            Ok(Ok(Err(e))) => Err(submit_status(e)),
            Ok(Err(_)) => Err(Status::unavailable("the consensus engine dropped the request")),
            Err(_) => Err(Status::unavailable(
                "the consensus engine did not answer in time; retry later",
            )),
        }
    }

    async fn get_attestation(
        &self,
        req: Request<GetAttestationRequest>,
    ) -> Result<Response<GetAttestationResponse>, Status> {
        let id_hex = req.into_inner().id;
        let id = parse_attestation_id(&id_hex)?;
        let (height, index) = self
            .shared
            .store
            .attestation_location(&id)
            .map_err(internal)?
            .ok_or_else(|| {
                Status::not_found(format!(
                "attestation {id_hex} is not in a finalized block (attestations still in the pool are not queryable)"
            ))
            })?;
        let (block, hash) = self.block_at(height)?;
        let index = usize::try_from(index).map_err(internal)?;
        let envelope = block
            .attestations
            .get(index)
            .cloned()
            .ok_or_else(|| internal(format!("attestation index {index} is outside block {height}")))?;
        let leaves = chain::attestation_leaves(&block.attestations).map_err(internal)?;
        let siblings = merkle::proof(&leaves, index)
            .ok_or_else(|| internal(format!("no inclusion proof for leaf {index} of block {height}")))?;
        let commit = self.shared.store.commit(height).map_err(internal)?;
        Ok(Response::new(GetAttestationResponse {
            envelope: Some(envelope),
            finalized: true,
            height,
            block_hash: hash.to_vec(),
            proof: Some(InclusionProof {
                leaf_index: index as u64,
                leaf_count: leaves.len() as u64,
                siblings: siblings.iter().map(|s| s.to_vec()).collect(),
            }),
            commit,
            header: block.header,
        }))
    }

    async fn get_evidence(&self, req: Request<GetEvidenceRequest>) -> Result<Response<GetEvidenceResponse>, Status> {
        let g = &self.shared.genesis;
        let locations: Vec<(u64, u32)> = match req.into_inner().selector {
            Some(get_evidence_request::Selector::Validator(id)) => {
                if id.len() != 64 || !id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                    return Err(Status::invalid_argument(
                        "validator must be 64 lower-case hex digits (an Ed25519 public key)",
                    ));
                }
                let v = g
                    .members
                    .index_of(&id)
                    .ok_or_else(|| Status::not_found(format!("{id} is not a validator of this chain")))?;
                let index = self.shared.evidence.read().expect("evidence index");
                if !index.complete {
                    return Err(Status::unavailable(
                        "the evidence index is being rebuilt from the chain after a restart; retry shortly",
                    ));
                }
                let all = index.of(v);
                all[all.len().saturating_sub(MAX_EVIDENCE_RESPONSE)..].to_vec()
            }
            Some(get_evidence_request::Selector::Height(h)) => {
                let height = self.finalized_height(h)?;
                let (block, _) = self.block_at(height)?;
                (0..block.evidence.len().min(MAX_EVIDENCE_RESPONSE))
                    .map(|i| (height, i as u32))
                    .collect()
            }
            None => return Err(Status::invalid_argument("set validator or height")),
        };
        let mut out = Vec::with_capacity(locations.len());
        let mut blocks: Option<(u64, Block, [u8; 32], Option<bizra_proto::CommitCertificate>)> = None;
        for (height, index) in locations {
            if blocks.as_ref().is_none_or(|b| b.0 != height) {
                let (block, hash) = self.block_at(height)?;
                let commit = self.shared.store.commit(height).map_err(internal)?;
                blocks = Some((height, block, hash, commit));
            }
            let (_, block, hash, commit) = blocks.as_ref().expect("loaded");
            let index = index as usize;
            let ev = block
                .evidence
                .get(index)
                .cloned()
                .ok_or_else(|| internal(format!("evidence index {index} is outside block {height}")))?;
            let leaves: Vec<[u8; 32]> = block.evidence.iter().map(evidence::leaf).collect();
            let siblings = merkle::proof(&leaves, index)
                .ok_or_else(|| internal(format!("no inclusion proof for evidence {index} of block {height}")))?;
            let validator = evidence::votes(&ev)
                .map(|(a, _)| a.validator.clone())
                .unwrap_or_default();
            out.push(CommittedEvidence {
                id: hex::encode(evidence::evidence_id(&ev)),
                evidence: Some(ev),
                validator,
                height,
                block_hash: hash.to_vec(),
                proof: Some(InclusionProof {
                    leaf_index: index as u64,
                    leaf_count: leaves.len() as u64,
                    siblings: siblings.iter().map(|s| s.to_vec()).collect(),
                }),
                commit: commit.clone(),
                header: block.header.clone(),
            });
        }
        Ok(Response::new(GetEvidenceResponse { evidence: out }))
    }
}
