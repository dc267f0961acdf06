//! Every bound of the multi-raft driver, named.

/// Commands queued from handlers to the driver; senders wait beyond it.
pub const COMMANDS_QUEUED_MAX: usize = 4096;
/// Commands handled per driver turn before it looks at ticks and RPCs again.
pub const COMMANDS_PER_TURN_MAX: usize = 256;
/// Inbound RPCs handled per driver turn.
pub const RPCS_PER_TURN_MAX: usize = 64;
/// Pause before a handler asks again when there is no controller leader.
pub const CONTROLLER_RETRY_MS: u64 = 100;
/// How long a forwarded controller request may wait for the leader's answer.
pub const FORWARD_TIMEOUT_MS: i64 = 10_000;
/// Forwarded requests awaiting an answer from the controller leader.
pub const FORWARDS_PENDING_MAX: usize = 1024;
/// Controller proposals awaiting their apply.
pub const CONTROLLER_WAITERS_MAX: usize = 4096;
/// How often an unregistered (or moved) broker registers with the controller.
pub const REGISTER_RETRY_MS: i64 = 1000;
/// How often leaders check whether the preferred replica should lead again.
pub const PREFERRED_LEADER_CHECK_MS: i64 = 5000;
/// Bytes read from the controller log per apply step.
pub const APPLY_READ_BYTES: u32 = 1 << 20;
/// The longest a shutdown waits for leaderships to move away.
pub const SHUTDOWN_TRANSFER_MS: u64 = 3000;
/// Decompression bound for a controller log record (commands are at most a few MiB).
pub const COMMAND_RECORD_BYTES_MAX: u64 = 16 << 20;
/// How often group leaders step their reassignments and the controller leader its decommissions.
pub const REASSIGN_CHECK_MS: i64 = 500;
/// How long a group leader waits before reporting a completed move again (the report is not
/// answered; the applied metadata shows whether it landed).
pub const COMPLETION_RESEND_MS: i64 = 2000;
/// Partitions the controller leader starts moving off decommissioning brokers per check.
pub const DECOMMISSION_MOVES_PER_CHECK: usize = 16;
/// How often a broker tells every peer which partitions it leads, with their ISR.
pub const LEADER_REPORT_MS: i64 = 1000;
/// A leader report older than this no longer counts (its leader may be gone).
pub const LEADER_REPORT_STALE_MS: i64 = 5 * LEADER_REPORT_MS;
/// Partitions per leader report message (a broker leading more sends several).
pub const LEADER_REPORT_PARTITIONS_MAX: usize = 4096;
