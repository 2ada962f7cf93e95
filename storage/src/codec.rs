//! On-disk record encodings shared by the sled store (and, for the block
//! hash, by the in-memory store).
//!
//! Every value written to sled is *sealed*: `[FORMAT_V1] ++ tag ++ payload`,
//! where `tag` is the first [`TAG_LEN`] bytes of a BLAKE3 hash (domain
//! separated) over the tree name, the key and the payload. Binding the key
//! means a value that ends up under the wrong key is detected as well as bit
//! rot; either is reported as [`StoreError::Corrupt`] naming `tree/key`.

use crate::{SignPosition, StoreError, WalEntry, WalKind};
use bizra_consensus::types::SignStep;
use prost::Message;

/// Version byte at the start of every sealed value.
pub(crate) const FORMAT_V1: u8 = 1;
/// Bytes of BLAKE3 kept as the integrity tag of a sealed value.
pub(crate) const TAG_LEN: usize = 16;
const TAG_CONTEXT: &str = "bizra-storage 2024 sealed value v1";

/// Version byte of a block or commit record whose certificate is stored in
/// the compact form (docs/adr/0021); its tag has its own domain, so a flipped
/// version byte fails the checksum.
pub(crate) const FORMAT_COMPACT: u8 = 2;
const COMPACT_TAG_CONTEXT: &str = "bizra-storage 2026 sealed compact record v2";

fn tag(tree: &str, key: &[u8], payload: &[u8]) -> [u8; TAG_LEN] {
    tag_in(TAG_CONTEXT, tree, key, payload)
}

/// The tag of a value sealed with version byte `format`: compact records
/// have their own domain.
fn tag_for(format: u8, tree: &str, key: &[u8], payload: &[u8]) -> [u8; TAG_LEN] {
    if format == FORMAT_COMPACT {
        tag_in(COMPACT_TAG_CONTEXT, tree, key, payload)
    } else {
        tag(tree, key, payload)
    }
}

fn tag_in(context: &str, tree: &str, key: &[u8], payload: &[u8]) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_derive_key(context);
    h.update(&(tree.len() as u64).to_be_bytes());
    h.update(tree.as_bytes());
    h.update(&(key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(payload);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
    out
}

/// Wraps `payload` with a version byte and an integrity tag bound to `tree/key`.
pub(crate) fn seal(tree: &str, key: &[u8], payload: &[u8]) -> Vec<u8> {
    seal_as(FORMAT_V1, tree, key, payload)
}

/// [`seal`] with the version byte `format` ([`FORMAT_V1`] or
/// [`FORMAT_COMPACT`]), the tag in that format's domain.
pub(crate) fn seal_as(format: u8, tree: &str, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + TAG_LEN + payload.len());
    v.push(format);
    v.extend_from_slice(&tag_for(format, tree, key, payload));
    v.extend_from_slice(payload);
    v
}

/// Checks a sealed value and returns its payload.
pub(crate) fn unseal<'a>(tree: &str, key: &[u8], raw: &'a [u8]) -> Result<&'a [u8], StoreError> {
    unseal_as(&[FORMAT_V1], tree, key, raw).map(|(_, p)| p)
}

/// Checks a sealed value whose version byte is one of `formats`; returns
/// the version byte and the payload.
pub(crate) fn unseal_as<'a>(
    formats: &[u8],
    tree: &str,
    key: &[u8],
    raw: &'a [u8],
) -> Result<(u8, &'a [u8]), StoreError> {
    let Some((&version, rest)) = raw.split_first() else {
        return Err(corrupt(tree, key, "empty value"));
    };
    if !formats.contains(&version) {
        return Err(corrupt(
            tree,
            key,
            format!("unknown value format byte {version:#04x} (this build understands {formats:#04x?} here)"),
        ));
    }
    if rest.len() < TAG_LEN {
        return Err(corrupt(tree, key, format!("value truncated to {} bytes", raw.len())));
    }
    let (stored, payload) = rest.split_at(TAG_LEN);
    if stored != tag_for(version, tree, key, payload) {
        return Err(corrupt(
            tree,
            key,
            format!(
                "checksum mismatch over {} payload bytes (bit rot or a value stored under the wrong key)",
                payload.len()
            ),
        ));
    }
    Ok((version, payload))
}

