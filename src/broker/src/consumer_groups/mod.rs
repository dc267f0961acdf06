//! The broker's consumer group coordinators (issue 6): one `sluice_group::Coordinator` for each
//! `__consumer_offsets` partition this broker leads, loaded from the partition's log when
//! leadership arrives and dropped when it leaves (Kafka's `GroupMetadataManager` load and
//! unload). A group's coordinator is the leader of partition `partition_for_group(group)`.
//!
//! ```text
//! handlers (groups.rs, offsets.rs) --submit--> Slot (one per led partition, tokio mutex)
//!     ^                                          | Coordinator::step -> Respond | Persist
//!     | oneshot answer                           | Persist: append through the produce path
//!     |                                          v (single node: log + flusher; cluster: propose)
//!     +---------------- completion task <-- FIFO of appended writes: waits for the high
//!                                           watermark in the same leader epoch, then
//!                                           Input::Persisted, in write order
//! upkeep task (upkeep.rs, every GROUP_TICK_MS): leadership changes -> load / unload; Tick
//! ```
//!
//! Durability: a write is reported durable only when the partition's high watermark passed it
//! in the leader epoch it was appended in, so nothing a coordinator answers depends on a write
//! that can be lost. Completions are fed in log order (a later commit of one partition must not
//! be overtaken by an earlier one). A write that fails drops the coordinator, and the upkeep
//! loads it again from the log, as the core asks (`sluice_group::coordinator`).
//!
//! Map: `slot.rs` (one loaded partition: requests, outputs, completions), `load.rs` (reading
//! the log into a coordinator; encoding writes), `upkeep.rs` (leadership and ticks),
//! `topic.rs` (creating `__consumer_offsets`), `lag.rs` (consumer lag metrics).

mod lag;
mod load;
mod slot;
mod topic;
mod upkeep;

pub use slot::Submitted;
pub use topic::{OFFSETS_TOPIC, ensure_offsets_topic};
pub use upkeep::run as run_upkeep;

use crate::partition::Partition;
use crate::state::splitmix64;
use crate::topics::TopicRegistry;
use slot::Slot;
use sluice_group::{GroupConfig, Time};
use sluice_io::{Clock, Disk};
use sluice_types::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How often coordinators tick (session, rebalance and sync timeouts; offset retention) and
/// leadership is checked.
pub const GROUP_TICK_MS: u64 = 100;
/// Appended writes of one coordinator waiting to become durable, at most. A coordinator whose
/// queue is full fails the write (COORDINATOR_NOT_AVAILABLE) and is loaded again.
pub const WRITES_IN_FLIGHT_MAX: usize = 4096;
/// How long a write may take to become durable (Kafka's `offsets.commit.timeout.ms`).
pub const WRITE_TIMEOUT_MS: u64 = 5_000;
/// Bytes read from the log per step while loading.
pub const LOAD_READ_BYTES: u32 = 1024 * 1024;

/// One group as ListGroups shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name (`Stable`, `Empty`, ...).
    pub state: &'static str,
    /// KIP-848's group type: `classic` or `consumer`.
    pub group_type: &'static str,
}

/// Why a group request was not given to a coordinator (Kafka's codes for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotServed {
    /// This broker does not coordinate the group (NOT_COORDINATOR): the client looks it up again.
    NotCoordinator,
    /// The group's partition is being loaded (COORDINATOR_LOAD_IN_PROGRESS): retry here.
    Loading,
}

impl NotServed {
    pub fn code(self) -> i16 {
        match self {
            NotServed::NotCoordinator => sluice_protocol::error_code::NOT_COORDINATOR,
            NotServed::Loading => sluice_protocol::error_code::COORDINATOR_LOAD_IN_PROGRESS,
        }
    }
}

/// Every coordinator of this broker, by `__consumer_offsets` partition.
pub struct GroupCoordinators<D: Disk> {
    pub config: GroupConfig,
    /// `offsets.topic.num.partitions`.
    pub partitions: i32,
    slots: std::sync::Mutex<BTreeMap<i32, Arc<Slot<D>>>>,
    /// Monotonic time zero for the coordinators' clocks.
    started: tokio::time::Instant,
    /// Seeds member ids: unique per broker start (wall time) and node.
    member_id_seed: u64,
    member_ids: AtomicU64,
    incarnations: AtomicU64,
}

impl<D: Disk> GroupCoordinators<D> {
    pub fn new<C: Clock>(config: GroupConfig, partitions: i32, node_id: i32, clock: &C) -> GroupCoordinators<D> {
        assert!(partitions > 0, "offsets.topic.num.partitions must be positive");
        GroupCoordinators {
            config,
            partitions,
            slots: std::sync::Mutex::new(BTreeMap::new()),
            started: clock.now(),
            member_id_seed: (clock.wall_ms() as u64) ^ ((node_id as u64) << 48),
            member_ids: AtomicU64::new(0),
            incarnations: AtomicU64::new(0),
        }
    }

    /// The `__consumer_offsets` partition that holds `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        sluice_group::partition::partition_for_group(group_id, self.partitions)
    }

    /// The coordinators' time now.
    pub fn time<C: Clock>(&self, clock: &C) -> Time {
        let monotonic_ms = clock.now().saturating_duration_since(self.started).as_millis();
        Time { monotonic_ms: i64::try_from(monotonic_ms).expect("uptime fits i64 ms"), wall_ms: clock.wall_ms() }
    }

    /// A new member id: the client id and a UUID, as Kafka makes them (KIP-394). The UUID is
    /// derived from a per-start seed and a counter, not an unseeded random source.
    pub fn member_id_candidate(&self, client_id: &str) -> String {
        let n = self.member_ids.fetch_add(1, Ordering::Relaxed);
        let high = splitmix64(self.member_id_seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let low = splitmix64(high ^ n);
        let uuid = uuid::Uuid::from_u64_pair(high, low);
        format!("{client_id}-{}", uuid.hyphenated())
    }

    fn slot(&self, partition: i32) -> Option<Arc<Slot<D>>> {
        self.slots.lock().expect("slots lock").get(&partition).cloned()
    }

    fn slots(&self) -> Vec<Arc<Slot<D>>> {
        self.slots.lock().expect("slots lock").values().cloned().collect()
    }

    /// The slot serving `group_id`, or why there is none: loading when this broker leads the
    /// group's partition but the upkeep has not installed its slot yet (just created, or just
    /// elected), so that the client retries here rather than look the coordinator up again.
    fn slot_for(&self, group_id: &str, topics: &TopicRegistry<D>, me: NodeId) -> Result<Arc<Slot<D>>, NotServed> {
        let index = self.partition_for(group_id);
        if let Some(slot) = self.slot(index) {
            return Ok(slot);
        }
        let leads = topics.partition(OFFSETS_TOPIC, index).is_some_and(|p| p.serve_error(me, -1).is_none());
        Err(if leads { NotServed::Loading } else { NotServed::NotCoordinator })
    }

    fn install(&self, partition: Arc<Partition<D>>) -> Arc<Slot<D>> {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::new(partition, incarnation));
        let previous = self.slots.lock().expect("slots lock").insert(slot.partition.index, slot.clone());
        assert!(previous.is_none(), "a slot is installed over a live one");
        slot
    }

    fn remove(&self, partition: i32) -> Option<Arc<Slot<D>>> {
        self.slots.lock().expect("slots lock").remove(&partition)
    }
}
