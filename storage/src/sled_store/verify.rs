//! Cross-checks of the stored records against each other: the head's at
//! every open, everything on request (`verify_full`).

use super::{no_panic, sled_err, SledStore};
use crate::codec::{self, corrupt, u64_key, unseal};
use crate::layout::{ATT_INDEX, BLOCKS, COMMITS, HASH_INDEX, HEAD_KEY, META, STATE_KEY};
use crate::{Store, StoreError};

impl SledStore {
    /// Cross-checks the head with its block, commit, indexes, parent and state.
    pub(super) fn verify_head(&self) -> Result<(), StoreError> {
        let state = self.read(&self.meta, META, STATE_KEY, |k, p| {
            codec::decode_state(k, p).map(|(h, _)| h)
        })?;
        let Some((height, hash)) = self.head()? else {
            for (tree, name) in [
                (&self.blocks, BLOCKS),
                (&self.commits, COMMITS),
                (&self.hash_index, HASH_INDEX),
                (&self.att_index, ATT_INDEX),
            ] {
                if let Some(l) = self.first_key_label(tree, name)? {
                    return Err(corrupt(
                        META,
                        HEAD_KEY,
                        format!("missing, but finalized data exists ({l})"),
                    ));
                }
            }
            if state.is_some() {
                return Err(corrupt(META, STATE_KEY, "present although there is no head"));
            }
            return Ok(());
        };
        let key = u64_key(height);
        let Some((stored_hash, block)) = self.read_block(height)? else {
            return Err(corrupt(
                META,
                HEAD_KEY,
                format!(
                    "points at height {height} but {} is missing",
                    codec::label(BLOCKS, &key)
                ),
            ));
        };
        if stored_hash != hash {
            return Err(corrupt(
                META,
                HEAD_KEY,
                format!(
                    "says block {} at height {height} but {} holds block {}",
                    hex::encode(hash),
                    codec::label(BLOCKS, &key),
                    hex::encode(stored_hash)
                ),
            ));
        }
        for (tree, name) in [(&self.blocks, BLOCKS), (&self.commits, COMMITS)] {
            let last = self.last_key(tree, name)?;
            if last != Some(height) {
                let what = last.map_or_else(|| "nothing".to_string(), |l| codec::label(name, &u64_key(l)));
                return Err(corrupt(
                    META,
                    HEAD_KEY,
                    format!("is at height {height} but the last record of tree {name} is {what}"),
                ));
            }
        }
        let first = self
            .blocks
            .first()
            .map_err(|e| sled_err("reading tree blocks", e))?
            .map(|(k, _)| codec::decode_u64_key(BLOCKS, &k))
            .transpose()?;
        if first != Some(1) {
            return Err(corrupt(
                BLOCKS,
                &u64_key(1),
                format!("missing: the chain must start at height 1 (head is {height})"),
            ));
        }
        match self.commit(height)? {
            None => {
                return Err(corrupt(COMMITS, &key, "missing for the head block"));
            }
            Some(c) if c.block_hash != hash => {
                return Err(corrupt(
                    COMMITS,
                    &key,
                    format!(
                        "certifies block {} but the head block is {}",
                        hex::encode(&c.block_hash),
                        hex::encode(hash)
                    ),
                ));
            }
            Some(_) => {}
        }
        match self.height_of(&hash)? {
            Some(h) if h == height => {}
            other => {
                return Err(corrupt(
                    HASH_INDEX,
                    &hash,
                    format!(
                        "the head block (height {height}) is indexed at {}",
                        other.map_or_else(|| "no height".to_string(), |h| format!("height {h}"))
                    ),
                ));
            }
        }
        if height > 1 {
            let parent = &block.header.as_ref().expect("decode_block checks").parent_hash;
            let prev = self.block_hash(height - 1)?;
            if prev.as_ref().map(|p| &p[..]) != Some(&parent[..]) {
                return Err(corrupt(
                    BLOCKS,
                    &u64_key(height - 1),
                    format!(
                        "holds {} but the head block's parent is {}",
                        prev.map_or_else(|| "nothing".into(), hex::encode),
                        hex::encode(parent)
                    ),
                ));
            }
        }
        match state {
            Some(h) if h == height => Ok(()),
            Some(h) => Err(corrupt(
                META,
                STATE_KEY,
                format!("belongs to height {h} but the head is at height {height}"),
            )),
            None => Err(corrupt(
                META,
                STATE_KEY,
                format!("missing for the head at height {height}"),
            )),
        }
    }

