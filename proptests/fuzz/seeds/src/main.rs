//! Writes seed inputs for the fuzz targets into `<corpus root>/<target>/seed-<name>`:
//! - `decode_request`: valid frames (size prefix stripped) of the APIs and versions that real
//!   clients send first (ApiVersions, Metadata, Produce with a batch, Fetch, ListOffsets,
//!   CreateTopics), so libFuzzer starts inside the codecs rather than at the header check;
//!   plus regression inputs that once crashed a target;
//! - `record_batch`: one control byte, then valid batches with every codec, single and
//!   concatenated.
//!
//! Why generated: the corpus directory is gitignored and grows with what libFuzzer finds; the
//! seeds are rebuilt from the production encoders, so they follow format changes. The
//! structure-aware targets (`record_batch_mutated`, `segment_recovery`) build valid inputs
//! themselves and need no seeds.
//!
//! Usage: `sluice-fuzz-seeds <corpus root>`; existing seed files are overwritten.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::records::{BatchOptions, Record, encode_batch};
use sluice_types::Compression;

/// The size prefix of an encoded frame; `decode_request` takes the frame without it.
const SIZE_PREFIX_BYTES: usize = 4;
const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
const TOPIC: &str = "seed-topic";
/// Metadata (key 3) v0, correlation id 7, null client id, then a topics array of 2^31-1 entries
/// and nothing else.
/// Regression (segment_recovery, session 2): batches whose dense offsets run more than 2^32
/// past their segment's base offset; recovery must treat the batch as bad, not panic.
const SEGMENT_RELATIVE_OFFSET_OVERFLOW: &[u8] = b"\x7b\x0f\xff\xf6\x7b\xff\xff\xff\xff\xff\xff\xff\xff\xff\x74\x69\x60\x74\x69\x6e\x6e\x2e\x63\x68\x65\x63\x6b\x70\x6b\x70\x6f\x69\x6e\x74\x2e\x74\x6d\x70\xe7\xe7\xe7\xe7\x74\xff\xff\xff\xff\xff\xff\xff\x2e\x74\x6d\x70\xe7\xe3\xe7\xe7\xe7\xe7\x00\x02\x12\x12\x29\x7b\xff\xff\xff\xff\xff\xff";
/// Regression (segment_recovery, session 2): without a checkpoint, a batch whose epoch jumps
/// above both neighbours must end the log as a torn tail, not leave a hole above the recovery point.
const SEGMENT_EPOCH_OUTLIER_ABOVE_RECOVERY_POINT: &[u8] = b"\xff\xff\xff\x7e\x00\x00\x00\x00\x2b\xff\x55\x00\x00\x00\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\xe5\xe5\xe5\xd9\xd9\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\xe5\xe5\xe5\xd9\xd9\x00\x7b\x25\x73\xd9\x00\x7b\x25\x73\x7b\x05\x00\x00\x00\x00\x00\x00\x41\x7b\xe5\x00\xe5\xe5\xd9\xd9\x00\x7b\x25\x73\xd9\x00\x7b\x25\x73\x7b\x05\x00\x00\x00\x00\x00\x00\x00\x7b\xe5\x00\xe5\xff\xe5\xff\x01\x00\xd9\xd9\x73\x7b\x7b\xe5\x00\xe5\xff\xff\xff\x30\xff\xe5\xff\x01\x00\x00\x73\xff\xff\xff\xff\x35\xaf\x7b\x7b\xaf";
const METADATA_V0_TOPICS_I32_MAX: &[u8] = b"\x00\x03\x00\x00\x00\x00\x00\x07\xff\xff\x7f\xff\xff\xff";