/// Human label of a record: `blocks/00000012`, `hash_index/ab12..`, `meta/head`.
pub(crate) fn label(tree: &str, key: &[u8]) -> String {
    match tree {
        crate::layout::META | crate::layout::GUARD => {
            format!("{tree}/{}", String::from_utf8_lossy(key))
        }
        crate::layout::HASH_INDEX | crate::layout::ATT_INDEX => {
            format!("{tree}/{}", hex::encode(key))
        }
        _ => match <[u8; 8]>::try_from(key) {
            Ok(k) => format!("{tree}/{:08}", u64::from_be_bytes(k)),
            Err(_) => format!("{tree}/0x{}", hex::encode(key)),
        },
    }
}

pub(crate) fn corrupt(tree: &str, key: &[u8], what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{}: {what}", label(tree, key)))
}

pub(crate) fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub(crate) fn decode_u64_key(tree: &str, key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(tree, key, format!("key has {} bytes, expected 8", key.len())))
}

/// BLAKE3 of the protobuf encoding of the header: the block hash.
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (a, b) = buf.split_at(n);
    *buf = b;
    Some(a)
}

fn take_u64(buf: &mut &[u8]) -> Option<u64> {
    take(buf, 8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

fn take_u32(buf: &mut &[u8]) -> Option<u32> {
    take(buf, 4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
}

fn take_32(buf: &mut &[u8]) -> Option<[u8; 32]> {
    take(buf, 32).map(|b| b.try_into().expect("32 bytes"))
}

// ---- blocks: hash(32) ++ encoded Block ----

pub(crate) fn encode_block(hash: &[u8; 32], block: &bizra_proto::Block) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + block.encoded_len());
    v.extend_from_slice(hash);
    block.encode(&mut v).expect("Vec has unbounded capacity");
    v
}

/// Decodes a block record and checks that the header hashes to the stored
/// hash and carries the height of the key.
pub(crate) fn decode_block(
    height: u64,
    key: &[u8],
    payload: &[u8],
) -> Result<([u8; 32], bizra_proto::Block), StoreError> {
    const T: &str = crate::layout::BLOCKS;
    let mut p = payload;
    let stored = take_32(&mut p).ok_or_else(|| corrupt(T, key, "record shorter than its 32-byte hash"))?;
    let block = bizra_proto::Block::decode(p).map_err(|e| corrupt(T, key, format!("block does not decode: {e}")))?;
    check_block(height, key, stored, block)
}

/// Splits a block record (either form) into its stored hash and the rest.
pub(crate) fn split_block_record<'a>(key: &[u8], payload: &'a [u8]) -> Result<([u8; 32], &'a [u8]), StoreError> {
    let mut p = payload;
    let stored =
        take_32(&mut p).ok_or_else(|| corrupt(crate::layout::BLOCKS, key, "record shorter than its 32-byte hash"))?;
    Ok((stored, p))
}

/// Checks that a decoded block's header hashes to the stored hash and
/// carries the height of the key.
pub(crate) fn check_block(
    height: u64,
    key: &[u8],
    stored: [u8; 32],
    block: bizra_proto::Block,
) -> Result<([u8; 32], bizra_proto::Block), StoreError> {
    const T: &str = crate::layout::BLOCKS;
    let Some(header) = block.header.as_ref() else {
        return Err(corrupt(T, key, "stored block has no header"));
    };
    if header.height != height {
        return Err(corrupt(
            T,
            key,
            format!("stored block has header height {}", header.height),
        ));
    }
    let actual = crate::block_hash_of(header);
    if actual != stored {
        return Err(corrupt(
            T,
            key,
            format!(
                "header hashes to {} but the record says {}",
                hex::encode(actual),
                hex::encode(stored)
            ),
        ));
    }
    Ok((stored, block))
}

// ---- commits: encoded CommitCertificate ----

pub(crate) fn decode_commit(
    height: u64,
    key: &[u8],
    payload: &[u8],
) -> Result<bizra_proto::CommitCertificate, StoreError> {
    const T: &str = crate::layout::COMMITS;
    let c = bizra_proto::CommitCertificate::decode(payload)
        .map_err(|e| corrupt(T, key, format!("commit certificate does not decode: {e}")))?;
    check_commit_height(height, key, c)
}

