#!/usr/bin/env python3
"""confluent-kafka (librdkafka 2.16, bundled in the wheel) against a Kafka-protocol broker.

Usage: confluent_kafka_test.py BOOTSTRAP            e.g. 127.0.0.1:9092

Scenario and checks: see common.py. Client specifics:
  * all five codecs (the wheel's librdkafka is built with gzip, snappy, lz4 and zstd);
  * partitioner=murmur2_random, the Java-compatible one (librdkafka's default,
    consistent_random, is CRC32-based), so the murmur2 mapping is checked;
  * enable.idempotence=true: InitProducerId plus producer id/epoch/sequence in every batch;
  * small fetch sizes so every partition takes several Fetch round trips, and one extra
    consumer that starts *inside* a compressed batch: the broker must return the whole batch
    and librdkafka must skip the records before the requested offset.
  * The Python binding insists on a group.id even for assign(); with assign() and explicit or
    logical offsets librdkafka starts fetching without a coordinator and commits nothing
    (enable.auto.commit=false), so no group API is needed. It still looks for a coordinator
    in the background, but only on brokers that advertise FindCoordinator.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
    libversion,
    version,
)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

CODECS = common.CODECS_ALL
DEADLINE_S = 60  # per codec, for each of produce and consume


def create_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=common.NUM_PARTITIONS, replication_factor=1) for t in topics],
        operation_timeout=30,
        request_timeout=30,
    )
    for t, f in futures.items():
        f.result(timeout=60)  # raises KafkaException with the broker's error code
    # CreateTopics returning does not promise that Metadata shows the partitions yet.
    deadline = time.monotonic() + 30
    while True:
        md = admin.list_topics(timeout=10)
        ready = [
            t
            for t in topics
            if t in md.topics
            and md.topics[t].error is None
            and len(md.topics[t].partitions) == common.NUM_PARTITIONS
            and all(p.leader >= 0 for p in md.topics[t].partitions.values())
        ]
        if len(ready) == len(topics):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"topics not visible with {common.NUM_PARTITIONS} partitions: {set(topics) - set(ready)}")
        time.sleep(0.2)


def produce(bootstrap: str, topic: str, codec: str, recs: list[common.Rec]) -> None:
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": codec,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "batch.num.messages": 50,  # several batches per partition
            "message.timeout.ms": 30000,
        }
    )
    errors: list[str] = []

    def on_delivery(err, msg, rec=None):
        if err is not None:
            errors.append(f"{rec.rid}: {err}")
        else:
            rec.ack_partition, rec.ack_offset = msg.partition(), msg.offset()

    for rec in recs:
        p.produce(
            topic,
            key=rec.key,
            value=rec.value,
            headers=rec.headers,
            timestamp=rec.timestamp_ms,
            on_delivery=lambda err, msg, rec=rec: on_delivery(err, msg, rec),
        )
        p.poll(0)
    left = p.flush(DEADLINE_S)
    if left or errors:
        raise SystemExit(f"{codec}: {left} undelivered, {len(errors)} failed deliveries: {errors[:5]}")


def consumer(bootstrap: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": f"assign-only-{common.run_id()}",  # required by the binding; never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",  # any out-of-range fetch here is a bug: surface it
        "fetch.max.bytes": 65536,
        "message.max.bytes": 65536,  # librdkafka requires fetch.max.bytes >= this
        "max.partition.fetch.bytes": 4096,  # forces several Fetch round trips per partition
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def consume_all(bootstrap: str, topic: str) -> list[common.Got]:
    """assign() every partition from its beginning and read up to the high watermark."""
    c = consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(common.NUM_PARTITIONS)]
        high = {}
        for tp in tps:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            high[tp.partition] = hi
        c.assign(tps)
        got: list[common.Got] = []
        done = {p for p, hi in high.items() if hi == 0}
        deadline = time.monotonic() + DEADLINE_S
        while len(done) < common.NUM_PARTITIONS:
            if time.monotonic() > deadline:
                raise SystemExit(f"consume of {topic} timed out; partitions done: {sorted(done)}, high: {high}")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= high[m.partition()]:
                        done.add(m.partition())
                    continue
                raise SystemExit(f"consumer error on {topic}: {m.error()}")
            ts_type, ts = m.timestamp()
            got.append(
                common.Got(
                    m.partition(),
                    m.offset(),
                    m.key(),
                    m.value(),
                    m.headers(),
                    ts,
                    # librdkafka: 1 = CreateTime, 2 = LogAppendTime; map to the batch bit.
                    {1: 0, 2: 1}.get(ts_type, ts_type),
                )
            )
        return got
    finally:
        c.close()


def check_mid_batch(bootstrap: str, topic: str, recs: list[common.Rec], codec: str) -> bool:
    """Start a consumer at an offset that is (very likely) inside a compressed batch."""
    by_part: dict[int, list[common.Rec]] = {}
    for r in recs:
        by_part.setdefault(r.ack_partition, []).append(r)
    part, prs = max(by_part.items(), key=lambda kv: len(kv[1]))
    target = prs[len(prs) // 2]
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, part, target.ack_offset)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
                continue
            if m.error():
                print(f"  FAIL {codec}: seek into batch: consumer error {m.error()}")
                return False
            ok = m.offset() == target.ack_offset and m.value() == target.value
            print(
                f"  {'ok  ' if ok else 'FAIL'} {codec}: assign at p{part}@{target.ack_offset} "
                f"(mid-batch) first record is offset {m.offset()}"
            )
            return ok
        print(f"  FAIL {codec}: seek into batch: nothing read from p{part}@{target.ack_offset} in 30 s")
        return False
    finally:
        c.close()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap = sys.argv[1]
    v = version()  # a str in 2.16, a (str, int) tuple in older releases
    v = v[0] if isinstance(v, tuple) else v
    print(f"confluent-kafka {v}, librdkafka {libversion()[0]}; bootstrap {bootstrap}")
    run = common.run_id()
    topics = {codec: common.topic_name("confluent", codec, run) for codec in CODECS}
    create_topics(bootstrap, list(topics.values()))
    ok = True
    for codec in CODECS:
        recs = common.make_records(run, codec)
        t0 = time.monotonic()
        produce(bootstrap, topics[codec], codec, recs)
        got = consume_all(bootstrap, topics[codec])
        print(f"  {codec}: produced and read {len(recs)} records in {time.monotonic() - t0:.1f}s")
        ok &= common.check(
            f"confluent-kafka {codec}",
            recs,
            got,
            common.NUM_PARTITIONS,
            rid_of=lambda g: common.header_map(g.headers).get("seq", b"").decode(),
            expect_murmur2=True,
        )
        ok &= check_mid_batch(bootstrap, topics[codec], recs, codec)
    print("confluent-kafka: PASS" if ok else "confluent-kafka: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as e:
        print(f"confluent-kafka: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
