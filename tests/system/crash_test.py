#!/usr/bin/env python3
"""Crash test: kill -9 the broker mid-stream, restart it on the same data dir, verify the log.

Usage: crash_test.py [--cycles 3] [--partitions 3] [--up-seconds 3] [--idempotent]

One broker (brokerctl.Broker, fresh temp data dir) and one confluent-kafka producer thread that
sends a steady stream of acks=all records with unique values the whole time. Each cycle:
  1. let the stream run for --up-seconds;
  2. SIGKILL the broker while records are in flight;
  3. restart it on the same ports and data dir; the producer reconnects by itself and keeps
     going (records it could not deliver in time fail and are simply not acknowledged);
  4. read every partition from the beginning and check everything acknowledged so far.
After the last cycle the stream runs on for a while on the restarted broker (so acks after a
crash are checked against acks from before it), stops, and the whole log is checked again.

The checks (DESIGN.md names: CommittedNeverLost/NoLostWrite and OffsetsUnique):
  * every acknowledged record is in the log at exactly the offset its ack reported, with the
    same value;
  * no (partition, offset) was ever acknowledged for two different values, across all broker
    lifetimes: a restarted broker must not hand out an offset again;
  * the high watermark covers every acknowledged offset.
Unacknowledged records may or may not be present, and a retried record may appear twice
(at-least-once without idempotence); both are legal and only counted.

The producer is not idempotent by default: the test is about the log's durability, not about
producer-state recovery. --idempotent also demands that the broker restore producer ids and
sequences after a crash (as Kafka does from the log), or librdkafka reports a fatal error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import logreader  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "crash"
PRODUCE_RATE_PER_S = 1000  # bounded stream: a few thousand records per cycle
RECORD_PAD = "x" * 100  # ~130-byte values: several records per batch, several batches per fsync
TAIL_SECONDS = 3  # streaming after the last restart
FLUSH_TIMEOUT_S = 30
READ_DEADLINE_S = 60
MAX_EXAMPLES = 5  # per kind of problem


class Stream(threading.Thread):
    """Produces unique values until stopped; records every acknowledgement."""

    def __init__(self, bootstrap: str, idempotent: bool):
        super().__init__(name="producer", daemon=True)
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": idempotent,
                "linger.ms": 2,
                # Long enough to ride out a restart, short enough to bound the test.
                "message.timeout.ms": 20000,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 500,
                "socket.connection.setup.timeout.ms": 5000,
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.acks: list[tuple[int, int, str, int]] = []  # (partition, offset, value, life)
        self.failed = 0
        self.fatal: str | None = None
        self.sent = 0
        self.life = 1  # which broker lifetime we are in (for reporting only)

    def on_delivery(self, err, msg):
        if err is not None:
            if err.fatal():
                self.fatal = str(err)
            self.failed += 1
            return
        with self.lock:
            self.acks.append((msg.partition(), msg.offset(), msg.value().decode(), self.life))

    def run(self):
        t0 = time.monotonic()
        while not self.stop_event.is_set() and self.fatal is None:
            # Rate limit: stay at PRODUCE_RATE_PER_S on average.
            ahead = self.sent / PRODUCE_RATE_PER_S - (time.monotonic() - t0)
            if ahead > 0:
                self.producer.poll(min(ahead, 0.05))
                continue
            value = f"v{self.sent:09d}-{RECORD_PAD}"
            try:
                self.producer.produce(TOPIC, key=str(self.sent % 64), value=value, on_delivery=self.on_delivery)
                self.sent += 1
            except BufferError:  # local queue full while the broker is down: wait a little
                self.producer.poll(0.05)
                continue
            self.producer.poll(0)
        self.producer.flush(FLUSH_TIMEOUT_S)

    def snapshot(self) -> list[tuple[int, int, str, int]]:
        with self.lock:
            return list(self.acks)


def create_topic(bootstrap: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=partitions, replication_factor=1)])[TOPIC].result(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        t = admin.list_topics(TOPIC, timeout=10).topics.get(TOPIC)
        if t and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.2)
    raise SystemExit(f"topic {TOPIC} not visible with {partitions} partitions")


def read_log(bootstrap: str, partitions: int) -> tuple[dict, dict]:
    """Everything in every partition: ({(p, offset): value}, {p: (low, high)})."""
    log, marks = logreader.read_log(bootstrap, TOPIC, partitions, "crash-test-reader", READ_DEADLINE_S)
    return {at: value for at, (_, value) in log.items()}, marks


def verify(label: str, bootstrap: str, partitions: int, acks: list, stream: Stream) -> bool:
    """Check the acknowledgements taken *before* reading against the log as read now."""
    try:
        log, marks = read_log(bootstrap, partitions)
    except logreader.ReadError as e:
        print(f"  {label}: FAIL: cannot read the log: {e}")
        return False
    # Problems by kind (a lost ack and a reused offset often come together; show both).
    errors: dict[str, list[str]] = {}

    def err(kind: str, msg: str) -> None:
        errors.setdefault(kind, []).append(msg)

    acked_at: dict[tuple[int, int], tuple[str, int]] = {}
    for p, off, value, life in acks:
        prev = acked_at.get((p, off))
        if prev is not None and prev[0] != value:
            err(
                "offset reused (OffsetsUnique)",
                f"p{p}@{off} acked for {prev[0][:10]} (broker life {prev[1]}) and for {value[:10]} (life {life})",
            )
        acked_at[(p, off)] = (value, life)
        if p not in marks:
            err("ack for an unknown partition", f"p{p}@{off}; the topic was created with {partitions} partitions")
            continue
        have = log.get((p, off))
        if have is None:
            err("acked record lost (NoLostWrite)", f"p{p}@{off} {value[:10]} (acked in broker life {life})")
        elif have != value:
            err("acked record changed (NoLostWrite)", f"p{p}@{off} holds {have[:10]}, ack was for {value[:10]}")
        if off >= marks[p][1]:
            err("high watermark below an acked offset", f"p{p}: high watermark {marks[p][1]}, acked offset {off}")
    values = list(log.values())
    dups = len(values) - len(set(values))
    unacked = sum(1 for k in log if k not in acked_at)
    print(
        f"  {label}: {len(acks)} acks checked against {len(log)} records "
        f"(sent {stream.sent}, failed deliveries {stream.failed}, unacked present {unacked}, "
        f"duplicated values {dups}); watermarks {dict(sorted(marks.items()))}"
    )
    for kind, msgs in errors.items():
        print(f"     FAIL {kind}: {len(msgs)}, e.g.")
        for m in msgs[:MAX_EXAMPLES]:
            print(f"       - {m}")
    return not errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--up-seconds", type=float, default=3.0)
    ap.add_argument("--idempotent", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir even on success")
    a = ap.parse_args()
    brokerctl.install_signal_handlers()

    workdir = tempfile.mkdtemp(prefix="sluice-crash-")
    # No auto-creation: a broker that forgot the topic must fail the producer, not silently
    # recreate an empty topic under it.
    extra = ["--auto-create-topics", "false"] if brokerctl.kind() == "sluice" else []
    broker = brokerctl.Broker(workdir, extra_args=extra, name="crash")
    print(f"crash test: {broker.kind} broker on {broker.bootstrap}, data dir {broker.data_dir}")
    ok = True
    try:
        broker.start()
        create_topic(broker.bootstrap, a.partitions)
        stream = Stream(broker.bootstrap, a.idempotent)
        stream.start()
        for cycle in range(1, a.cycles + 1):
            time.sleep(a.up_seconds)
            if stream.fatal:
                break
            before = len(stream.snapshot())
            broker.kill9()
            print(f"  cycle {cycle}: killed broker (-9) after {before} acks in total")
            time.sleep(0.3)  # the producer sees connection errors and keeps queueing
            t0 = time.monotonic()
            broker.start()
            stream.life += 1
            print(f"  cycle {cycle}: restarted on the same data dir, ready in {time.monotonic() - t0:.1f}s")
            ok &= verify(f"cycle {cycle} after restart", broker.bootstrap, a.partitions, stream.snapshot(), stream)
        time.sleep(TAIL_SECONDS)
        stream.stop_event.set()
        stream.join(FLUSH_TIMEOUT_S + 10)
        if stream.is_alive():
            print("  FAIL: producer thread did not stop")
            ok = False
        if stream.fatal:
            print(f"  FAIL: producer fatal error: {stream.fatal}")
            ok = False
        acks = stream.snapshot()
        lives = {life for *_, life in acks}
        if len(lives) < a.cycles + 1:
            print(f"  FAIL: acks came from broker lives {sorted(lives)}; every life should ack something")
            ok = False
        ok &= verify("final", broker.bootstrap, a.partitions, acks, stream)
        status = broker.stop()
        if status != 0:
            print(f"  FAIL: clean shutdown (SIGTERM) exited with {status}, want 0\n{broker.log_tail()}")
            ok = False
    finally:
        brokerctl.kill_all()
    if ok and not a.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"  broker logs and data kept in {workdir}")
    print("crash test: PASS" if ok else "crash test: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