/// Checks that a decoded commit certificate is for the height of its key.
pub(crate) fn check_commit_height(
    height: u64,
    key: &[u8],
    c: bizra_proto::CommitCertificate,
) -> Result<bizra_proto::CommitCertificate, StoreError> {
    const T: &str = crate::layout::COMMITS;
    if c.height != height {
        return Err(corrupt(
            T,
            key,
            format!("stored commit certificate is for height {}", c.height),
        ));
    }
    Ok(c)
}

// ---- hash_index: height u64 ----

pub(crate) fn decode_height(tree: &str, key: &[u8], payload: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(payload).map(u64::from_be_bytes).map_err(|_| {
        corrupt(
            tree,
            key,
            format!("expected an 8-byte height, got {} bytes", payload.len()),
        )
    })
}

// ---- att_index: height u64 ++ index u32 ----

pub(crate) fn encode_att(height: u64, index: u32) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&height.to_be_bytes());
    v[8..].copy_from_slice(&index.to_be_bytes());
    v
}

pub(crate) fn decode_att(key: &[u8], payload: &[u8]) -> Result<(u64, u32), StoreError> {
    let mut p = payload;
    match (take_u64(&mut p), take_u32(&mut p)) {
        (Some(h), Some(i)) if p.is_empty() => Ok((h, i)),
        _ => Err(corrupt(
            crate::layout::ATT_INDEX,
            key,
            format!("expected 12 bytes (height, index), got {}", payload.len()),
        )),
    }
}

// ---- wal: height u64 ++ kind u8 ++ encoded ConsensusMessage, or a batch (kind 2) ----

/// Kind byte of a record holding several received messages of one height:
/// each as a u32 big-endian length and the message's protobuf bytes.
const WAL_RECEIVED_BATCH: u8 = 2;

pub(crate) fn encode_wal(entry: &WalEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + entry.msg.encoded_len());
    v.extend_from_slice(&entry.height.to_be_bytes());
    v.push(match entry.kind {
        WalKind::Own => 0,
        WalKind::Received => 1,
    });
    entry.msg.encode(&mut v).expect("Vec has unbounded capacity");
    v
}

/// One record for `msgs`, received at `height` (see [`WAL_RECEIVED_BATCH`]).
pub(crate) fn encode_wal_received(height: u64, msgs: &[bizra_proto::ConsensusMessage]) -> Vec<u8> {
    let len: usize = msgs.iter().map(|m| 4 + m.encoded_len()).sum();
    let mut v = Vec::with_capacity(9 + len);
    v.extend_from_slice(&height.to_be_bytes());
    v.push(WAL_RECEIVED_BATCH);
    for m in msgs {
        let n = u32::try_from(m.encoded_len()).expect("a consensus message is far below 4 GiB");
        v.extend_from_slice(&n.to_be_bytes());
        m.encode(&mut v).expect("Vec has unbounded capacity");
    }
    v
}

/// The height a WAL record is for, without decoding its messages.
pub(crate) fn wal_height(key: &[u8], payload: &[u8]) -> Result<u64, StoreError> {
    let mut p = payload;
    take_u64(&mut p).ok_or_else(|| corrupt(crate::layout::WAL, key, "entry shorter than its height"))
}

/// The entries of one WAL record: one, or several for a batch of received
/// messages.
pub(crate) fn decode_wal(key: &[u8], payload: &[u8]) -> Result<Vec<WalEntry>, StoreError> {
    const T: &str = crate::layout::WAL;
    let decode = |bytes: &[u8]| {
        bizra_proto::ConsensusMessage::decode(bytes)
            .map_err(|e| corrupt(T, key, format!("consensus message does not decode: {e}")))
    };
    let mut p = payload;
    let height = take_u64(&mut p).ok_or_else(|| corrupt(T, key, "entry shorter than its height"))?;
    let kind = match take(&mut p, 1) {
        Some([0]) => WalKind::Own,
        Some([1]) => WalKind::Received,
        Some([WAL_RECEIVED_BATCH]) => {
            let mut out = Vec::new();
            while !p.is_empty() {
                let n = take_u32(&mut p).ok_or_else(|| corrupt(T, key, "batch entry shorter than its length"))?;
                let bytes = take(&mut p, n as usize)
                    .ok_or_else(|| corrupt(T, key, format!("batch entry of {n} bytes truncated")))?;
                out.push(WalEntry {
                    height,
                    kind: WalKind::Received,
                    msg: decode(bytes)?,
                });
            }
            return Ok(out);
        }
        Some([k]) => return Err(corrupt(T, key, format!("unknown entry kind {k}"))),
        _ => return Err(corrupt(T, key, "entry shorter than its kind byte")),
    };
    Ok(vec![WalEntry {
        height,
        kind,
        msg: decode(p)?,
    }])
}

