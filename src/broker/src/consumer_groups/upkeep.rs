//! The coordinators' upkeep, every `GROUP_TICK_MS`: follow leadership of the
//! `__consumer_offsets` partitions (load a coordinator for each partition this broker has come
//! to lead, drop the ones it no longer leads or whose write failed), and tick the loaded ones
//! so session, rebalance and sync timeouts and offset retention fire; every `LAG_INTERVAL_MS`,
//! publish consumer lag.

use super::load::load;
use super::slot::{Slot, SlotState};
use super::{GROUP_TICK_MS, OFFSETS_TOPIC};
use crate::state::BrokerState;
use sluice_group::Input;
use sluice_io::{Clock, Disk};
use sluice_types::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run<D: Disk, C: Clock>(state: Arc<BrokerState<D, C>>, mut shutdown: watch::Receiver<bool>) {
    let mut since_lag_ms = 0;
    loop {
        tokio::select! {
            _ = state.clock.sleep(Duration::from_millis(GROUP_TICK_MS)) => {}
            _ = shutdown.changed() => break,
        }
        pass(&state).await;
        since_lag_ms += GROUP_TICK_MS;
        if since_lag_ms >= super::lag::LAG_INTERVAL_MS {
            since_lag_ms = 0;
            super::lag::publish(&state).await;
        }
    }
    // Shutting down: every waiting request is answered NOT_COORDINATOR.
    for slot in state.groups.slots() {
        state.groups.remove(slot.partition.index);
        *slot.state.lock().await = SlotState::Unloaded;
    }
}

async fn pass<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>) {
    let me = NodeId(state.config.node_id);
    let topic = state.topics.get(OFFSETS_TOPIC);
    // Slots of partitions that no longer exist (the topic was deleted or recreated) go.
    for slot in state.groups.slots() {
        let current = topic.as_ref().and_then(|t| t.partitions.get(slot.partition.index as usize));
        if !current.is_some_and(|p| Arc::ptr_eq(p, &slot.partition)) {
            unload(state, &slot).await;
        }
    }
    let Some(topic) = topic else { return };
    for partition in &topic.partitions {
        if let Some(slot) = state.groups.slot(partition.index) {
            let mut guard = slot.state.lock().await;
            let unloaded = matches!(*guard, SlotState::Unloaded);
            if slot.leads(me) && !unloaded {
                tick(state, &slot, &mut guard).await;
                continue;
            }
            drop(guard);
            unload(state, &slot).await;
        }
        if partition.serve_error(me, -1).is_none() {
            let slot = state.groups.install(partition.clone());
            tracing::debug!(partition = partition.index, epoch = %slot.leader_epoch, incarnation = slot.incarnation, "loading group coordinator");
            tokio::spawn(load(state.clone(), slot));
        }
    }
}

async fn tick<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, slot: &Arc<Slot<D>>, guard: &mut SlotState) {
    let SlotState::Loaded(shell) = guard else { return };
    let outputs = shell.coordinator.step(Input::Tick, state.groups.time(&state.clock));
    if shell.run(state, slot, outputs).await {
        *guard = SlotState::Unloaded;
    }
}

/// Drops a slot: its waiting requests are answered NOT_COORDINATOR.
async fn unload<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, slot: &Arc<Slot<D>>) {
    if state.groups.slot(slot.partition.index).is_some_and(|s| Arc::ptr_eq(&s, slot)) {
        state.groups.remove(slot.partition.index);
    }
    tracing::debug!(partition = slot.partition.index, incarnation = slot.incarnation, "group coordinator unloaded");
    *slot.state.lock().await = SlotState::Unloaded;
}
