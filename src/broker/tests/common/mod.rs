//! Shared harness for the broker's black-box tests: start a real broker in-process on free
//! ports and a temporary data dir, and talk to it over raw TCP with the Kafka wire protocol.
//!
//! Why raw TCP and blocking sockets: these tests check the bytes a client sees, including
//! malformed frames, missing responses and closed connections, which a real client library
//! would hide. Every read has a deadline ([`REQUEST_TIMEOUT`]), so a response the broker fails
//! to send (for example because it could not encode it) fails the test fast instead of hanging.
//!
//! The broker runs on its own multi-threaded tokio runtime in a background thread; dropping the
//! [`TestBroker`] shuts it down through the watch channel, as `sluice serve` does on a signal.

#![allow(dead_code)] // Each test binary uses a different part of this module.

/// As in the `sluice` binary: hostile array counts must not abort the process.
#[global_allocator]
static ALLOCATOR: sluice_broker::allocator::LazyHugeAllocator = sluice_broker::allocator::LazyHugeAllocator;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse,
    ProduceRequest, RequestHeader, RequestKind, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Request, StrBytes};
use sluice_broker::BrokerConfig;
use sluice_protocol::frame::{decode_response, encode_request};
use sluice_protocol::records::{BatchOptions, Record, decode_batches, encode_batch};
use sluice_types::{Compression, ProducerEpoch, ProducerId, Sequence};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest any single request may take to be answered. Local requests take milliseconds;
/// a response that does not come within this is a response the broker never sent.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a broker may take to start (recover its data dir and bind its listeners).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a clean shutdown may take (the broker drains for at most 10 s itself).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Versions the helpers use: the newest this broker supports for each API.
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
pub const METADATA_VERSION: i16 = 12;
pub const LIST_OFFSETS_VERSION: i16 = 7;
pub const CREATE_TOPICS_VERSION: i16 = 7;
/// ListOffsets special timestamps (Kafka protocol: ListOffsetsRequest, KIP-734).
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
pub const MAX_TIMESTAMP: i64 = -3;
/// Kafka `ConfigResource.Type` and `ConfigSource` values (DescribeConfigs).
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const SOURCE_TOPIC_CONFIG: i8 = 1;
pub const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
pub const SOURCE_DEFAULT_CONFIG: i8 = 5;
/// A topic name no test ever creates.
pub const MISSING_TOPIC: &str = "no-such-topic";

/// A port nobody listens on right now (bind to port 0, note the port, release it).
pub fn free_port_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address")
}

/// A broker running in this process.
pub struct TestBroker {
    pub config: BrokerConfig,
    data_dir: tempfile::TempDir,
    running: Option<Running>,
}

struct Running {
    shutdown: tokio::sync::watch::Sender<bool>,
    outcome: mpsc::Receiver<anyhow::Result<()>>,
    thread: JoinHandle<()>,
}

impl TestBroker {
    /// Starts a broker with `dev_defaults`, a fresh data dir and free ports, after `configure`.
    pub fn start(configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        // `SLUICE_TEST_LOG=sluice_broker=info` shows the brokers' logs (with `--nocapture`).
        if let Ok(filter) = std::env::var("SLUICE_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let data_dir = tempfile::tempdir().expect("temporary data dir");
        let mut config = BrokerConfig::dev_defaults();
        config.data_dir = data_dir.path().to_path_buf();
        config.kafka_addr = free_port_addr();
        config.admin_addr = free_port_addr();
        configure(&mut config);
        let mut broker = TestBroker { config, data_dir, running: None };
        broker.launch();
        broker
    }

    pub fn addr(&self) -> SocketAddr {
        self.config.kafka_addr
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// A new connection to the broker.
    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    fn launch(&mut self) {
        assert!(self.running.is_none(), "broker already running");
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let (outcome_tx, outcome) = mpsc::channel();
        let config = self.config.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
            let result = runtime.block_on(sluice_broker::run(
                config,
                sluice_io::StdDisk,
                sluice_io::SystemClock,
                Some(metrics),
                shutdown_rx,
            ));
            let _ = outcome_tx.send(result);
        });
        self.running = Some(Running { shutdown, outcome, thread });
        self.wait_until_listening();
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(running) = &self.running
                && let Ok(result) = running.outcome.try_recv()
            {
                panic!("broker exited during start-up: {result:?}");
            }
            assert!(Instant::now() < deadline, "broker did not listen on {} within {START_TIMEOUT:?}", self.addr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Clean shutdown through the watch channel; panics if the broker fails to stop in time or
    /// returns an error.
    pub fn stop(&mut self) {
        let running = self.running.take().expect("broker is running");
        let _ = running.shutdown.send(true);
        let result = running
            .outcome
            .recv_timeout(STOP_TIMEOUT)
            .unwrap_or_else(|_| panic!("broker did not shut down within {STOP_TIMEOUT:?}"));
        running.thread.join().expect("broker thread panicked");
        result.expect("broker returned an error on shutdown");
    }

    /// Starts the broker again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.launch();
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(true);
            // Bounded: never hang a test run on a broker that does not stop.
            let _ = running.outcome.recv_timeout(STOP_TIMEOUT);
        }
    }
}