// ---- guard: height u64 ++ round u32 ++ step u8 ----

pub(crate) fn encode_guard(pos: SignPosition) -> [u8; 13] {
    let mut v = [0u8; 13];
    v[..8].copy_from_slice(&pos.height.to_be_bytes());
    v[8..12].copy_from_slice(&pos.round.to_be_bytes());
    v[12] = pos.step as u8;
    v
}

pub(crate) fn decode_guard(key: &[u8], payload: &[u8]) -> Result<SignPosition, StoreError> {
    const T: &str = crate::layout::GUARD;
    let mut p = payload;
    match (take_u64(&mut p), take_u32(&mut p), take(&mut p, 1)) {
        (Some(height), Some(round), Some(&[step])) if p.is_empty() => {
            let step = SignStep::try_from(step).map_err(|n| corrupt(T, key, format!("unknown step {n}")))?;
            Ok(SignPosition { height, round, step })
        }
        _ => Err(corrupt(
            T,
            key,
            format!("expected 13 bytes (height, round, step), got {}", payload.len()),
        )),
    }
}

// ---- meta/head: height u64 ++ hash 32 ----

pub(crate) fn encode_head(height: u64, hash: &[u8; 32]) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&height.to_be_bytes());
    v[8..].copy_from_slice(hash);
    v
}

pub(crate) fn decode_head(key: &[u8], payload: &[u8]) -> Result<(u64, [u8; 32]), StoreError> {
    let mut p = payload;
    match (take_u64(&mut p), take_32(&mut p)) {
        (Some(h), Some(hash)) if p.is_empty() && h > 0 => Ok((h, hash)),
        _ => Err(corrupt(
            crate::layout::META,
            key,
            format!("expected 40 bytes (height > 0, hash), got {}", payload.len()),
        )),
    }
}

// ---- meta/state: height u64 ++ blob ----

pub(crate) fn encode_state(height: u64, state: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + state.len());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(state);
    v
}

pub(crate) fn decode_state<'a>(key: &[u8], payload: &'a [u8]) -> Result<(u64, &'a [u8]), StoreError> {
    let mut p = payload;
    let h =
        take_u64(&mut p).ok_or_else(|| corrupt(crate::layout::META, key, "state record shorter than its height"))?;
    Ok((h, p))
}

// ---- meta/identity ----

pub(crate) fn encode_identity(id: &crate::DataDirIdentity) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(id.chain_id.len() as u32).to_be_bytes());
    v.extend_from_slice(id.chain_id.as_bytes());
    v.extend_from_slice(&id.genesis_hash);
    v.extend_from_slice(&(id.validator.len() as u32).to_be_bytes());
    v.extend_from_slice(id.validator.as_bytes());
    v
}

pub(crate) fn decode_identity(key: &[u8], payload: &[u8]) -> Result<crate::DataDirIdentity, StoreError> {
    let bad = |what: &str| corrupt(crate::layout::META, key, what);
    let mut p = payload;
    let string = |p: &mut &[u8], field: &str| -> Result<String, StoreError> {
        let n = take_u32(p).ok_or_else(|| bad(&format!("truncated before {field} length")))? as usize;
        let b = take(p, n).ok_or_else(|| bad(&format!("truncated inside {field}")))?;
        String::from_utf8(b.to_vec()).map_err(|_| bad(&format!("{field} is not UTF-8")))
    };
    let chain_id = string(&mut p, "chain_id")?;
    let genesis_hash = take_32(&mut p).ok_or_else(|| bad("truncated inside genesis_hash"))?;
    let validator = string(&mut p, "validator")?;
    if !p.is_empty() {
        return Err(bad(&format!("{} trailing bytes after the identity", p.len())));
    }
    Ok(crate::DataDirIdentity {
        chain_id,
        genesis_hash,
        validator,
    })
}

// ---- meta/format: u32 ----

