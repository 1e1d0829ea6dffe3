//! A state machine for tests of the log and the network: it records the proposals it
//! applies, in order, and keeps nothing on disk. The node's own state machine applies
//! blocks to the block log.

use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError, StoredMembership,
};

use super::{ApplyOutcome, ChainTip, ReplicaId, ReplicaNode, TypeConfig};

type SResult<T> = Result<T, StorageError<ReplicaId>>;

#[derive(Default)]
pub(super) struct Applied {
    pub(super) last_applied: Option<LogId<ReplicaId>>,
    pub(super) membership: StoredMembership<ReplicaId, ReplicaNode>,
    /// Every proposal's bytes, in the order applied.
    pub(super) proposals: Vec<Vec<u8>>,
    pub(super) tip: ChainTip,
    snapshot: Option<(SnapshotMeta<ReplicaId, ReplicaNode>, ChainTip)>,
}

/// Clones share the state, so a test keeps one while openraft owns another.
#[derive(Clone, Default)]
pub(super) struct TestMachine {
    state: Arc<Mutex<Applied>>,
}

impl TestMachine {
    pub(super) fn state(&self) -> MutexGuard<'_, Applied> {
        self.state.lock().expect("not poisoned")
    }

    pub(super) fn proposals(&self) -> Vec<Vec<u8>> {
        self.state().proposals.clone()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for TestMachine {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        let mut state = self.state();
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
            snapshot_id: format!("{}-{}", state.tip.height, state.last_applied.map_or(0, |id| id.index)),
        };
        state.snapshot = Some((meta.clone(), state.tip));
        Ok(Snapshot { meta, snapshot: Box::new(state.tip) })
    }
}

impl RaftStateMachine<TypeConfig> for TestMachine {
    type SnapshotBuilder = TestMachine;

    async fn applied_state(
        &mut self,
    ) -> SResult<(Option<LogId<ReplicaId>>, StoredMembership<ReplicaId, ReplicaNode>)> {
        let state = self.state();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<ApplyOutcome>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state();
        let mut outcomes = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            outcomes.push(match entry.payload {
                EntryPayload::Blank => ApplyOutcome::NotBlock,
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    ApplyOutcome::NotBlock
                }
                EntryPayload::Normal(proposal) => {
                    let hash = machi_ledger::sha256(&proposal.block);
                    state.tip = ChainTip { height: state.tip.height + 1, hash };
                    state.proposals.push(proposal.block);
                    ApplyOutcome::Applied { height: state.tip.height, hash }
                }
            });
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> TestMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<ChainTip>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<ReplicaId, ReplicaNode>,
        snapshot: Box<ChainTip>,
    ) -> SResult<()> {
        let mut state = self.state();
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.tip = *snapshot;
        state.snapshot = Some((meta.clone(), *snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        let state = self.state();
        Ok(state.snapshot.clone().map(|(meta, tip)| Snapshot { meta, snapshot: Box::new(tip) }))
    }
}