/// A raw Kafka-protocol connection with blocking I/O and a deadline on every read.
pub struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).expect("connect to the broker");
        stream.set_read_timeout(Some(REQUEST_TIMEOUT)).expect("read timeout");
        stream.set_write_timeout(Some(REQUEST_TIMEOUT)).expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client { stream, next_correlation_id: 1 }
    }

    /// A request header with a fresh correlation id.
    pub fn header(&mut self, api_key: ApiKey, version: i16) -> RequestHeader {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-broker-tests")))
    }

    /// Sends a request; returns its correlation id.
    pub fn send<R: Request + Into<RequestKind>>(&mut self, version: i16, body: R) -> i32 {
        let api_key = ApiKey::try_from(R::KEY).expect("known api key");
        let header = self.header(api_key, version);
        let frame = encode_request(&header, &body.into())
            .unwrap_or_else(|e| panic!("test bug: cannot encode {api_key:?} v{version} request: {e:#}"));
        self.write_raw(&frame);
        header.correlation_id
    }

    /// Reads the response to the request with `correlation_id` and decodes it strictly at
    /// `version`: header, body, and no trailing bytes.
    pub fn receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let api_key = ApiKey::try_from(R::KEY).expect("known api key");
        let frame = self
            .read_frame(REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: no response within {REQUEST_TIMEOUT:?}: {e}"));
        decode_strict::<R::Response>(frame, api_key, version, correlation_id)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"))
    }

    /// One request, one response.
    pub fn call<R: Request + Into<RequestKind>>(&mut self, version: i16, body: R) -> R::Response {
        let correlation_id = self.send(version, body);
        self.receive::<R>(version, correlation_id)
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the broker");
        self.stream.flush().expect("flush to the broker");
    }

    /// Stops sending (half-close); the broker still can answer or close its side.
    pub fn shutdown_write(&mut self) {
        self.stream.shutdown(Shutdown::Write).expect("shutdown write");
    }

    /// Reads one size-prefixed frame (without its prefix) within `timeout`.
    pub fn read_frame(&mut self, timeout: Duration) -> std::io::Result<Bytes> {
        self.stream.set_read_timeout(Some(timeout))?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = u32::from_be_bytes(size);
        assert!(size <= 64 * 1024 * 1024, "response frame of {size} bytes");
        let mut frame = vec![0u8; size as usize];
        self.stream.read_exact(&mut frame)?;
        self.stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        Ok(Bytes::from(frame))
    }

    /// Asserts that the broker closes this connection without sending anything.
    pub fn expect_closed(&mut self, what: &str) {
        self.stream.set_read_timeout(Some(REQUEST_TIMEOUT)).expect("read timeout");
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("{what}: expected the connection closed, got {n} bytes: {:?}", &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: connection still open after {REQUEST_TIMEOUT:?}")
            }
            Err(e) => panic!("{what}: unexpected read error {e}"),
        }
    }

    // Helpers at the newest versions, for set-up and checks.

    pub fn metadata(&mut self, topics: &[&str]) -> MetadataResponse {
        let topics = topics.iter().map(|t| MetadataRequestTopic::default().with_name(Some(topic(t)))).collect();
        self.call(
            METADATA_VERSION,
            MetadataRequest::default().with_topics(Some(topics)).with_allow_auto_topic_creation(false),
        )
    }

    pub fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopicResult {
        let topic = CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| CreatableTopicConfig::default().with_name(string(k)).with_value(Some(string(v))))
                    .collect(),
            );
        let response = self
            .call(CREATE_TOPICS_VERSION, CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(5000));
        assert_eq!(response.topics.len(), 1);
        response.topics.into_iter().next().expect("one result")
    }

    /// Creates a topic and asserts it worked.
    pub fn create_topic_ok(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) -> uuid::Uuid {
        let result = self.create_topic(name, partitions, configs);
        assert_eq!(result.error_code, 0, "create {name}: {:?}", result.error_message);
        result.topic_id
    }

    pub fn produce_request(topic_name: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
        ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![
            TopicProduceData::default().with_name(topic(topic_name)).with_partition_data(vec![
                PartitionProduceData::default().with_index(partition).with_records(Some(records)),
            ]),
        ])
    }

    /// Produces one partition's records and returns that partition's answer.
    pub fn produce(&mut self, topic_name: &str, partition: i32, records: Bytes, acks: i16) -> PartitionProduceResponse {
        let response = self.call(PRODUCE_VERSION, Self::produce_request(topic_name, partition, records, acks));
        assert_eq!(response.responses.len(), 1, "one topic answered");
        let topic_response = response.responses.into_iter().next().expect("one topic");
        assert_eq!(topic_response.name.0.as_str(), topic_name);
        assert_eq!(topic_response.partition_responses.len(), 1, "one partition answered");
        topic_response.partition_responses.into_iter().next().expect("one partition")
    }

    /// Produces and asserts success; returns the base offset.
    pub fn produce_ok(&mut self, topic_name: &str, partition: i32, values: &[&str]) -> i64 {
        let answer = self.produce(topic_name, partition, batch(values), -1);
        assert_eq!(answer.error_code, 0, "produce to {topic_name}/{partition}: {:?}", answer.error_message);
        assert!(answer.base_offset >= 0);
        answer.base_offset
    }

    pub fn fetch_request(topic_name: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(16 * 1024 * 1024)
            .with_topics(vec![FetchTopic::default().with_topic(topic(topic_name)).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(4 * 1024 * 1024),
            ])])
    }

    /// Fetches one partition from `offset` without waiting; returns that partition's answer.
    pub fn fetch(&mut self, topic_name: &str, partition: i32, offset: i64) -> PartitionData {
        let response = self.call(FETCH_VERSION, Self::fetch_request(topic_name, partition, offset, 0));
        assert_eq!(response.error_code, 0);
        single_fetch_partition(response.responses)
    }

    /// Every record of a partition from `offset` to the high watermark: (offset, value).
    pub fn read_all(&mut self, topic_name: &str, partition: i32, offset: i64) -> Vec<(i64, String)> {
        let mut next = offset;
        let mut out = Vec::new();
        // Bounded: each round returns at least one batch or ends the loop.
        for _ in 0..1000 {
            let data = self.fetch(topic_name, partition, next);
            assert_eq!(data.error_code, 0, "fetch {topic_name}/{partition} at {next}");
            let records: Vec<_> = values(&data.records).into_iter().filter(|(o, _)| *o >= next).collect();
            let Some(after) = next_offset_after(&data.records).filter(|after| *after > next) else {
                assert!(next >= data.high_watermark, "no records below the high watermark {}", data.high_watermark);
                return out;
            };
            next = after;
            out.extend(records);
        }
        panic!("read_all did not reach the end of {topic_name}/{partition}");
    }

    pub fn list_offset(&mut self, topic_name: &str, partition: i32, timestamp: i64) -> ListOffsetsPartitionResponse {
        let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default().with_name(topic(topic_name)).with_partitions(vec![
                ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp),
            ]),
        ]);
        let response = self.call(LIST_OFFSETS_VERSION, request);
        assert_eq!(response.topics.len(), 1);
        let topic_response = response.topics.into_iter().next().expect("one topic");
        assert_eq!(topic_response.partitions.len(), 1);
        topic_response.partitions.into_iter().next().expect("one partition")
    }

    /// The log end offset as a consumer sees it (ListOffsets LATEST = high watermark).
    pub fn latest_offset(&mut self, topic_name: &str, partition: i32) -> i64 {
        let answer = self.list_offset(topic_name, partition, LATEST_TIMESTAMP);
        assert_eq!(answer.error_code, 0, "ListOffsets latest {topic_name}/{partition}");
        answer.offset
    }
}