/// No anyhow dependency: a boxed error is enough for a seed writer.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).ok_or("usage: sluice-fuzz-seeds <corpus root>")?);
    let mut written = 0usize;
    for (name, frame) in request_frames()? {
        write_seed(&root, "decode_request", &name, &frame)?;
        written += 1;
    }
    // Regression: kafka-protocol 0.18 sizes a Vec from this array count before decoding (a
    // ~154 GB request from 14 bytes); the broker's lazy allocator must absorb it.
    write_seed(&root, "decode_request", "regression-metadata-v0-topics-i32max", METADATA_V0_TOPICS_I32_MAX)?;
    written += 1;
    write_seed(&root, "segment_recovery", "regression-relative-offset-overflow", SEGMENT_RELATIVE_OFFSET_OVERFLOW)?;
    write_seed(&root, "segment_recovery", "regression-epoch-outlier", SEGMENT_EPOCH_OUTLIER_ABOVE_RECOVERY_POINT)?;
    written += 2;
    for (name, bytes) in batch_seeds()? {
        write_seed(&root, "record_batch", &name, &bytes)?;
        written += 1;
    }
    println!("wrote {written} seed files under {}", root.display());
    Ok(())
}

fn write_seed(root: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
    Ok(())
}

fn sample_batch(codec: Compression) -> Result<Bytes> {
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            offset_delta: i,
            timestamp_delta: i64::from(i),
            key: (i != 1).then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; 40 + i as usize])),
            headers: if i == 2 { vec![("h".to_owned(), Some(Bytes::from_static(b"x")))] } else { Vec::new() },
        })
        .collect();
    let options = BatchOptions { base_timestamp: 1_700_000_000_000, ..BatchOptions::default() };
    Ok(encode_batch(&records, codec, &options)?)
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// `(name, frame without size prefix)` for each seed request.
fn request_frames() -> Result<Vec<(String, Vec<u8>)>> {
    let batch = sample_batch(Compression::None)?;
    let produce = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(topic_name())
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch))]),
    ]);
    let fetch =
        FetchRequest::default().with_replica_id((-1).into()).with_max_wait_ms(500).with_max_bytes(1 << 20).with_topics(
            vec![FetchTopic::default().with_topic(topic_name()).with_partitions(vec![
                FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20),
            ])],
        );
    let list_offsets = ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic_name())
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)]),
    ]);
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name()))]));
    let create_topics = CreateTopicsRequest::default().with_timeout_ms(5_000).with_topics(vec![
        CreatableTopic::default().with_name(topic_name()).with_num_partitions(3).with_replication_factor(1),
    ]);
    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-fuzz"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    let requests: Vec<(ApiKey, i16, RequestKind)> = vec![
        (ApiKey::ApiVersions, 0, RequestKind::ApiVersions(ApiVersionsRequest::default())),
        (ApiKey::ApiVersions, 3, RequestKind::ApiVersions(api_versions)),
        (ApiKey::Metadata, 1, RequestKind::Metadata(metadata.clone())),
        (ApiKey::Metadata, 12, RequestKind::Metadata(metadata)),
        (ApiKey::Produce, 3, RequestKind::Produce(produce.clone())),
        (ApiKey::Produce, 9, RequestKind::Produce(produce)),
        (ApiKey::Fetch, 4, RequestKind::Fetch(fetch.clone())),
        (ApiKey::Fetch, 12, RequestKind::Fetch(fetch)),
        (ApiKey::ListOffsets, 7, RequestKind::ListOffsets(list_offsets)),
        (ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create_topics)),
    ];
    let mut frames = Vec::new();
    for (api_key, version, body) in requests {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("seed")));
        let frame = sluice_protocol::frame::encode_request(&header, &body)
            .map_err(|e| format!("{api_key:?} v{version}: {e:#}"))?;
        frames.push((format!("{api_key:?}-v{version}"), frame[SIZE_PREFIX_BYTES..].to_vec()));
    }
    Ok(frames)
}

/// `(name, control byte + batches)` for the `record_batch` target.
fn batch_seeds() -> Result<Vec<(String, Vec<u8>)>> {
    let mut seeds = Vec::new();
    for codec in CODECS {
        let batch = sample_batch(codec)?;
        let mut single = vec![0u8];
        single.extend_from_slice(&batch);
        seeds.push((format!("{}-single", codec.name()), single));
        let mut double = vec![0u8];
        double.extend_from_slice(&batch);
        double.extend_from_slice(&sample_batch(CODECS[(codec as usize + 1) % CODECS.len()])?);
        seeds.push((format!("{}-double", codec.name()), double));
    }
    Ok(seeds)
}
