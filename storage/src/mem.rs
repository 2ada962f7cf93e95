//! In-memory [`Store`]: same rules as [`SledStore`](crate::SledStore), no
//! durability. For simulation and benches.

use crate::{
    check_guard, collect_range, decide_put, decide_update, prepare_finalized, PutAction, SignPosition, Store,
    StoreError, WalEntry,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Inner {
    /// height -> (hash, block)
    blocks: BTreeMap<u64, ([u8; 32], bizra_proto::Block)>,
    commits: BTreeMap<u64, bizra_proto::CommitCertificate>,
    hash_index: HashMap<[u8; 32], u64>,
    att_index: HashMap<[u8; 32], (u64, u32)>,
    head: Option<(u64, [u8; 32])>,
    state: Option<Vec<u8>>,
    wal: VecDeque<WalEntry>,
    guard: Option<SignPosition>,
    epochs: BTreeMap<u64, Vec<u8>>,
}

/// An in-memory implementation of [`Store`] with the same semantics as
/// [`SledStore`](crate::SledStore) (minus durability: `flush` is a no-op).
#[derive(Default)]
pub struct MemStore {
    chain_id: Option<String>,
    inner: Mutex<Inner>,
}

impl MemStore {
    /// An empty store that accepts blocks of any chain id.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that, like a [`SledStore`](crate::SledStore) opened
    /// with `identity`, rejects blocks whose header names another chain.
    pub fn with_identity(identity: &crate::DataDirIdentity) -> Self {
        Self {
            chain_id: Some(identity.chain_id.clone()),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below is computed before it is applied, so a panic
        // while holding the lock cannot leave a half-applied update.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemStore {
    fn put_epoch_weights(&self, epoch: u64, weights: &[u8]) -> Result<(), StoreError> {
        self.lock().epochs.insert(epoch, weights.to_vec());
        Ok(())
    }

    fn epoch_weights(&self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().epochs.get(&epoch).cloned())
    }

    fn put_finalized(
        &self,
        block: &bizra_proto::Block,
        commit: &bizra_proto::CommitCertificate,
        state: &[u8],
    ) -> Result<(), StoreError> {
        let p = prepare_finalized(block, commit, self.chain_id.as_deref())?;
        let parent = &block.header.as_ref().expect("checked by prepare").parent_hash;
        let mut g = self.lock();
        let existing = g.blocks.get(&p.height).map(|(h, _)| *h);
        match decide_put(g.head, p.height, &p.hash, parent, existing)? {
            PutAction::AlreadyFinalized => return Ok(()),
            PutAction::Append => {}
        }
        if let Some(&other) = g.hash_index.get(&p.hash) {
            return Err(StoreError::Corrupt(format!(
                "hash_index/{}: already points at height {other}",
                hex::encode(p.hash)
            )));
        }
        g.blocks.insert(p.height, (p.hash, block.clone()));
        g.commits.insert(p.height, commit.clone());
        g.hash_index.insert(p.hash, p.height);
        for (id, index) in p.attestations {
            g.att_index.entry(id).or_insert((p.height, index));
        }
        g.head = Some((p.height, p.hash));
        g.state = Some(state.to_vec());
        Ok(())
    }

    fn put_finalized_range(
        &self,
        blocks: &[(&bizra_proto::Block, &bizra_proto::CommitCertificate)],
        state: &[u8],
    ) -> Result<(), StoreError> {
        let mut prepared = Vec::with_capacity(blocks.len());
        for (block, commit) in blocks {
            prepared.push(prepare_finalized(block, commit, self.chain_id.as_deref())?);
        }
        let mut g = self.lock();
        // Check the whole range first: all or nothing.
        let mut head = g.head;
        let mut append = Vec::new();
        let mut hashes = std::collections::HashSet::new();
        for (i, (p, (block, _))) in prepared.iter().zip(blocks).enumerate() {
            let parent = &block.header.as_ref().expect("checked by prepare").parent_hash;
            let existing = g.blocks.get(&p.height).map(|(h, _)| *h);
            match decide_put(head, p.height, &p.hash, parent, existing)? {
                PutAction::AlreadyFinalized => continue,
                PutAction::Append => {}
            }
            if let Some(&other) = g.hash_index.get(&p.hash) {
                return Err(StoreError::Corrupt(format!(
                    "hash_index/{}: already points at height {other}",
                    hex::encode(p.hash)
                )));
            }
            if !hashes.insert(p.hash) {
                return Err(StoreError::Conflict(format!(
                    "block {} appears twice",
                    hex::encode(p.hash)
                )));
            }
            head = Some((p.height, p.hash));
            append.push(i);
        }
        if append.is_empty() {
            return Ok(());
        }
        for &i in &append {
            let (p, (block, commit)) = (&prepared[i], &blocks[i]);
            g.blocks.insert(p.height, (p.hash, (*block).clone()));
            g.commits.insert(p.height, (*commit).clone());
            g.hash_index.insert(p.hash, p.height);
            for &(id, index) in &p.attestations {
                g.att_index.entry(id).or_insert((p.height, index));
            }
        }
        g.head = head;
        g.state = Some(state.to_vec());
        Ok(())
    }

    fn update_commit(&self, commit: &bizra_proto::CommitCertificate) -> Result<(), StoreError> {
        let mut g = self.lock();
        let stored_hash = g.blocks.get(&commit.height).map(|(h, _)| *h);
        if decide_update(commit, stored_hash, g.commits.get(&commit.height))? {
            g.commits.insert(commit.height, commit.clone());
        }
        Ok(())
    }

    fn head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        Ok(self.lock().head)
    }

    fn block(&self, height: u64) -> Result<Option<bizra_proto::Block>, StoreError> {
        Ok(self.lock().blocks.get(&height).map(|(_, b)| b.clone()))
    }

    fn block_hash(&self, height: u64) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self.lock().blocks.get(&height).map(|(h, _)| *h))
    }

    fn height_of(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().hash_index.get(hash).copied())
    }

    fn commit(&self, height: u64) -> Result<Option<bizra_proto::CommitCertificate>, StoreError> {
        Ok(self.lock().commits.get(&height).cloned())
    }

    fn blocks_range(
        &self,
        from: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<(bizra_proto::Block, bizra_proto::CommitCertificate)>, StoreError> {
        let g = self.lock();
        collect_range(from, max, max_bytes, |h| {
            let Some((_, block)) = g.blocks.get(&h) else {
                return Ok(None);
            };
            let commit = g
                .commits
                .get(&h)
                .ok_or_else(|| StoreError::Corrupt(format!("commits/{h:08}: missing for a finalized block")))?;
            Ok(Some((block.clone(), commit.clone())))
        })
    }

    fn chain_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().state.clone())
    }

    fn attestation_location(&self, id: &[u8; 32]) -> Result<Option<(u64, u32)>, StoreError> {
        Ok(self.lock().att_index.get(id).copied())
    }

    fn wal_append(&self, entry: &WalEntry, _sync: bool) -> Result<(), StoreError> {
        self.lock().wal.push_back(entry.clone());
        Ok(())
    }

    fn wal_entries_from(&self, height: u64) -> Result<Vec<WalEntry>, StoreError> {
        Ok(self.lock().wal.iter().filter(|e| e.height >= height).cloned().collect())
    }

    fn wal_prune_below(&self, height: u64) -> Result<(), StoreError> {
        self.lock().wal.retain(|e| e.height >= height);
        Ok(())
    }

    fn guard_advance(&self, pos: SignPosition) -> Result<(), StoreError> {
        let mut g = self.lock();
        check_guard(g.guard, pos)?;
        g.guard = Some(pos);
        Ok(())
    }

    fn guard_position(&self) -> Result<Option<SignPosition>, StoreError> {
        Ok(self.lock().guard)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