/// The only partition of a one-topic, one-partition Fetch response.
pub fn single_fetch_partition(
    topics: Vec<kafka_protocol::messages::fetch_response::FetchableTopicResponse>,
) -> PartitionData {
    assert_eq!(topics.len(), 1, "one topic answered");
    let topic_response = topics.into_iter().next().expect("one topic");
    assert_eq!(topic_response.partitions.len(), 1, "one partition answered");
    topic_response.partitions.into_iter().next().expect("one partition")
}

/// Decodes a response frame exactly: the header at the API's response header version (v0 for
/// ApiVersions, KIP-511), the expected correlation id, the body at `version`, nothing after it.
/// Also cross-checks that `sluice_protocol::frame::decode_response` accepts the frame.
pub fn decode_strict<T: Decodable + HeaderVersion>(
    frame: Bytes,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<T, String> {
    decode_response(frame.clone(), api_key, version).map_err(|e| format!("decode_response failed: {e:#}"))?;
    let mut buf = frame;
    let header = ResponseHeader::decode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| format!("response header: {e:#}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!("correlation id {} where {correlation_id} was expected", header.correlation_id));
    }
    let body = T::decode(&mut buf, version).map_err(|e| format!("response body: {e:#}"))?;
    if buf.has_remaining() {
        return Err(format!("{} bytes after the response body", buf.remaining()));
    }
    Ok(body)
}

pub fn topic(name: &str) -> TopicName {
    TopicName(string(name))
}

pub fn string(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

/// Records with the given values, no keys, timestamps `base_timestamp + 10 * i`.
pub fn records(values: &[&str]) -> Vec<Record> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            offset_delta: i as i32,
            timestamp_delta: 10 * i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Vec::new(),
        })
        .collect()
}

