//! Signatures: Ed25519 over the DSSE v1 pre-authentication encoding.
//!
//! `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where
//! `LEN` is the ASCII decimal byte length and `SP` a single space
//! (secure-systems-lab/dsse, protocol.md). Every signed object of the chain
//! (votes, proposals, head reports, PoI attestations) uses it.
//!
//! **One verification rule.** Every signature anywhere in bizra is checked with
//! [`verify`], which is `ed25519_dalek::VerifyingKey::verify_strict` (rejects
//! small-order keys and `R`, non-canonical `s`, and uses the cofactorless
//! equation). There is deliberately no batch path: ed25519-dalek's batch
//! verification can accept signatures `verify_strict` rejects, and two nodes
//! disagreeing about a certificate splits the chain. See ADR 0004.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    /// The key is not 32 bytes (or, for a validator id, not 64 lower-case hex digits).
    #[error("public key is not 32 bytes")]
    KeyLength,
    /// The 32 bytes do not decode to a point on the curve.
    #[error("public key is not a valid Ed25519 point")]
    KeyInvalid,
    /// The key is a small-order point, for which forged signatures exist (ADR 0004).
    #[error("public key has small order (weak key)")]
    WeakKey,
    /// The signature is not 64 bytes.
    #[error("signature is not 64 bytes")]
    SigLength,
    /// `verify_strict` rejects the signature over the PAE.
    #[error("signature does not verify")]
    Invalid,
}

/// Parses a validator public key, refusing invalid and small-order points.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, SigError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| SigError::KeyLength)?;
    let vk = VerifyingKey::from_bytes(&arr).map_err(|_| SigError::KeyInvalid)?;
    if vk.is_weak() {
        return Err(SigError::WeakKey);
    }
    Ok(vk)
}

/// Parses a validator id (lower-case hex of the public key).
pub fn parse_validator_id(id: &str) -> Result<VerifyingKey, SigError> {
    if id.len() != 64 || !id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return Err(SigError::KeyLength);
    }
    let bytes = hex::decode(id).map_err(|_| SigError::KeyLength)?;
    parse_public_key(&bytes)
}

/// The one verification rule: strict Ed25519 over `PAE(payload_type, payload)`.
pub fn verify(key: &VerifyingKey, payload_type: &str, payload: &[u8], signature: &[u8]) -> Result<(), SigError> {
    let sig: [u8; 64] = signature.try_into().map_err(|_| SigError::SigLength)?;
    let sig = Signature::from_bytes(&sig);
    key.verify_strict(&pae(payload_type, payload), &sig)
        .map_err(|_| SigError::Invalid)
}

/// A validator's signing key. Ed25519 signing is deterministic, so signing is a
/// pure function and lives in the core.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.id)
    }
}

impl Signer {
    /// The signer of a 32-byte Ed25519 secret key (seed).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&secret);
        let id = hex::encode(key.verifying_key().as_bytes());
        Signer { key, id }
    }
    /// Validator id: lower-case hex of the public key.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The Ed25519 public key, which [`verify`] checks our signatures against.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
    /// The 32-byte secret key, as given to [`Signer::from_secret`]: for the key file and
    /// the node's libp2p identity, which is the same key (docs/PROTOCOL.md §3).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
    /// Ed25519 signature over `PAE(payload_type, payload)`; deterministic, and
    /// passes [`verify`] under [`Signer::public_key`].
    pub fn sign(&self, payload_type: &str, payload: &[u8]) -> [u8; 64] {
        self.key.sign(&pae(payload_type, payload)).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_dsse_spec_example() {
        // From the DSSE v1 spec (protocol.md), "Test vectors".
        let got = pae("http://example.com/HelloWorld", b"hello world");
        assert_eq!(got, b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec());
    }

    #[test]
    fn sign_verify_roundtrip_and_tamper() {
        let s = Signer::from_secret([7u8; 32]);
        let sig = s.sign("t", b"payload");
        assert!(verify(&s.public_key(), "t", b"payload", &sig).is_ok());
        assert_eq!(verify(&s.public_key(), "t", b"payloaD", &sig), Err(SigError::Invalid));
        assert_eq!(verify(&s.public_key(), "u", b"payload", &sig), Err(SigError::Invalid));
        let mut bad = sig;
        bad[5] ^= 1;
        assert_eq!(verify(&s.public_key(), "t", b"payload", &bad), Err(SigError::Invalid));
        assert_eq!(
            verify(&s.public_key(), "t", b"payload", &sig[..63]),
            Err(SigError::SigLength)
        );
    }

    #[test]
    fn small_order_key_is_refused() {
        // The identity point (small order) encoded as y = 1.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert_eq!(parse_public_key(&id).unwrap_err(), SigError::WeakKey);
        assert_eq!(parse_validator_id("AB").unwrap_err(), SigError::KeyLength);
        let upper = "A".repeat(64);
        assert_eq!(parse_validator_id(&upper).unwrap_err(), SigError::KeyLength);
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        let s = Signer::from_secret([9u8; 32]);
        let mut sig = s.sign("t", b"m");
        // Add the group order l to s: same scalar mod l, non-canonical encoding.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = sig[32 + i] as u16 + L[i] as u16 + carry;
            sig[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(verify(&s.public_key(), "t", b"m", &sig), Err(SigError::Invalid));
    }
}
