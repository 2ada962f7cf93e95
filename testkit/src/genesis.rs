//! A genesis of `n` validators, as the canonical file bytes and parsed.

use bizra_consensus::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
use bizra_consensus::signing::Signer;
use std::sync::Arc;

/// `genesis_time_ms` of a [`GenesisBuilder`] unless set otherwise.
pub const DEFAULT_GENESIS_TIME_MS: u64 = 1_700_000_000_000;

/// A genesis document for a set of signers, with defaults for everything
/// else: time [`DEFAULT_GENESIS_TIME_MS`], default parameters, a stake of
/// 1000 each and names `validator-<i>`. Validators are in signer order, so
/// validator `i` of the genesis is `signers[i]`.
#[derive(Clone, Debug)]
pub struct GenesisBuilder {
    doc: GenesisDoc,
}

/// A built genesis: its file bytes and the parsed, validated genesis.
#[derive(Clone, Debug)]
pub struct TestGenesis {
    /// The genesis file (`Genesis::from_doc`'s canonical JSON).
    pub bytes: Vec<u8>,
    /// The parsed genesis.
    pub genesis: Arc<Genesis>,
}

impl GenesisBuilder {
    /// A genesis of `signers` on `chain_id`.
    pub fn new(chain_id: &str, signers: &[Signer]) -> Self {
        GenesisBuilder {
            doc: GenesisDoc {
                chain_id: chain_id.to_string(),
                genesis_time_ms: DEFAULT_GENESIS_TIME_MS,
                params: GenesisParams::default(),
                validators: signers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| GenesisValidator {
                        id: s.id().to_string(),
                        stake: 1_000,
                        name: format!("validator-{i}"),
                    })
                    .collect(),
            },
        }
    }

    /// Sets `genesis_time_ms`.
    pub fn genesis_time_ms(mut self, ms: u64) -> Self {
        self.doc.genesis_time_ms = ms;
        self
    }

    /// Sets `params.epoch_length`.
    pub fn epoch_length(mut self, blocks: u64) -> Self {
        self.doc.params.epoch_length = blocks;
        self
    }

    /// Sets every parameter.
    pub fn params(mut self, params: GenesisParams) -> Self {
        self.doc.params = params;
        self
    }

    /// Validator `i`'s stake is `stake(i)`.
    pub fn stakes(mut self, stake: impl Fn(usize) -> u64) -> Self {
        for (i, v) in self.doc.validators.iter_mut().enumerate() {
            v.stake = stake(i);
        }
        self
    }

    /// Validator `i` is named `<prefix><i>`.
    pub fn names(mut self, prefix: &str) -> Self {
        for (i, v) in self.doc.validators.iter_mut().enumerate() {
            v.name = format!("{prefix}{i}");
        }
        self
    }

    /// The document as built so far.
    pub fn doc(&self) -> &GenesisDoc {
        &self.doc
    }

    /// Serializes and parses the document; panics if it is not a valid genesis.
    pub fn build(&self) -> TestGenesis {
        let (genesis, bytes) = Genesis::from_doc(&self.doc).expect("test genesis is valid");
        TestGenesis {
            bytes,
            genesis: Arc::new(genesis),
        }
    }
}
