#!/usr/bin/env python3
"""Read every record of a topic from the beginning, for the crash and cluster checkers.

One definition of "the whole log as a consumer sees it": the watermarks first (ListOffsets,
retried for up to 30 s while a restarted broker or a new leader comes up), then every
partition read to its high watermark with a plain assign()ed consumer, each (partition,
offset) at most once. Every wait is bounded; a failure raises ReadError.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

WATERMARKS_DEADLINE_S = 30


class ReadError(Exception):
    pass


def watermarks(c: Consumer, topic: str, partition: int) -> tuple[int, int]:
    deadline = time.monotonic() + WATERMARKS_DEADLINE_S
    while True:
        try:
            return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        except KafkaException as e:
            if time.monotonic() > deadline:
                raise ReadError(f"ListOffsets for {topic}-{partition} keeps failing: {e}") from e
            time.sleep(0.5)


def read_log(bootstrap: str, topic: str, partitions: int, group_id: str,
             deadline_s: float) -> tuple[dict, dict]:
    """Everything in every partition: ({(p, offset): (key, value)}, {p: (low, high)})."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,  # required by the binding; assign() never joins it
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
        }
    )
    try:
        marks = {p: watermarks(c, topic, p) for p in range(partitions)}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        log: dict[tuple[int, int], tuple[str | None, str | None]] = {}
        done = {p for p, (lo, hi) in marks.items() if hi <= lo}
        deadline = time.monotonic() + deadline_s
        while len(done) < partitions:
            if time.monotonic() > deadline:
                raise ReadError(f"reading {topic} timed out; done {sorted(done)}, watermarks {marks}")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= marks[m.partition()][1]:
                        done.add(m.partition())
                    continue
                raise ReadError(f"reading {topic}: {m.error()}")
            if (m.partition(), m.offset()) in log:
                raise ReadError(f"consumer returned {topic}-{m.partition()}@{m.offset()} twice")
            key = m.key().decode() if m.key() is not None else None
            log[(m.partition(), m.offset())] = (key, m.value().decode() if m.value() is not None else None)
        return log, marks
    finally:
        c.close()
