//! DSSE envelopes in the JSON form of docs/PROTOCOL.md §9:
//! `{"payloadType", "payload": base64, "signatures": [{"keyid": hex pubkey, "sig": base64}]}`.
//!
//! Signing and verification are [`bizra_consensus::signing`]'s: Ed25519 over
//! the DSSE PAE, checked with the one rule (`verify_strict`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bizra_consensus::signing::{self, Signer};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// The standard in-toto payload type, so stock DSSE/in-toto tools verify it.
pub const PROVENANCE_TYPE: &str = "application/vnd.in-toto+json";
/// Payload type of the signed `manifest.json`.
pub const MANIFEST_TYPE: &str = "application/vnd.bizra.release-manifest+json";
/// Payload type of the signed CycloneDX SBOM.
pub const SBOM_TYPE: &str = "application/vnd.cyclonedx+json";

/// A DSSE envelope: a base64 payload, its type, and Ed25519 signatures over its PAE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload's media type (JSON `payloadType`); it is part of what is signed.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 (standard alphabet, padded) of the payload bytes.
    pub payload: String,
    /// The signatures (exactly one when made by [`Envelope::sign`]).
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope: who signed and the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Lower-case hex of the signer's Ed25519 public key.
    pub keyid: String,
    /// Base64 of the 64-byte signature.
    pub sig: String,
}

impl Envelope {
    /// Signs `payload` as `payload_type` with one signature by `signer`.
    pub fn sign(signer: &Signer, payload_type: &str, payload: &[u8]) -> Self {
        Envelope {
            payload_type: payload_type.to_string(),
            payload: STANDARD.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: signer.id().to_string(),
                sig: STANDARD.encode(signer.sign(payload_type, payload)),
            }],
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("an envelope serializes");
        out.push(b'\n');
        out
    }

    /// Parses an envelope's JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))
    }

    /// Checks that the envelope is of `payload_type` and carries exactly one
    /// signature, by `key` (its keyid is the key's hex), valid under the one
    /// signature rule; returns the payload bytes.
    pub fn open(&self, payload_type: &str, key: &VerifyingKey) -> Result<Vec<u8>, String> {
        if self.payload_type != payload_type {
            return Err(format!(
                "payloadType is {:?}, expected {payload_type:?}",
                self.payload_type
            ));
        }
        let [sig] = self.signatures.as_slice() else {
            return Err(format!(
                "has {} signatures, expected exactly one",
                self.signatures.len()
            ));
        };
        let want = hex::encode(key.as_bytes());
        if sig.keyid != want {
            return Err(format!("signed by keyid {}, not by the given key {want}", sig.keyid));
        }
        let payload = STANDARD
            .decode(&self.payload)
            .map_err(|e| format!("payload is not base64: {e}"))?;
        let sig_bytes = STANDARD
            .decode(&sig.sig)
            .map_err(|e| format!("sig is not base64: {e}"))?;
        signing::verify(key, payload_type, &payload, &sig_bytes).map_err(|e| format!("signature by {want}: {e}"))?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_open_roundtrip_and_refusals() {
        let s = Signer::from_secret([3u8; 32]);
        let other = Signer::from_secret([4u8; 32]);
        let env = Envelope::sign(&s, SBOM_TYPE, b"{}");
        let back = Envelope::from_json(&env.to_json()).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.open(SBOM_TYPE, &s.public_key()).unwrap(), b"{}");
        assert!(back
            .open(MANIFEST_TYPE, &s.public_key())
            .unwrap_err()
            .contains("payloadType"));
        assert!(back
            .open(SBOM_TYPE, &other.public_key())
            .unwrap_err()
            .contains("not by the given key"));
        let mut two = env.clone();
        two.signatures.push(env.signatures[0].clone());
        assert!(two
            .open(SBOM_TYPE, &s.public_key())
            .unwrap_err()
            .contains("exactly one"));
        let mut changed = env.clone();
        changed.payload = STANDARD.encode(b"{ }");
        assert!(changed
            .open(SBOM_TYPE, &s.public_key())
            .unwrap_err()
            .contains("does not verify"));
    }
}
