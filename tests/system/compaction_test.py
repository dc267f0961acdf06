#!/usr/bin/env python3
"""Compaction test: a compacted topic keeps the latest value per key, at its original offset,
across restarts, and a consumer reading from the start sees every key's last value.

One broker (brokerctl.Broker, fresh temp data dir, --log-cleaner-backoff-ms 300) and a
single-partition topic with cleanup.policy=compact, segment.bytes=4096 (so records spread over
many sealed segments) and delete.retention.ms=0 (tombstones go at the first cleaning):
  1. produce KEYS keys, ROUNDS values each, acks=all, remembering every record's offset; then
     tombstones for the DELETED keys; then FILLER records of one key so the last real records
     lie in sealed segments;
  2. a compacted topic refuses a record without a key (INVALID_RECORD), as Kafka does;
  3. wait (bounded) until a consumer from offset 0 sees exactly one record per live key below
     the filler, i.e. the cleaner has run;
  4. check: every record read is at the offset its produce ack reported with the value it had;
     every live key's last value is there; deleted keys are absent; the log end is unchanged;
  5. kill -9 the broker, restart it, and read again: the same records at the same offsets.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "compacted"
KEYS = 40
ROUNDS = 12
DELETED = {f"key-{i}" for i in range(0, KEYS, 10)}
FILLER = 200
CLEAN_WAIT_S = 60
READ_DEADLINE_S = 30


def produce(bootstrap: str) -> dict[int, tuple[str, str | None]]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": 5})
    written: dict[int, tuple[str, str | None]] = {}

    def ack(err, msg):
        if err is not None:
            raise SystemExit(f"produce failed: {err}")
        written[msg.offset()] = (msg.key().decode(), None if msg.value() is None else msg.value().decode())

    for round_ in range(ROUNDS):
        for i in range(KEYS):
            producer.produce(TOPIC, key=f"key-{i}", value=f"value-{i}-{round_}-" + "x" * 40, on_delivery=ack)
        producer.flush(30)
    for key in sorted(DELETED):
        producer.produce(TOPIC, key=key, value=None, on_delivery=ack)
    producer.flush(30)
    for i in range(FILLER):
        producer.produce(TOPIC, key="filler", value=f"f{i}-" + "y" * 40, on_delivery=ack)
    if producer.flush(30) != 0:
        raise SystemExit("produce did not finish")
    del producer
    return written


def read_all(bootstrap: str) -> tuple[dict[int, tuple[str, str | None]], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-reader", "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        seen: dict[int, tuple[str, str | None]] = {}
        deadline = time.monotonic() + READ_DEADLINE_S
        last = -1
        while last < high - 1 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise SystemExit(f"consume error: {msg.error()}")
            seen[msg.offset()] = (msg.key().decode(), None if msg.value() is None else msg.value().decode())
            last = msg.offset()
        if last < high - 1:
            raise SystemExit(f"read stopped at {last}, high watermark {high}")
        return seen, high
    finally:
        consumer.close()


def expected_survivors(written: dict[int, tuple[str, str | None]]) -> dict[str, int]:
    latest: dict[str, int] = {}
    for offset in sorted(written):
        latest[written[offset][0]] = offset
    return latest


def check(seen, high, written, end) -> None:
    if high != end:
        raise SystemExit(f"the log end moved: {high} != {end}")
    for offset, record in seen.items():
        if written.get(offset) != record:
            raise SystemExit(f"offset {offset} holds {record}, produced {written.get(offset)}")
    latest = expected_survivors(written)
    for key, offset in latest.items():
        if key in DELETED:
            continue
        if seen.get(offset) != written[offset]:
            raise SystemExit(f"{key}'s last value (offset {offset}) is missing")
    for key in DELETED:
        if any(k == key for k, _ in seen.values()):
            raise SystemExit(f"deleted {key} still has records after compaction")


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="sluice-compaction-")
    broker = brokerctl.Broker(workdir, ["--log-cleaner-backoff-ms", "300"])
    ok = False
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        configs = {"cleanup.policy": "compact", "segment.bytes": "4096", "delete.retention.ms": "0",
                   "min.cleanable.dirty.ratio": "0.01"}
        for future in admin.create_topics([NewTopic(TOPIC, 1, 1, config=configs)]).values():
            future.result(30)
        written = produce(broker.bootstrap)
        end = max(written) + 1
        print(f"produced {len(written)} records, log end {end}")

        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        refused: list = []
        producer.produce(TOPIC, value="no key", on_delivery=lambda err, msg: refused.append(err))
        producer.flush(30)
        if not refused or refused[0] is None or "INVALID_RECORD" not in refused[0].name():
            raise SystemExit(f"a keyless record on a compacted topic was not refused: {refused}")
        print(f"keyless record refused: {refused[0].name()}")
        del producer

        live_keys = {f"key-{i}" for i in range(KEYS)} - DELETED
        deadline = time.monotonic() + CLEAN_WAIT_S
        while True:
            seen, high = read_all(broker.bootstrap)
            real = [k for k, _ in seen.values() if k.startswith("key-")]
            if len(real) == len(live_keys) and set(real) == live_keys:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"not compacted within {CLEAN_WAIT_S}s: {len(real)} key records remain")
            time.sleep(1)
        check(seen, high, written, end)
        print(f"compacted: {len(seen)} of {len(written)} records remain, offsets unchanged")

        broker.kill9()
        broker.start()
        seen_after, high_after = read_all(broker.bootstrap)
        check(seen_after, high_after, written, end)
        if seen_after != seen:
            raise SystemExit("the compacted log changed across a kill -9 and restart")
        print("after kill -9 and restart: the same records at the same offsets")
        ok = True
        return 0
    except (KafkaException, SystemExit) as error:
        print(f"FAIL: {error}")
        return 1
    finally:
        broker.stop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
