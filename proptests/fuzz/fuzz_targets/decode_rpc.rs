//! Fuzz target: arbitrary bytes as a broker-to-broker RPC frame payload (`sluice_rpc::decode_rpc`).
//!
//! Why: a peer's RPC reaches the Raft core of every partition it names; decoding must reject
//! anything the core would assert on, never panic, and never allocate beyond its limits (a
//! small frame claiming huge lists). Whatever decodes must re-encode and decode to the same RPC
//! (the encoder asserts the decoder's checks, so a disagreement panics there too).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_rpc::{decode_rpc, encode_rpc};

fuzz_target!(|data: &[u8]| {
    if let Ok(rpc) = decode_rpc(data) {
        let again = encode_rpc(&rpc);
        assert_eq!(decode_rpc(&again).expect("a re-encoded RPC decodes"), rpc);
    }
});
