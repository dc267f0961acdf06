#!/usr/bin/env python3
"""Retention test: size- and time-based retention move the log start offset, and consumers
positioned below it behave as Kafka's do.

Usage: retention_test.py [--advance-with-delete-records]

One broker (brokerctl.Broker, fresh temp data dir, --retention-check-interval-ms 200) and two
single-partition topics with small segments (segment.bytes=16384), so a few hundred KiB of
records make dozens of segments:
  * ret-bytes: retention.bytes=65536;
  * ret-time:  retention.ms=2000; once retention has removed something, retention.ms is raised
    to a day with IncrementalAlterConfigs so the log start stops moving while we look at it,
    and a few fresh records are added (expiry may have emptied the log).
For each topic:
  1. CreateTopics with the configs; DescribeConfigs must report them;
  2. produce ~450 KiB of acks=all records (small batches);
  3. wait (bounded) until ListOffsets(earliest) > 0, then until it is stable;
  4. a consumer assign()ed at offset 0 with auto.offset.reset=earliest must resume exactly at
     the new earliest offset and read every record from there to the high watermark, each at
     the offset its produce ack reported;
  5. a consumer assign()ed at offset 0 with auto.offset.reset=error must get the
     OFFSET_OUT_OF_RANGE error surfaced (librdkafka: _AUTO_OFFSET_RESET, "Offset out of range")
     and no records.

--advance-with-delete-records replaces step 3's waiting with a DeleteRecords call, to exercise
steps 4-5 on a broker without retention (e.g. tansu while developing this script).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

SEGMENT_BYTES = 16384
TOPICS = {
    "ret-bytes": {"segment.bytes": str(SEGMENT_BYTES), "retention.bytes": "65536"},
    "ret-time": {"segment.bytes": str(SEGMENT_BYTES), "retention.ms": "2000"},
}
RECORDS = 2000
TAIL_RECORDS = 20
VALUE_PAD = "y" * 200  # ~230 B per record: 2000 records ~ 450 KiB ~ 28 segments
RETENTION_WAIT_S = 45  # retention.ms 2 s + checks every 200 ms: normally a few seconds
STABLE_FOR_S = 1.5  # the log start must stay put this long before consumers look
CONSUME_DEADLINE_S = 30


class Fail(Exception):
    pass


def earliest_latest(c: Consumer, topic: str) -> tuple[int, int]:
    return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)


def create(admin: AdminClient, topic: str, configs: dict) -> None:
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=configs)])[topic].result(60)
    res = ConfigResource(ResourceType.TOPIC, topic)
    described = admin.describe_configs([res])[res].result(30)
    for k, v in configs.items():
        got = described.get(k)
        if got is None or got.value != v:
            raise Fail(f"{topic}: DescribeConfigs says {k} = {got.value if got else 'missing'}, created with {v}")
    print(f"  {topic}: created with {configs}; DescribeConfigs agrees")


def produce(bootstrap: str, topic: str, count: int, prefix: str = "r") -> dict[int, str]:
    """Returns {offset: value} from the produce acks."""
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 0,
            "batch.num.messages": 10,  # ~2.3 KiB batches: many per segment, none larger than one
            "compression.type": "none",  # keeps bytes on disk predictable
        }
    )
    acked: dict[int, str] = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[msg.offset()] = msg.value().decode()

    for i in range(count):
        while True:
            try:
                p.produce(topic, key=f"k{i % 10}", value=f"{prefix}{i:06d}-{VALUE_PAD}", on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    if p.flush(60) or errors:
        raise Fail(f"produce to {topic}: {len(errors)} errors {errors[:3]}")
    return acked


def wait_log_start_moves(c: Consumer, topic: str) -> int:
    deadline = time.monotonic() + RETENTION_WAIT_S
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        lo, hi = earliest_latest(c, topic)
        if lo > 0:
            print(f"  {topic}: ListOffsets earliest moved to {lo} (latest {hi}) after {time.monotonic() - t0:.1f}s")
            return lo
        time.sleep(0.25)
    raise Fail(f"{topic}: ListOffsets earliest still 0 after {RETENTION_WAIT_S}s: retention did not delete")


def wait_stable(c: Consumer, topic: str) -> tuple[int, int]:
    deadline = time.monotonic() + 30
    last = earliest_latest(c, topic)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = earliest_latest(c, topic)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= STABLE_FOR_S:
            return now
    raise Fail(f"{topic}: log start/end offsets kept moving: {last}")


def reader(bootstrap: str, reset: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"retention-{reset}",  # required by the binding; assign() never joins it
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": reset,
        }
    )


def check_reset_earliest(bootstrap: str, topic: str, earliest: int, latest: int, acked: dict[int, str]) -> None:
    c = reader(bootstrap, "earliest")
    try:
        c.assign([TopicPartition(topic, 0, 0)])  # offset 0 is below the log start now
        offsets = []
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while True:
            if time.monotonic() > deadline:
                raise Fail(f"{topic}: reset=earliest consumer read {len(offsets)} records in {CONSUME_DEADLINE_S}s")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF and m.offset() >= latest:
                    break
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise Fail(f"{topic}: reset=earliest consumer error: {m.error()}")
            if acked.get(m.offset()) != m.value().decode():
                raise Fail(f"{topic}: offset {m.offset()} holds {m.value()[:12]!r}, its ack was for {acked.get(m.offset(), '')[:12]!r}")
            offsets.append(m.offset())
    finally:
        c.close()
    if not offsets or offsets[0] != earliest:
        raise Fail(f"{topic}: reset=earliest consumer started at {offsets[:1]}, ListOffsets earliest is {earliest}")
    if offsets != list(range(earliest, latest)):
        raise Fail(f"{topic}: read offsets {offsets[0]}..{offsets[-1]} ({len(offsets)}) != {earliest}..{latest - 1}")
    print(f"  ok   {topic}: assign@0 + auto.offset.reset=earliest resumed at {earliest}, read {len(offsets)} records to {latest}")


def check_reset_error(bootstrap: str, topic: str) -> None:
    c = reader(bootstrap, "error")
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if not m.error():
                raise Fail(f"{topic}: reset=error consumer got a record at {m.offset()} instead of an error")
            err = m.error()
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            text = str(err)
            if err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE) and "out of range" in text.lower():
                print(f"  ok   {topic}: assign@0 + auto.offset.reset=error surfaced: {err.name()}: {err.str()}")
                return
            raise Fail(f"{topic}: reset=error consumer got an unexpected error: {text}")
        raise Fail(f"{topic}: reset=error consumer saw no OFFSET_OUT_OF_RANGE in {CONSUME_DEADLINE_S}s")
    finally:
        c.close()


def freeze_retention(admin: AdminClient, topic: str) -> None:
    """Raise retention.ms to a day, so the log start stops moving while consumers check it."""
    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)],
    )
    admin.incremental_alter_configs([res])[res].result(30)
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    value = list(described.values())[0].result(30)["retention.ms"].value
    if value != "86400000":
        raise Fail(f"{topic}: IncrementalAlterConfigs retention.ms=86400000 not reflected (DescribeConfigs: {value})")
    print(f"  {topic}: retention.ms raised to 1 day (IncrementalAlterConfigs)")


def run_topic(admin, bootstrap, topic, configs, use_delete_records) -> None:
    create(admin, topic, configs)
    acked = produce(bootstrap, topic, RECORDS)
    print(f"  {topic}: produced {len(acked)} records, acked offsets {min(acked)}..{max(acked)}")
    c = reader(bootstrap, "error")  # only used for ListOffsets; never assigned
    try:
        if use_delete_records:
            target = len(acked) // 2
            admin.delete_records([TopicPartition(topic, 0, target)])[TopicPartition(topic, 0, target)].result(30)
            print(f"  {topic}: DeleteRecords up to {target} (instead of waiting for retention)")
        wait_log_start_moves(c, topic)
        if "retention.ms" in configs and not use_delete_records:
            freeze_retention(admin, topic)
            wait_stable(c, topic)
            # Time-based retention may have removed every segment, the active one included
            # (Kafka rolls and deletes an expired active segment), leaving nothing to read.
            # A few fresh records, safe now that retention.ms is a day, give the consumers
            # something after the log start.
            acked.update(produce(bootstrap, topic, TAIL_RECORDS, prefix="tail"))
        earliest, latest = wait_stable(c, topic)
    finally:
        c.close()
    if not 0 < earliest < latest:
        raise Fail(f"{topic}: after retention earliest={earliest}, latest={latest}: want 0 < earliest < latest")
    check_reset_earliest(bootstrap, topic, earliest, latest, acked)
    check_reset_error(bootstrap, topic)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--advance-with-delete-records", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir even on success")
    a = ap.parse_args()
    brokerctl.install_signal_handlers()
    workdir = tempfile.mkdtemp(prefix="sluice-retention-")
    extra = ["--retention-check-interval-ms", "200"] if brokerctl.kind() == "sluice" else []
    broker = brokerctl.Broker(workdir, extra_args=extra, name="retention")
    print(f"retention test: {broker.kind} broker on {broker.bootstrap}, data dir {broker.data_dir}")
    failures = 0
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for topic, configs in TOPICS.items():
            try:
                run_topic(admin, broker.bootstrap, topic, configs, a.advance_with_delete_records)
            except Fail as e:
                print(f"  FAIL {e}")  # Fail messages start with the topic
                failures += 1
            except KafkaException as e:
                print(f"  FAIL {topic}: {e}")
                failures += 1
        status = broker.stop()
        if status != 0:
            print(f"  FAIL: clean shutdown (SIGTERM) exited with {status}, want 0\n{broker.log_tail()}")
            failures += 1
    finally:
        brokerctl.kill_all()
    if failures == 0 and not a.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"  broker logs and data kept in {workdir}")
    print("retention test: PASS" if failures == 0 else "retention test: FAIL")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
