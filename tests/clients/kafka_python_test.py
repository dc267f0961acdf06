#!/usr/bin/env python3
"""kafka-python (pure Python) against a Kafka-protocol broker.

Usage: kafka_python_test.py BOOTSTRAP            e.g. 127.0.0.1:9092

Scenario and checks: see common.py. Client specifics:
  * kafka-python implements the codecs through optional packages: gzip is built in, snappy
    needs python-snappy (which uses cramjam), lz4 needs lz4, zstd needs zstandard. They are
    pinned in requirements.txt; a missing one is a setup failure here, not a skip.
  * Its DefaultPartitioner is Java's (murmur2 of the key bytes), so the mapping is checked.
  * It picks request versions by *inferring a broker release* from the ApiVersions maxima
    (kafka/protocol/broker_version_data.py), and gates features on that guess: idempotence
    needs >= 0.11, zstd needs >= 2.1. The inferred version is printed so a wrong guess shows.
  * enable_idempotence defaults to True in kafka-python 3.x: InitProducerId is exercised.
  * KafkaConsumer with group_id=None and assign(): no coordinator is ever contacted.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import kafka  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka import codec as kcodec  # noqa: E402

CODECS = common.CODECS_ALL
DEADLINE_S = 60
# kafka-python's names for the codecs (None = uncompressed).
CODEC_ARG = {"none": None, "gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}
CODEC_AVAILABLE = {
    "none": True,
    "gzip": kcodec.has_gzip(),
    "snappy": kcodec.has_snappy(),
    "lz4": kcodec.has_lz4(),
    "zstd": kcodec.has_zstd(),
}


def create_topics(bootstrap: str, topics: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="sluice-systest-admin", request_timeout_ms=30000)
    try:
        # kafka-python gates features on this guess (see the module docstring).
        print(f"  kafka-python inferred broker version {admin._client.check_version()}")
        resp = admin.create_topics(
            [NewTopic(t, num_partitions=common.NUM_PARTITIONS, replication_factor=1) for t in topics],
            timeout_ms=30000,
        )
        # kafka-python 3 raises on errors by default; keep a check for older shapes.
        for err in getattr(resp, "topic_errors", []) or []:
            name, code = err[0], err[1]
            if code != 0:
                raise SystemExit(f"CreateTopics {name}: error code {code}")
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, codec: str, recs: list[common.Rec]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=CODEC_ARG[codec],
        linger_ms=5,
        batch_size=4096,  # several batches per partition
        request_timeout_ms=30000,
    )
    try:
        # The producer has had to talk to the broker to build; now it knows the partitions.
        parts = producer.partitions_for(topic)
        if parts is None or len(parts) != common.NUM_PARTITIONS:
            raise SystemExit(f"{topic}: producer sees partitions {parts}, expected {common.NUM_PARTITIONS}")
        futures = [
            (
                rec,
                producer.send(
                    topic, key=rec.key, value=rec.value, headers=rec.headers, timestamp_ms=rec.timestamp_ms
                ),
            )
            for rec in recs
        ]
        producer.flush(timeout=DEADLINE_S)
        for rec, fut in futures:
            md = fut.get(timeout=DEADLINE_S)  # raises the broker's error, if any
            rec.ack_partition, rec.ack_offset = md.partition, md.offset
    finally:
        producer.close(timeout=10)


def consume_all(bootstrap: str, topic: str) -> list[common.Got]:
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,  # no group: assign() only
        enable_auto_commit=False,
        auto_offset_reset="none",  # an out-of-range fetch here is a bug: raise it
        max_partition_fetch_bytes=4096,  # several Fetch round trips per partition
        fetch_max_wait_ms=100,
        request_timeout_ms=30000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(common.NUM_PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        high = c.end_offsets(tps)
        got: list[common.Got] = []
        deadline = time.monotonic() + DEADLINE_S
        while any(c.position(tp) < high[tp] for tp in tps):
            if time.monotonic() > deadline:
                pos = {tp.partition: c.position(tp) for tp in tps}
                raise SystemExit(f"consume of {topic} timed out at positions {pos}, high {high}")
            for tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    got.append(
                        common.Got(
                            m.partition,
                            m.offset,
                            m.key,
                            m.value,
                            list(m.headers),
                            m.timestamp,
                            m.timestamp_type,
                        )
                    )
        return got
    finally:
        c.close()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap = sys.argv[1]
    print(f"kafka-python {kafka.__version__}; bootstrap {bootstrap}")
    missing = [c for c in CODECS if not CODEC_AVAILABLE[c]]
    if missing:
        print(f"kafka-python: FAIL: codec libraries missing for {missing} (run scripts/install-test-deps)")
        return 1
    run = common.run_id()
    topics = {codec: common.topic_name("kpy", codec, run) for codec in CODECS}
    create_topics(bootstrap, list(topics.values()))
    ok = True
    for codec in CODECS:
        recs = common.make_records(run, codec)
        t0 = time.monotonic()
        produce(bootstrap, topics[codec], codec, recs)
        got = consume_all(bootstrap, topics[codec])
        print(f"  {codec}: produced and read {len(recs)} records in {time.monotonic() - t0:.1f}s")
        ok &= common.check(
            f"kafka-python {codec}",
            recs,
            got,
            common.NUM_PARTITIONS,
            rid_of=lambda g: common.header_map(g.headers).get("seq", b"").decode(),
            expect_murmur2=True,
        )
    print("kafka-python: PASS" if ok else "kafka-python: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except kafka.errors.KafkaError as e:
        print(f"kafka-python: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