/// A valid, uncompressed producer batch stamped now.
pub fn batch(values: &[&str]) -> Bytes {
    batch_at(values, now_ms())
}

/// A valid, uncompressed producer batch whose i-th record has timestamp `base_timestamp + 10 i`.
pub fn batch_at(values: &[&str], base_timestamp: i64) -> Bytes {
    let options = BatchOptions { base_timestamp, ..BatchOptions::default() };
    encode_batch(&records(values), Compression::None, &options).expect("encode batch")
}

/// An idempotent producer's batch (KIP-98): producer id, epoch and first sequence.
pub fn idempotent_batch(values: &[&str], producer_id: i64, epoch: i16, base_sequence: i32) -> Bytes {
    let options = BatchOptions {
        base_timestamp: now_ms(),
        producer_id: ProducerId(producer_id),
        producer_epoch: ProducerEpoch(epoch),
        base_sequence: Sequence(base_sequence),
        ..BatchOptions::default()
    };
    encode_batch(&records(values), Compression::None, &options).expect("encode batch")
}

/// The offset after the last batch of a Fetch response's records (control batches included).
pub fn next_offset_after(records: &Option<Bytes>) -> Option<i64> {
    let records = records.as_ref()?;
    let batches = decode_batches(records, 64 * 1024 * 1024).expect("fetched records decode");
    batches.last().map(|(header, _)| header.next_offset().0)
}

/// (offset, value) of every data record in a Fetch response's records. Control batches (a
/// Raft leader's LEADER_CHANGE marker in cluster mode) are skipped, as consumers skip them.
pub fn values(records: &Option<Bytes>) -> Vec<(i64, String)> {
    let Some(records) = records else { return Vec::new() };
    let batches = decode_batches(records, 64 * 1024 * 1024).expect("fetched records decode");
    batches
        .iter()
        .filter(|(header, _)| !header.is_control())
        .flat_map(|(header, records)| {
            records.iter().map(move |r| {
                let value = r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                (r.offset(header).0, value)
            })
        })
        .collect()
}

/// (offset, timestamp) of every record in a Fetch response's records.
pub fn timestamps(records: &Option<Bytes>) -> Vec<(i64, i64)> {
    let Some(records) = records else { return Vec::new() };
    let batches = decode_batches(records, 64 * 1024 * 1024).expect("fetched records decode");
    batches
        .iter()
        .flat_map(|(header, records)| records.iter().map(move |r| (r.offset(header).0, r.timestamp(header))))
        .collect()
}

/// A raw request frame: size prefix, header v1 or v2 as `flexible` says, then `body` as is.
/// For frames `encode_request` cannot or should not build (unknown keys, versions, garbage).
pub fn raw_frame(api_key: i16, version: i16, correlation_id: i32, flexible: bool, body: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_u32(0);
    frame.put_i16(api_key);
    frame.put_i16(version);
    frame.put_i32(correlation_id);
    let client_id = b"sluice-broker-tests";
    frame.put_i16(client_id.len() as i16);
    frame.put_slice(client_id);
    if flexible {
        frame.put_u8(0); // no tagged fields
    }
    frame.put_slice(body);
    let size = (frame.len() - 4) as u32;
    frame[0..4].copy_from_slice(&size.to_be_bytes());
    frame.freeze()
}

/// Deterministic pseudo-random bytes (splitmix64), so a failing case replays exactly.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}
