//! The workload: producers and consumers speaking the real Kafka protocol through
//! `sluice_client`, recording every operation into the history the checkers read.
//!
//! Values are unique per run (`p{process}-{n}`), so the history is checkable in linear time
//! (reference/dst.md §5.3). A send that errs or times out is *indeterminate*: the record may or
//! may not be in the log. Every call has a timeout (a clogged madsim connection stalls rather
//! than fails, reference/dst.md §1.5) and a failed client is replaced, as an application would.
//!
//! Idempotent producers (KIP-98) resend a send whose fate is unknown as the same batch, with
//! the same producer id, epoch and sequence, until it is acknowledged: the broker must write it
//! once (the `NoDuplicate` check) and keep each producer's sends in order per partition. A batch
//! given up on ends with a new epoch (KIP-360), as the Java producer does.

use bytes::Bytes;
use rand::Rng;
use sluice_checker::{Op, PartitionKey, SendOutcome};
use sluice_client::{Client, Compression, FetchOptions, IdempotentProducer, ProduceOptions, ProduceRecord};
use sluice_types::{Offset, PartitionId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A send or fetch that has not answered by then is indeterminate.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a producer waits between sends.
pub const SEND_PAUSE_MS_MAX: u64 = 60;
/// How long a fetch may wait at the broker for data.
pub const FETCH_MAX_WAIT: Duration = Duration::from_millis(300);
/// The pause after a failed call before the next one.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Attempts at one idempotent batch before it is given up on (then the producer bumps its
/// epoch): with CALL_TIMEOUT, at most about two simulated minutes per batch.
pub const IDEMPOTENT_ATTEMPTS_MAX: u32 = 12;
/// Kafka errors that fence an idempotent producer: resending the batch cannot succeed, so it is
/// given up at once (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, UNKNOWN_PRODUCER_ID).
const PRODUCER_FENCED_CODES: [i16; 3] = [45, 47, 59];
/// Operations one run records at most (bounds memory; a 60 s run records far fewer).
pub const OPS_MAX: usize = 2_000_000;

/// The shared history, outside every node so it survives crashes.
#[derive(Clone)]
pub struct Recorder {
    ops: Arc<Mutex<Vec<Op>>>,
    started: Instant,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { ops: Arc::default(), started: Instant::now() }
    }

    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn record(&self, op: Op) {
        let mut ops = self.ops.lock().expect("history lock");
        assert!(ops.len() < OPS_MAX, "history over OPS_MAX");
        ops.push(op);
    }

    pub fn take(&self) -> Vec<Op> {
        std::mem::take(&mut *self.ops.lock().expect("history lock"))
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// A partition of the workload: topic name and partition count.
#[derive(Clone, Debug)]
pub struct Target {
    pub topic: String,
    pub partitions: i32,
}

/// A client of `bootstrap`, retried until one connects.
pub async fn connect(bootstrap: &str, client_id: &str) -> Client {
    loop {
        if let Ok(Ok(client)) = tokio::time::timeout(CALL_TIMEOUT, Client::connect_as(bootstrap, client_id)).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The next send's topic, partition and the pause after it, from the seeded RNG.
fn draw_send(targets: &[Target]) -> (Target, i32, u64) {
    let mut rng = madsim::rand::thread_rng();
    let target = targets[rng.gen_range(0..targets.len())].clone();
    let partition = rng.gen_range(0..target.partitions);
    (target, partition, rng.gen_range(1..=SEND_PAUSE_MS_MAX))
}

/// One producer process: acks=all sends of one record each until `stop`.
pub async fn producer(
    process: u64,
    bootstrap: String,
    targets: Vec<Target>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let client_id = format!("producer-{process}");
    let mut client = connect(&bootstrap, &client_id).await;
    let mut sequence: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let (target, partition, pause_ms) = draw_send(&targets);
        let value = format!("p{process}-{sequence}");
        sequence += 1;
        let record = ProduceRecord {
            key: Some(Bytes::from(format!("k{}", sequence % 16))),
            value: Some(Bytes::from(value.clone())),
            ..Default::default()
        };
        let options = ProduceOptions { partition: Some(PartitionId(partition)), ..Default::default() };
        let invoke_ms = recorder.now_ms();
        let answer = tokio::time::timeout(CALL_TIMEOUT, client.produce(&target.topic, vec![record], &options)).await;
        let outcome = match &answer {
            Ok(Ok(results)) => match results.first() {
                Some(result) if result.error.is_none() => match result.base_offset {
                    Some(offset) => SendOutcome::Ok { offset: offset.0 },
                    None => SendOutcome::Indeterminate,
                },
                _ => SendOutcome::Indeterminate,
            },
            _ => SendOutcome::Indeterminate,
        };
        recorder.record(Op::Send {
            process,
            partition: PartitionKey::new(target.topic.clone(), partition),
            value,
            invoke_ms,
            complete_ms: recorder.now_ms(),
            outcome,
            idempotent: false,
            op_id: None,
        });
        if !matches!(answer, Ok(Ok(_))) {
            client = connect(&bootstrap, &client_id).await;
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// What one attempt at an idempotent batch showed.
enum Attempt {
    Acked(i64),
    /// Unknown fate: resend the same batch.
    Retry,
    /// Fenced: the batch cannot be written under this identity.
    GiveUp,
}

/// One idempotent producer process: acks=all sends of one record each until `stop`, every
/// indeterminate send resent unchanged (same producer id, epoch and sequence) until acknowledged,
/// fenced, [`IDEMPOTENT_ATTEMPTS_MAX`] attempts or `stop`. One send is in flight at a time.
pub async fn idempotent_producer(
    process: u64,
    bootstrap: String,
    targets: Vec<Target>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let client_id = format!("idempotent-{process}");
    let mut client = connect(&bootstrap, &client_id).await;
    let mut producer: Option<IdempotentProducer> = None;
    // Set after a batch is given up on: the identity whose epoch must be bumped (KIP-360).
    let mut abandoned = None;
    let mut sequence: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let Some(current) = producer.as_mut() else {
            let previous = abandoned.as_ref().map(IdempotentProducer::identity);
            match tokio::time::timeout(CALL_TIMEOUT, client.init_producer_id(previous)).await {
                Ok(Ok(identity)) => {
                    producer = Some(IdempotentProducer::new(identity));
                    abandoned = None;
                }
                _ => {
                    client = connect(&bootstrap, &client_id).await;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
            continue;
        };
        let (target, partition, pause_ms) = draw_send(&targets);
        let value = format!("p{process}-{sequence}");
        sequence += 1;
        let record = ProduceRecord { value: Some(Bytes::from(value.clone())), ..Default::default() };
        let batch = current
            .batch(&target.topic, PartitionId(partition), vec![record], Compression::None)
            .expect("one small record is a valid batch");
        let invoke_ms = recorder.now_ms();
        let mut outcome = SendOutcome::Indeterminate;
        // Bounded by IDEMPOTENT_ATTEMPTS_MAX; an unfinished send at `stop` stays indeterminate.
        for attempt in 0..IDEMPOTENT_ATTEMPTS_MAX {
            if attempt > 0 && stop.load(Ordering::Relaxed) {
                break;
            }
            let answer = tokio::time::timeout(CALL_TIMEOUT, client.send_sequenced(&batch)).await;
            let verdict = match &answer {
                Ok(Ok(result)) => match (&result.error, result.base_offset) {
                    (None, Some(offset)) => Attempt::Acked(offset.0),
                    (Some(error), _) if PRODUCER_FENCED_CODES.contains(&error.code) => Attempt::GiveUp,
                    _ => Attempt::Retry,
                },
                _ => Attempt::Retry,
            };
            match verdict {
                Attempt::Acked(offset) => {
                    outcome = SendOutcome::Ok { offset };
                    break;
                }
                Attempt::GiveUp => break,
                Attempt::Retry => {
                    if !matches!(answer, Ok(Ok(_))) {
                        client = connect(&bootstrap, &client_id).await;
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        let given_up = matches!(outcome, SendOutcome::Indeterminate);
        recorder.record(Op::Send {
            process,
            partition: PartitionKey::new(target.topic.clone(), partition),
            value,
            invoke_ms,
            complete_ms: recorder.now_ms(),
            outcome,
            idempotent: true,
            op_id: None,
        });
        if given_up {
            // The partition's sequence is in doubt: continue under a bumped epoch (KIP-360).
            abandoned = producer.take();
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// One consumer process: reads its partitions from offset 0 until `stop`, then until it has
/// read each of them to the high watermark it last saw (the final catch-up).
pub async fn consumer(
    process: u64,
    bootstrap: String,
    partitions: Vec<PartitionKey>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    if partitions.is_empty() {
        return; // More consumers than partitions: nothing to read (and no loop that never waits).
    }
    let client_id = format!("consumer-{process}");
    let mut client = connect(&bootstrap, &client_id).await;
    let mut positions: Vec<(PartitionKey, i64)> = partitions.into_iter().map(|p| (p, 0)).collect();
    while !stop.load(Ordering::Relaxed) {
        for (partition, position) in positions.iter_mut() {
            if poll_partition(&mut client, process, partition, position, &recorder).await.is_err() {
                client = connect(&bootstrap, &client_id).await;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// The client failed (timeout, lost connection): the caller replaces it.
pub struct ClientFailed;

/// One Fetch of `partition` from `position`, recorded as a Poll (or, when the log start passed
/// the position, a Seek to it); `position` moves past what was read. A Kafka error pauses
/// [`RETRY_PAUSE`]; on `Err` the caller replaces the client and pauses, so that a loop of polls
/// always lets simulated time pass.
pub async fn poll_partition(
    client: &mut Client,
    process: u64,
    partition: &PartitionKey,
    position: &mut i64,
    recorder: &Recorder,
) -> Result<(), ClientFailed> {
    let options = FetchOptions { max_wait: FETCH_MAX_WAIT, ..Default::default() };
    let invoke_ms = recorder.now_ms();
    let want = [(PartitionId(partition.partition), Offset(*position))];
    let answer = tokio::time::timeout(CALL_TIMEOUT, client.fetch(&partition.topic, &want, &options)).await;
    let fetched = match answer {
        Ok(Ok(mut fetched)) if fetched.len() == 1 => fetched.remove(0),
        _ => return Err(ClientFailed),
    };
    if let Some(error) = &fetched.error {
        // Errors answer at once (a leaderless partition even without a request): pause, or a
        // loop of polls would spin without letting simulated time pass.
        tokio::time::sleep(RETRY_PAUSE).await;
        if error.code == sluice_protocol::error_code::OFFSET_OUT_OF_RANGE && fetched.log_start_offset.0 > *position {
            *position = fetched.log_start_offset.0;
            recorder.record(Op::Seek { process, partition: partition.clone(), offset: *position, at_ms: invoke_ms });
        }
        return Ok(());
    }
    let records: Vec<(i64, String)> = fetched
        .records
        .iter()
        .filter(|r| r.offset.0 >= *position)
        .map(|r| {
            let value = r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            (r.offset.0, value)
        })
        .collect();
    recorder.record(Op::Poll {
        process,
        partition: partition.clone(),
        fetch_offset: *position,
        invoke_ms,
        complete_ms: recorder.now_ms(),
        high_watermark: fetched.high_watermark.0,
        records,
        op_id: None,
    });
    *position = (*position).max(fetched.next_offset.0);
    Ok(())
}
