//! Named limits on every queue, batch and loop in the broker shell (DESIGN.md, Style §4).

/// Client connections served at once; further connections are accepted and closed at once.
pub const CONNECTIONS_MAX: usize = 4096;
/// Requests one connection may have decoded but not yet answered. Kafka itself processes one
/// request per connection at a time; Sluice pipelines the waits (fsync, long-poll) up to this.
pub const IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX: usize = 32;
/// Request bytes the whole broker holds in memory at once (read but not yet answered). A
/// connection whose next frame does not fit waits before reading it, so a flood of large
/// requests slows its senders down instead of exhausting memory (Kafka:
/// `queued.max.request.bytes`). Must hold the largest allowed frame.
pub const REQUEST_BYTES_BUFFERED_MAX: u32 = 512 * 1024 * 1024;
const _: () = assert!(REQUEST_BYTES_BUFFERED_MAX >= sluice_protocol::frame::REQUEST_FRAME_BYTES_MAX);
/// Topics the broker will hold.
pub const TOPICS_MAX: usize = 100_000;
/// Partitions one topic may have (Kafka has no hard limit; this keeps one request bounded).
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// The most record bytes one Fetch response carries, whatever the client's `max_bytes` (Kafka's
/// broker config `fetch.max.bytes`, default 55 MiB, plays the same role). Below glibc's largest
/// mmap threshold (32 MiB), so response buffers are reused instead of freshly mapped and
/// faulted in: measured with bench/run's raw fetcher, one partition: 64 MiB responses 1844 MB/s,
/// 128 MiB responses 699 MB/s. KIP-74 still applies: a single larger batch is sent whole.
pub const FETCH_RESPONSE_BYTES_MAX: u32 = 30 * 1024 * 1024;
/// Longest a Fetch may wait for data (caps the client's max_wait_ms).
pub const FETCH_WAIT_MS_MAX: u64 = 60_000;
/// Longest a Produce with acks=-1 may wait (caps the client's timeout_ms).
pub const PRODUCE_TIMEOUT_MS_MAX: u64 = 300_000;
/// Partitions the flusher syncs in one round (group commit batch).
pub const FLUSH_PARTITIONS_PER_ROUND_MAX: usize = 1024;
/// Dirty-partition notifications queued for the flusher.
pub const FLUSH_QUEUE_MAX: usize = 65_536;
/// Longest a clean shutdown waits for in-flight requests to finish.
pub const SHUTDOWN_DRAIN_MS_MAX: u64 = 10_000;
/// Producer ids reserved per durable allocation (Kafka's ProducerIdsRecord block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