    /// Checks everything: every block decodes and hashes to its record, has a
    /// commit for its hash, is indexed by hash, links to its parent, and every
    /// attestation is indexed; every index entry points at a stored block; no
    /// record lies above the head; the WAL and guard decode. Returns the
    /// number of blocks checked. O(size of the data directory).
    pub fn verify_full(&self) -> Result<u64, StoreError> {
        no_panic("verifying the data directory", || self.verify_full_inner())
    }

    fn verify_full_inner(&self) -> Result<u64, StoreError> {
        self.verify_head()?;
        let head = self.head()?.map_or(0, |h| h.0);
        let mut parent: Option<[u8; 32]> = None;
        for height in 1..=head {
            let key = u64_key(height);
            let (hash, block) = self
                .read_block(height)?
                .ok_or_else(|| corrupt(BLOCKS, &key, format!("missing below the head ({head})")))?;
            let header = block.header.as_ref().expect("decode_block checks");
            if let Some(p) = parent {
                if header.parent_hash != p {
                    return Err(corrupt(
                        BLOCKS,
                        &key,
                        format!(
                            "parent_hash {} does not match block {} at height {}",
                            hex::encode(&header.parent_hash),
                            hex::encode(p),
                            height - 1
                        ),
                    ));
                }
            }
            let commit = self
                .commit(height)?
                .ok_or_else(|| corrupt(COMMITS, &key, "missing for a finalized block"))?;
            if commit.block_hash != hash {
                return Err(corrupt(
                    COMMITS,
                    &key,
                    format!(
                        "certifies block {} but the stored block is {}",
                        hex::encode(&commit.block_hash),
                        hex::encode(hash)
                    ),
                ));
            }
            if self.height_of(&hash)? != Some(height) {
                return Err(corrupt(HASH_INDEX, &hash, format!("does not point at height {height}")));
            }
            for (i, env) in block.attestations.iter().enumerate() {
                let id = crate::attestation_id(env);
                match self.attestation_location(&id)? {
                    Some((h, j)) if h < height || (h == height && j as usize <= i) => {}
                    other => {
                        return Err(corrupt(
                            ATT_INDEX,
                            &id,
                            format!("attestation {i} of block {height} is indexed at {other:?}"),
                        ))
                    }
                }
            }
            parent = Some(hash);
        }
        for item in self.hash_index.iter() {
            let (k, v) = item.map_err(|e| sled_err("reading tree hash_index", e))?;
            let h = codec::decode_height(HASH_INDEX, &k, unseal(HASH_INDEX, &k, &v)?)?;
            if self.block_hash(h)?.as_ref().map(|x| &x[..]) != Some(&k[..]) {
                return Err(corrupt(
                    HASH_INDEX,
                    &k,
                    format!("points at height {h}, which holds another block"),
                ));
            }
        }
        for item in self.att_index.iter() {
            let (k, v) = item.map_err(|e| sled_err("reading tree att_index", e))?;
            let (h, i) = codec::decode_att(&k, unseal(ATT_INDEX, &k, &v)?)?;
            // An attestation id, or the nonce key of the attestation there.
            let ok = self
                .read_block(h)?
                .and_then(|(_, b)| b.attestations.get(i as usize).cloned())
                .is_some_and(|env| {
                    crate::attestation_id(&env)[..] == k[..]
                        || crate::envelope_nonce_key(&env).is_some_and(|n| n[..] == k[..])
                });
            if !ok {
                return Err(corrupt(
                    ATT_INDEX,
                    &k,
                    format!("points at ({h}, {i}), which holds no such attestation"),
                ));
            }
        }
        for (tree, name) in [(&self.blocks, BLOCKS), (&self.commits, COMMITS)] {
            if let Some(l) = self.last_key(tree, name)? {
                if l > head {
                    return Err(corrupt(name, &u64_key(l), format!("stored above the head ({head})")));
                }
            }
        }
        self.wal_entries_from(0)?;
        self.guard_position()?;
        Ok(head)
    }
}
