//! `sluice-loadgen`: the benchmark's produce and fetch phases on librdkafka (the rdkafka crate).
//!
//! Why: with a Python client the benchmark measures Python. This binary drives the same
//! librdkafka settings as `bench/throughput.py` with no interpreter in the loop, and prints one
//! JSON object with the same keys, which `throughput.py --loadgen` reads.
//!
//! ```text
//! sluice-loadgen produce BOOTSTRAP TOPIC PARTITIONS RECORDS SECONDS
//! sluice-loadgen consume BOOTSTRAP TOPIC PARTITIONS RECORDS SECONDS
//! ```
//!
//! Bounded: each phase stops at RECORDS or after SECONDS, whichever comes first.

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Record value size: 1 KiB, as the issue's benchmark asks.
const RECORD_BYTES: usize = 1024;
/// librdkafka producer settings shared with bench/throughput.py.
const LINGER_MS: &str = "5";
const BATCH_BYTES: &str = "1048576";
const QUEUE_MESSAGES_MAX: &str = "20000";
const STATS_INTERVAL_MS: &str = "500";
/// Time allowed after the deadline for outstanding acknowledgements.
const FLUSH_SECONDS: u64 = 30;
const MB: f64 = 1e6;

/// Collects acknowledgement latencies and the last statistics report.
struct Measure {
    latencies_s: Mutex<Vec<f64>>,
    errors: Mutex<u64>,
    batch_bytes_avg: Mutex<Option<i64>>,
    batch_records_avg: Mutex<Option<i64>>,
    topic: String,
}

impl ClientContext for Measure {
    fn stats(&self, statistics: Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            *self.batch_bytes_avg.lock().expect("lock") = Some(topic.batchsize.avg);
            *self.batch_records_avg.lock().expect("lock") = Some(topic.batchcnt.avg);
        }
    }
}

impl ProducerContext for Measure {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.latencies_s.lock().expect("lock").push(sent_at.elapsed().as_secs_f64()),
            Err(_) => *self.errors.lock().expect("lock") += 1,
        }
    }
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

fn produce(bootstrap: &str, topic: &str, partitions: i32, records: u64, seconds: f64) -> serde_json::Value {
    let context = Measure {
        latencies_s: Mutex::new(Vec::with_capacity(records as usize)),
        errors: Mutex::new(0),
        batch_bytes_avg: Mutex::new(None),
        batch_records_avg: Mutex::new(None),
        topic: topic.to_string(),
    };
    let producer: BaseProducer<Measure> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", LINGER_MS)
        .set("batch.size", BATCH_BYTES)
        .set("batch.num.messages", "1000000")
        .set("queue.buffering.max.messages", QUEUE_MESSAGES_MAX)
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .set("statistics.interval.ms", STATS_INTERVAL_MS)
        .create_with_context(context)
        .expect("create producer");
    let value: Vec<u8> = (0..RECORD_BYTES).map(|i| (i * 7919 % 251) as u8).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut produced = 0u64;
    while produced < records && Instant::now() < deadline {
        let partition = (produced % partitions as u64) as i32;
        let record = BaseRecord::with_opaque_to(topic, Box::new(Instant::now())).payload(&value[..]).partition(partition);
        match producer.send::<(), [u8]>(record) {
            Ok(()) => produced += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(1));
            }
            Err((error, _)) => panic!("produce failed: {error}"),
        }
        if produced % 1000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    let flush_budget = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(FLUSH_SECONDS);
    let unflushed = producer.flush(flush_budget).map_or(producer.in_flight_count(), |()| 0);
    let elapsed = started.elapsed().as_secs_f64();
    producer.poll(Duration::from_millis(750)); // One more statistics report.
    let context = producer.context();
    let mut latencies = context.latencies_s.lock().expect("lock").clone();
    latencies.sort_by(f64::total_cmp);
    let acked = latencies.len() as u64;
    let bytes = acked * RECORD_BYTES as u64;
    serde_json::json!({
        "produced": produced, "acked": acked, "errors": *context.errors.lock().expect("lock"), "unflushed": unflushed,
        "seconds": elapsed, "bytes": bytes, "mb_s": bytes as f64 / MB / elapsed, "records_s": acked as f64 / elapsed,
        "p50_ms": percentile(&latencies, 0.50) * 1e3, "p99_ms": percentile(&latencies, 0.99) * 1e3,
        "max_ms": latencies.last().map_or(f64::NAN, |l| l * 1e3),
        "client_batch_bytes_avg": *context.batch_bytes_avg.lock().expect("lock"),
        "client_batch_records_avg": *context.batch_records_avg.lock().expect("lock"),
    })
}

fn consume(bootstrap: &str, topic: &str, partitions: i32, records: u64, seconds: f64) -> serde_json::Value {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("loadgen-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("fetch.wait.max.ms", "100")
        .set("queued.max.messages.kbytes", "262144")
        .create()
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let (mut received, mut value_bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut first_at = None;
    while received < records && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                received += 1;
                value_bytes += message.payload_len() as u64;
                first_at.get_or_insert_with(Instant::now);
            }
            Some(Err(_)) => errors += 1,
            None => {}
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    serde_json::json!({
        "received": received, "errors": errors, "seconds": elapsed, "bytes": value_bytes,
        "mb_s": value_bytes as f64 / MB / elapsed, "records_s": received as f64 / elapsed,
        "first_batch_ms": first_at.map_or(f64::NAN, |at| (at - started).as_secs_f64() * 1e3),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: sluice-loadgen produce|consume BOOTSTRAP TOPIC PARTITIONS RECORDS SECONDS";
    assert!(args.len() == 7, "{usage}");
    let partitions: i32 = args[4].parse().expect("PARTITIONS");
    let records: u64 = args[5].parse().expect("RECORDS");
    let seconds: f64 = args[6].parse().expect("SECONDS");
    let result = match args[1].as_str() {
        "produce" => produce(&args[2], &args[3], partitions, records, seconds),
        "consume" => consume(&args[2], &args[3], partitions, records, seconds),
        _ => panic!("{usage}"),
    };
    println!("{result}");
}