pub(crate) fn decode_format(key: &[u8], payload: &[u8]) -> Result<u32, StoreError> {
    <[u8; 4]>::try_from(payload).map(u32::from_be_bytes).map_err(|_| {
        corrupt(
            crate::layout::META,
            key,
            format!("expected a 4-byte version, got {} bytes", payload.len()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrip_and_tamper_detection() {
        let v = seal("blocks", &u64_key(12), b"hello");
        assert_eq!(unseal("blocks", &u64_key(12), &v).unwrap(), b"hello");
        // Same bytes under another key or tree are rejected.
        assert!(matches!(
            unseal("blocks", &u64_key(13), &v),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            unseal("commits", &u64_key(12), &v),
            Err(StoreError::Corrupt(_))
        ));
        // Every single-bit flip is detected.
        for i in 0..v.len() {
            for bit in 0..8 {
                let mut w = v.clone();
                w[i] ^= 1 << bit;
                assert!(unseal("blocks", &u64_key(12), &w).is_err(), "flip byte {i} bit {bit}");
            }
        }
        // Truncations are detected.
        for n in 0..v.len() {
            assert!(unseal("blocks", &u64_key(12), &v[..n]).is_err(), "truncated to {n}");
        }
        let e = unseal("blocks", &u64_key(12), &v[..5]).unwrap_err().to_string();
        assert!(e.contains("blocks/00000012"), "{e}");
    }

    #[test]
    fn labels() {
        assert_eq!(label("blocks", &u64_key(12)), "blocks/00000012");
        assert_eq!(label("meta", b"head"), "meta/head");
        assert_eq!(label("hash_index", &[0xab, 0x01]), "hash_index/ab01");
        assert_eq!(label("wal", &[1, 2]), "wal/0x0102");
    }

    #[test]
    fn record_roundtrips() {
        let id = crate::DataDirIdentity {
            chain_id: "c".into(),
            genesis_hash: [7; 32],
            validator: "v".into(),
        };
        assert_eq!(decode_identity(b"identity", &encode_identity(&id)).unwrap(), id);
        let enc = encode_identity(&id);
        for n in 0..enc.len() {
            assert!(decode_identity(b"identity", &enc[..n]).is_err());
        }
        let pos = SignPosition {
            height: 9,
            round: 3,
            step: SignStep::Precommit,
        };
        assert_eq!(decode_guard(b"pos", &encode_guard(pos)).unwrap(), pos);
        let mut bad = encode_guard(pos);
        bad[12] = 3;
        assert!(decode_guard(b"pos", &bad).is_err());
        assert_eq!(decode_att(b"k", &encode_att(5, 6)).unwrap(), (5, 6));
        assert_eq!(decode_head(b"head", &encode_head(4, &[1; 32])).unwrap(), (4, [1; 32]));
        assert!(decode_head(b"head", &encode_head(0, &[1; 32])).is_err());
        let e = WalEntry {
            height: 3,
            kind: WalKind::Received,
            msg: bizra_proto::ConsensusMessage::default(),
        };
        assert_eq!(decode_wal(&u64_key(0), &encode_wal(&e)).unwrap(), vec![e.clone()]);
        let mut w = encode_wal(&e);
        w[8] = 9;
        assert!(decode_wal(&u64_key(0), &w).is_err());
    }

    /// A batch of received messages decodes to one `Received` entry each,
    /// in order; any truncation inside it is corrupt, not fewer entries.
    #[test]
    fn received_batch_roundtrips_and_truncation_is_corrupt() {
        let msgs: Vec<_> = (0..3u64)
            .map(|i| bizra_proto::ConsensusMessage {
                attempt: i + 1,
                ..Default::default()
            })
            .collect();
        let enc = encode_wal_received(7, &msgs);
        let entries = decode_wal(&u64_key(1), &enc).unwrap();
        assert_eq!(entries.len(), 3);
        for (e, m) in entries.iter().zip(&msgs) {
            assert_eq!((e.height, e.kind, &e.msg), (7, WalKind::Received, m));
        }
        assert_eq!(wal_height(&u64_key(1), &enc).unwrap(), 7);
        let whole = enc.len();
        let boundaries: Vec<usize> = {
            let mut at = 9;
            let mut b = vec![at];
            for m in &msgs {
                at += 4 + m.encoded_len();
                b.push(at);
            }
            b
        };
        for n in 9..whole {
            let r = decode_wal(&u64_key(1), &enc[..n]);
            if boundaries.contains(&n) {
                assert_eq!(r.unwrap().len(), boundaries.iter().position(|b| *b == n).unwrap());
            } else {
                assert!(matches!(r, Err(StoreError::Corrupt(_))), "truncated to {n}: {r:?}");
            }
        }
    }
}
