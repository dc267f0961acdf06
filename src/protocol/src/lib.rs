//! The Kafka wire layer, sans-IO: framing, the ApiVersions table, request/response codecs (the
//! `kafka-protocol` crate wrapped), record batch compression codecs, and the key partitioner.
//!
//! Why a crate of its own: the broker, the client, the simulator's workload and the fuzz targets
//! all speak the same protocol, and none of this needs an async runtime.

pub mod api_versions;
pub mod compression;
pub mod error_code;
pub mod frame;
pub mod partitioner;
pub mod records;
pub mod varint;
