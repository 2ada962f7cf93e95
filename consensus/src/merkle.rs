//! BLAKE3 Merkle tree over a block's attestations (the header's payload root).
//!
//! * leaf  = BLAKE3(0x00 || attestation id || signature), where the id is
//!   BLAKE3 of the attestation payload and signature the envelope's one
//!   Ed25519 signature, so the root commits to what was signed and by whom;
//! * inner = BLAKE3(0x01 || left || right);
//! * an odd node at the end of a level is promoted unchanged (never
//!   duplicated, which would let two leaf lists share one root);
//! * the root of no leaves is BLAKE3 of the empty string.

use crate::types::Hash;

/// A leaf: `BLAKE3(0x00 || id || signature)`. Attestations pass their id and
/// envelope signature; evidence passes its id and an empty signature
/// (docs/PROTOCOL.md §3).
pub fn leaf_hash(id: &Hash, signature: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(id);
    h.update(signature);
    *h.finalize().as_bytes()
}

fn node(l: &Hash, r: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(l);
    h.update(r);
    *h.finalize().as_bytes()
}

/// The root over `leaves` in order: inner nodes `BLAKE3(0x01 || left || right)`,
/// an odd last node promoted unchanged, BLAKE3("") for no leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return *blake3::hash(b"").as_bytes();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| if c.len() == 2 { node(&c[0], &c[1]) } else { c[0] })
            .collect();
    }
    level[0]
}

/// Sibling path for leaf `index` (bottom-up). Promoted levels have no sibling.
pub fn proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let mut level = leaves.to_vec();
    let mut i = index;
    while level.len() > 1 {
        let sib = i ^ 1;
        if sib < level.len() {
            path.push(level[sib]);
        }
        level = level
            .chunks(2)
            .map(|c| if c.len() == 2 { node(&c[0], &c[1]) } else { c[0] })
            .collect();
        i /= 2;
    }
    Some(path)
}

/// Checks a sibling path against a root, given the leaf's index and the number
/// of leaves (which fixes where promotions happen).
pub fn verify(root_hash: &Hash, leaf: &Hash, index: u64, count: u64, siblings: &[Hash]) -> bool {
    if index >= count {
        return false;
    }
    let (mut acc, mut i, mut n, mut k) = (*leaf, index, count, 0usize);
    while n > 1 {
        let sib = i ^ 1;
        if sib < n {
            let Some(s) = siblings.get(k) else { return false };
            k += 1;
            acc = if i % 2 == 0 { node(&acc, s) } else { node(s, &acc) };
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    k == siblings.len() && acc == *root_hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[i as u8; 32], &[0u8; 64])).collect()
    }

    #[test]
    fn known_small_trees() {
        let l = leaves(3);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), node(&l[0], &l[1]));
        assert_eq!(root(&l), node(&node(&l[0], &l[1]), &l[2]));
        // No duplication: [a,b,c] and [a,b,c,c] differ.
        let mut dup = l.clone();
        dup.push(l[2]);
        assert_ne!(root(&l), root(&dup));
    }

    proptest! {
        #[test]
        fn every_proof_verifies_and_tampering_fails(n in 1usize..40, pick in 0usize..40, flip in 0usize..32) {
            let l = leaves(n);
            let i = pick % n;
            let r = root(&l);
            let p = proof(&l, i).unwrap();
            prop_assert!(verify(&r, &l[i], i as u64, n as u64, &p));
            let mut bad_leaf = l[i];
            bad_leaf[flip] ^= 1;
            prop_assert!(!verify(&r, &bad_leaf, i as u64, n as u64, &p));
            if n > 1 {
                prop_assert!(!verify(&r, &l[i], ((i + 1) % n) as u64, n as u64, &p) || l[i] == l[(i + 1) % n]);
            }
            if !p.is_empty() {
                let mut bad = p.clone();
                bad[0][flip] ^= 1;
                prop_assert!(!verify(&r, &l[i], i as u64, n as u64, &bad));
            }
        }
    }
}
