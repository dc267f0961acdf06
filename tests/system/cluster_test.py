#!/usr/bin/env python3
"""Cluster tests: a 3-node Sluice cluster (Raft, replication factor 3) under crashes and pauses,
plus a small produce benchmark against a single node.

Usage: cluster_test.py TEST [--seed N] [--keep] [options]

TEST is one of:
  leader-crash         6 partitions, RF=3; a confluent-kafka producer streams keyed acks=all
                       records (unique values, max.in.flight=1 so that per-key order is a fair
                       demand without idempotence). Mid-stream, the leader of a randomly chosen
                       partition is killed (-9); the two others must elect new leaders and keep
                       acknowledging every partition (20 acks each within 40 s). The node restarts on its data dir and must
                       catch up (log end and commit at the leader's high watermark, for every
                       partition) while the stream goes on. Then the stream stops and
                         * every partition is read from the beginning: every acked record is at
                           its acked offset with its value, no offset was acked for two values,
                           the high watermark covers every ack, a key's acked records lie in one
                           partition in produce order, and nothing unknown is in the log;
                         * the cluster is stopped with SIGTERM (each node must exit 0) and the
                           committed logs (batches wholly below the high watermark) of the three
                           replicas are compared byte for byte.
  whole-crash          The same stream; --cycles times, all three nodes are killed (-9) at once
                       and restarted together. After each restart and at the end, no acked
                       record may be lost or changed; then the byte comparison as above.
  controller-pause     SIGSTOP the controller (GET /v1/cluster controller_id) for --pause-seconds
                       (at least; longer if the checks take longer). Meanwhile the two others must
                       agree on a new controller, CreateTopics through one of them must succeed,
                       and the new topic must take acks=all records. After SIGCONT the old
                       controller must report the new one, and see the new topic (Metadata v1 to
                       it, /v1/partitions on it) with its replica caught up.
  idempotent-failover  leader-crash with enable.idempotence=true (max.in.flight 5): additionally
                       no value may appear twice in the log, and librdkafka must not raise a
                       fatal error (the new leader needs the producer's sequence state). Then a
                       hand-made Produce v3 sent to a follower must get NOT_LEADER_OR_FOLLOWER
                       (6) and must not be written, and the same request to the leader (the
                       control) must succeed.
  bench                --records 1 KiB acks=all records (at most --max-seconds of producing, at
                       most 5000 queued) to a single-node broker (RF=1) and to the 3-node cluster
                       (RF=3), 6 partitions each: records/s, MB/s and p50/p99 latency (produce()
                       to delivery report, client queueing included), then p50/p99 latency of a
                       light paced load (200 records/s for 3 s), and the cluster/single ratios.
                       Speed is only printed, never asserted; failed deliveries fail the test.

Nodes: clusterctl.py (node N on 127.0.0.N, same ports on each address, data dirs in a temp dir).
Before the first topic, all nodes must agree on a controller and list all 3 brokers in /v1/cluster
(registered); after each CreateTopics, every partition must get a leader that all nodes name, and
Metadata v1 from every node must list the 3 brokers, the controller /v1/cluster names, and every
partition with replicas {1,2,3}, a leader and an ISR. "Caught up" means: every replica's log end
>= the leader's high watermark and its commit >= that high watermark - 1 (HW = commit + 1).
Every wait has a deadline. On success the temp dir is removed (unless --keep); on failure it is
kept and named, the tail of every node's log is printed, and so is a one-line replay command
(--seed fixes the choices the test makes, e.g. which leader dies; timing is not replayable).
The last line is `cluster test TEST: PASS` or `... FAIL`; the exit status is 0 or 1.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import subprocess
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
import logreader  # noqa: E402
from clusterctl import Fail, wait_until  # noqa: E402
from confluent_kafka import KafkaError, KafkaException, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PRODUCE_RATE_PER_S = 1000  # bounded stream: a few thousand records per phase
RECORD_PAD = "x" * 100  # ~115-byte values: several records per batch
NUM_KEYS = 64
MESSAGE_TIMEOUT_MS = 30000  # rides out an election or a whole-cluster restart
FLUSH_TIMEOUT_S = 40  # > MESSAGE_TIMEOUT_MS: every queued record is acked or failed by then
TAIL_SECONDS = 3  # streaming after the last restart / catch-up
FAILOVER_ACKS_TIMEOUT_S = 40  # every partition acks again while a node is down
FAILOVER_MIN_ACKS = 20  # ...at least this many acks per partition in that phase
READ_DEADLINE_S = 90
MAX_EXAMPLES = 5
BENCH_VALUE_BYTES = 1024
BENCH_WARMUP_RECORDS = 200
# At most this many records queued or in flight: enough to saturate a broker on loopback, few
# enough that a slow cluster still acks them within message.timeout.ms (no implied speed demand).
BENCH_QUEUE_RECORDS = 5000
BENCH_PACED_RECORDS = 600  # then the latency of a light load, without client queueing...
BENCH_PACED_RATE_PER_S = 200  # ...at this rate (3 s)
RUN_SCRIPT = os.path.relpath(os.path.abspath(__file__), brokerctl.ROOT)


@dataclass(frozen=True)
class Ack:
    partition: int
    offset: int
    value: str
    key: str
    seq: int  # produce order; -1 for records sent by the raw client
    phase: int  # which part of the scenario acknowledged it (for reporting)


def value_for(seq: int) -> str:
    return f"v{seq:09d}-{RECORD_PAD}"


def seq_of(value: str) -> int | None:
    if value.startswith("v") and value[1:10].isdigit() and value[10:] == f"-{RECORD_PAD}":
        return int(value[1:10])
    return None


class Stream(threading.Thread):
    """Produces keyed records with unique values until stopped; records every ack."""

    def __init__(self, bootstrap: str, topic: str, idempotent: bool, rate: int = PRODUCE_RATE_PER_S):
        super().__init__(name="producer", daemon=True)
        conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": idempotent,
            "linger.ms": 2,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "request.timeout.ms": 10000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "socket.connection.setup.timeout.ms": 5000,
            "topic.metadata.refresh.interval.ms": 1000,
            "retry.backoff.ms": 100,
            "retry.backoff.max.ms": 500,
        }
        if not idempotent:
            # Retries with several requests in flight may reorder batches (Kafka promises
            # order only with idempotence or one request in flight).
            conf["max.in.flight.requests.per.connection"] = 1
        self.producer = Producer(conf)
        self.topic = topic
        self.rate = rate
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.acks: list[Ack] = []
        self.failed = 0
        self.fail_examples: list[str] = []
        self.fatal: str | None = None
        self.sent = 0
        self.phase = 0

    def on_delivery(self, err, msg):
        if err is not None:
            if err.fatal():
                self.fatal = str(err)
            self.failed += 1
            if len(self.fail_examples) < MAX_EXAMPLES:
                self.fail_examples.append(str(err))
            return
        value = msg.value().decode()
        with self.lock:
            self.acks.append(Ack(msg.partition(), msg.offset(), value, msg.key().decode(), seq_of(value), self.phase))

    def run(self):
        t0 = time.monotonic()
        while not self.stop_event.is_set() and self.fatal is None:
            ahead = self.sent / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                self.producer.poll(min(ahead, 0.05))
                continue
            try:
                self.producer.produce(self.topic, key=f"k{self.sent % NUM_KEYS}", value=value_for(self.sent),
                                      on_delivery=self.on_delivery)
                self.sent += 1
            except BufferError:  # local queue full while nothing acks: wait a little
                self.producer.poll(0.05)
                continue
            self.producer.poll(0)
        self.producer.flush(FLUSH_TIMEOUT_S)

    def snapshot(self) -> list[Ack]:
        with self.lock:
            return list(self.acks)

    def acks_by_partition(self, phase: int) -> dict[int, int]:
        counts: dict[int, int] = {}
        for a in self.snapshot():
            if a.phase == phase:
                counts[a.partition] = counts.get(a.partition, 0) + 1
        return counts

    def abandon(self) -> None:
        """The scenario failed: stop producing, without waiting for a flush."""
        self.stop_event.set()

    def finish(self) -> list[str]:
        """Stop, flush, join; returns problems (a fatal error, a hung producer)."""
        self.stop_event.set()
        self.join(FLUSH_TIMEOUT_S + 10)
        problems = []
        if self.is_alive():
            problems.append("producer thread did not stop (flush hung)")
        if self.fatal:
            problems.append(f"producer fatal error: {self.fatal}")
        return problems

    def stop_and_report(self) -> tuple[bool, list[Ack]]:
        """Stop (flush, join), print any problem and the acks per phase; returns (no problem, acks)."""
        problems = self.finish()
        for prob in problems:
            print(f"  FAIL {prob}")
        acks = self.snapshot()
        phases = sorted({x.phase for x in acks})
        print(f"  stream stopped: {self.summary()}; acks by phase "
              f"{ {ph: sum(1 for x in acks if x.phase == ph) for ph in phases} }")
        return not problems, acks

    def summary(self) -> str:
        return f"sent {self.sent}, acked {len(self.acks)}, failed deliveries {self.failed}" + (
            f" (e.g. {self.fail_examples[0]})" if self.fail_examples else "")


# --------------------------------------------------------------------------------------------
# Topic creation, reading and checking


def create_topic(c: clusterctl.Cluster, topic: str, partitions: int, via: list[int] | None = None,
                 replication_factor: int = 3) -> None:
    """CreateTopics through the nodes `via` (default: the responsive ones), retried until the
    deadline (the controller may still be gathering broker registrations, or moving); then
    every partition must get a leader and every node's Metadata must show the topic."""
    via = via or c.responsive()
    admin = AdminClient({"bootstrap.servers": c.bootstrap(via), "socket.connection.setup.timeout.ms": 5000,
                         "topic.metadata.refresh.interval.ms": 1000})
    deadline = time.monotonic() + clusterctl.CREATE_TOPIC_TIMEOUT_S
    errors: list[str] = []
    t0 = time.monotonic()
    while True:
        c.check_alive()
        fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
                                  operation_timeout=10, request_timeout=10)[topic]
        try:
            fut.result(30)
            break
        except KafkaException as e:
            err = e.args[0]
            if errors and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                break  # an earlier attempt succeeded but its answer was lost
            errors.append(f"{err.name()}: {err.str()}")
            if time.monotonic() > deadline:
                raise Fail(f"CreateTopics {topic} via nodes {via} kept failing: {errors[-3:]}") from e
            time.sleep(1)
    retried = f" after {len(errors)} failed attempts (last: {errors[-1]})" if errors else ""
    print(f"  created {topic} ({partitions} partitions, RF {replication_factor}) via nodes {via} "
          f"in {time.monotonic() - t0:.1f}s{retried}")
    leaders = c.wait_leaders(topic, partitions)
    c.wait_metadata(topic, partitions)
    print(f"  {topic} leaders: {dict(sorted(leaders.items()))}; Metadata agrees on nodes {c.responsive()}")


def read_log(bootstrap: str, topic: str, partitions: int) -> tuple[dict, dict]:
    """Everything in every partition: ({(p, offset): (key, value)}, {p: (low, high)})."""
    return logreader.read_log(bootstrap, topic, partitions, "cluster-test-reader", READ_DEADLINE_S)


def verify(label: str, c: clusterctl.Cluster, topic: str, partitions: int, acks: list[Ack], sent,
           idempotent: bool, extra_values: set[str] = frozenset(), forbidden: set[str] = frozenset()) -> bool:
    """Check acks taken *before* reading against the log as read now. `sent()`, called after
    reading, bounds the stream's values that may be in the log (a stream may still be running);
    `extra_values` may be in the log besides the stream's; `forbidden` values must not be."""
    try:
        log, marks = read_log(c.bootstrap(c.responsive()), topic, partitions)
    except logreader.ReadError as e:
        print(f"  {label}: FAIL: cannot read the log: {e}")
        return False
    sent = sent()
    errors: dict[str, list[str]] = {}

    def err(kind: str, msg: str) -> None:
        errors.setdefault(kind, []).append(msg)

    acked_at: dict[tuple[int, int], Ack] = {}
    key_partition: dict[str, int] = {}
    by_key: dict[str, list[Ack]] = {}
    for a in acks:
        prev = acked_at.get((a.partition, a.offset))
        if prev is not None and prev.value != a.value:
            err("offset acked twice (OffsetsUnique)",
                f"p{a.partition}@{a.offset} acked for {prev.value[:10]} (phase {prev.phase}) and {a.value[:10]} (phase {a.phase})")
        acked_at[(a.partition, a.offset)] = a
        if a.partition not in marks:
            err("ack for an unknown partition", f"p{a.partition}@{a.offset}")
            continue
        have = log.get((a.partition, a.offset))
        if have is None:
            err("acked record lost (NoLostWrite)", f"p{a.partition}@{a.offset} {a.value[:10]} (acked in phase {a.phase})")
        elif have[1] != a.value:
            err("acked record changed (NoLostWrite)", f"p{a.partition}@{a.offset} holds {str(have[1])[:10]}, ack was for {a.value[:10]}")
        if a.offset >= marks[a.partition][1]:
            err("high watermark below an acked offset", f"p{a.partition}: high watermark {marks[a.partition][1]}, acked {a.offset}")
        if a.seq is not None and a.seq >= 0:
            if key_partition.setdefault(a.key, a.partition) != a.partition:
                err("one key in two partitions", f"{a.key} acked in p{key_partition[a.key]} and p{a.partition}")
            by_key.setdefault(a.key, []).append(a)
    for key, key_acks in by_key.items():
        key_acks.sort(key=lambda a: a.seq)
        for x, y in zip(key_acks, key_acks[1:]):
            if y.offset <= x.offset and x.partition == y.partition:
                err("per-key produce order broken", f"{key}: seq {x.seq} at p{x.partition}@{x.offset}, later seq {y.seq} at @{y.offset}")
                break
    seen: dict[str, tuple[int, int]] = {}
    dups = unknown = 0
    acked_values = {a.value for a in acks}
    for (p, off), (_key, value) in sorted(log.items()):
        if value in forbidden:
            err("record written although the produce failed", f"p{p}@{off} {value[:30]}")
        if value not in extra_values and value not in forbidden:
            s = seq_of(value or "")
            if s is None or s >= sent:
                unknown += 1
                err("unknown record in the log", f"p{p}@{off} value {str(value)[:30]!r}")
        if value in seen:
            dups += 1
            if idempotent:
                kind = "acked value duplicated (idempotence)" if value in acked_values else "unacked value duplicated (idempotence)"
                err(kind, f"{str(value)[:10]} at p{seen[value][0]}@{seen[value][1]} and p{p}@{off}")
        else:
            seen[value] = (p, off)
    unacked = sum(1 for k in log if k not in acked_at)
    print(f"  {label}: {len(acks)} acks checked against {len(log)} records (sent {sent}, unacked present {unacked}, "
          f"duplicated values {dups}); watermarks {dict(sorted(marks.items()))}")
    for kind, msgs in errors.items():
        print(f"     FAIL {kind}: {len(msgs)}, e.g.")
        for m in msgs[:MAX_EXAMPLES]:
            print(f"       - {m}")
    return not errors


def settle_and_compare(c: clusterctl.Cluster, topic: str, partitions: int) -> bool:
    """Producing has stopped: wait until every replica is caught up, note each partition's high
    watermark, SIGTERM the cluster (every node must exit 0), and compare the committed batches
    of the three replicas byte for byte."""
    t0 = time.monotonic()
    hws = c.wait_caught_up(topic, partitions)
    print(f"  all replicas caught up in {time.monotonic() - t0:.1f}s; high watermarks {dict(sorted(hws.items()))}")
    c.check_alive()
    statuses = c.stop_all()
    ok = True
    bad = {n: s for n, s in statuses.items() if s != 0}
    if bad:
        print(f"  FAIL clean shutdown (SIGTERM): exit status by node {bad}, want 0 (-9: still running after {clusterctl.STOP_TIMEOUT_S}s)")
        ok = False
    else:
        print(f"  SIGTERM: nodes {sorted(statuses)} exited 0")
    for p in range(partitions):
        dirs = {n: os.path.join(node.data_dir, f"{topic}-{p}") for n, node in c.nodes.items()}
        same, lines = clusterctl.compare_replicas(dirs, hws[p])
        if same:
            print(f"  p{p}: committed logs identical on all 3 nodes ({lines[0].split(': ', 1)[1]})")
        else:
            ok = False
            print(f"  FAIL p{p}: committed logs differ (below high watermark {hws[p]}):")
            for line in lines:
                print(f"       {line}")
    return ok


# --------------------------------------------------------------------------------------------
# Scenarios


class Run:
    """One test run: its temp dir, the brokers it started, its seed."""

    def __init__(self, test: str, seed: int):
        self.test = test
        self.seed = seed
        self.rng = random.Random(seed)
        self.workdir = tempfile.mkdtemp(prefix=f"sluice-cluster-{test}-")
        self.cluster: clusterctl.Cluster | None = None
        self.single: brokerctl.Broker | None = None

    def start_cluster(self) -> clusterctl.Cluster:
        c = clusterctl.Cluster(self.workdir, extra_args=["--auto-create-topics", "false"])
        self.cluster = c
        print(f"  cluster: {c.describe()}")
        t0 = time.monotonic()
        c.start()
        controller = c.wait_controller()
        c.wait_registered()
        print(f"  all 3 nodes ready, controller n{controller}, every broker registered, in {time.monotonic() - t0:.1f}s")
        return c

    def log_tails(self) -> str:
        out = []
        if self.cluster:
            out.append(self.cluster.log_tails())
        if self.single and self.single.starts:
            out.append(f"  single-node broker log tail ({self.single.log_path}):\n{self.single.log_tail()}")
        return "\n".join(x for x in out if x)


def wait_failover_acks(c: clusterctl.Cluster, stream: Stream, phase: int, partitions: int) -> None:
    def probe():
        if stream.fatal:
            raise Fail(f"producer fatal error: {stream.fatal}")
        counts = stream.acks_by_partition(phase)
        short = {p: counts.get(p, 0) for p in range(partitions) if counts.get(p, 0) < FAILOVER_MIN_ACKS}
        return not short, counts, f"acks per partition in this phase: {dict(sorted(counts.items()))}; {stream.summary()}"

    wait_until(f"every partition acks >= {FAILOVER_MIN_ACKS} records with a node down", FAILOVER_ACKS_TIMEOUT_S,
               probe, c.check_alive)


def scenario_failover(run: Run, a, idempotent: bool) -> bool:
    topic = "failover"
    P = a.partitions
    c = run.start_cluster()
    create_topic(c, topic, P)
    stream = Stream(c.bootstrap(), topic, idempotent)
    stream.start()
    ok = True
    try:
        time.sleep(a.up_seconds)
        leaders = c.wait_leaders(topic, P)
        chosen = run.rng.randrange(P)
        victim = leaders[chosen]
        led = sorted(p for p, lead in leaders.items() if lead == victim)
        before = len(stream.snapshot())
        if before == 0:
            raise Fail(f"no acks in {a.up_seconds}s before the crash: {stream.summary()}")
        c[victim].kill9()
        t_kill = time.monotonic()
        stream.phase = 1
        print(f"  killed (-9) n{victim}, leader of partitions {led} (chose p{chosen}), after {before} acks")
        new_leaders = c.wait_leaders(topic, P)
        print(f"  new leaders {dict(sorted(new_leaders.items()))} agreed by nodes {c.responsive()} "
              f"{time.monotonic() - t_kill:.1f}s after the kill")
        wait_failover_acks(c, stream, 1, P)
        print(f"  every partition acks again with n{victim} down ({time.monotonic() - t_kill:.1f}s after the kill): "
              f"{dict(sorted(stream.acks_by_partition(1).items()))}")
        time.sleep(a.down_seconds)
        t0 = time.monotonic()
        c[victim].start()
        stream.phase = 2
        print(f"  restarted n{victim} on its data dir, ready in {time.monotonic() - t0:.1f}s")
        c.wait_caught_up(topic, P)
        print(f"  n{victim} caught up on every partition while the stream goes on, "
              f"{time.monotonic() - t0:.1f}s after the restart")
        time.sleep(TAIL_SECONDS)
    except BaseException:
        stream.abandon()
        raise
    stopped, acks = stream.stop_and_report()
    ok &= stopped
    if not any(x.phase == 2 for x in acks):
        print("  FAIL no acks after the restart")
        ok = False
    extra: set[str] = set()
    forbidden: set[str] = set()
    if idempotent:
        raw_ok, raw_acks, extra, forbidden = check_wrong_broker(c, topic, P)
        ok &= raw_ok
        acks += raw_acks
    ok &= verify("final", c, topic, P, acks, lambda: stream.sent, idempotent, extra, forbidden)
    ok &= settle_and_compare(c, topic, P)
    return ok


def check_wrong_broker(c: clusterctl.Cluster, topic: str, partitions: int) -> tuple[bool, list[Ack], set[str], set[str]]:
    """A Produce v3 (one record, acks=all) sent to a follower must get NOT_LEADER_OR_FOLLOWER
    and write nothing; the same request to the leader must succeed (so the request itself is
    sound). Returns (ok, acks of raw records, values that may be in the log, values that must
    not be)."""
    allowed: set[str] = set()
    forbidden: set[str] = set()
    for attempt in range(3):
        leaders = c.wait_leaders(topic, partitions)
        p = attempt % partitions
        lead = leaders[p]
        follower = min(n for n in c.responsive() if n != lead)
        value = f"raw-to-follower-{attempt}"
        node = c[follower]
        err, base = clusterctl.produce_v3(node.host, node.kafka_port, topic, p, b"raw", value.encode())
        still = c.stable_leader(topic, p)[0]
        if err == clusterctl.ERROR_NOT_LEADER_OR_FOLLOWER:
            forbidden.add(value)
            print(f"  raw Produce v3 to follower n{follower} of {topic}-{p} (leader n{lead}): "
                  f"error 6 NOT_LEADER_OR_FOLLOWER, as it must")
            break
        allowed.add(value)  # whatever happened to it, leadership was not what we thought
        if still != lead:
            print(f"  raw Produce v3 to n{follower}: error {err}, but leadership of p{p} moved (n{lead} -> n{still}); again")
            continue
        print(f"  FAIL raw Produce v3 to follower n{follower} of {topic}-{p} (leader n{lead} throughout): "
              f"error {err} base offset {base}, want error 6 NOT_LEADER_OR_FOLLOWER")
        return False, [], allowed, forbidden
    else:
        print("  FAIL leadership kept moving; could not send a produce to a follower")
        return False, [], allowed, forbidden
    node = c[lead]
    value = "raw-to-leader"
    allowed.add(value)
    err, base = clusterctl.produce_v3(node.host, node.kafka_port, topic, p, b"raw", value.encode())
    if err != clusterctl.ERROR_NONE:
        print(f"  FAIL control: the same raw Produce v3 to leader n{lead} of {topic}-{p}: error {err}, want 0")
        return False, [], allowed, forbidden
    print(f"  control: the same raw Produce v3 to leader n{lead}: ok at offset {base}")
    return True, [Ack(p, base, value, "raw", -1, 3)], allowed, forbidden


def scenario_leader_crash(run: Run, a) -> bool:
    return scenario_failover(run, a, idempotent=False)


def scenario_idempotent_failover(run: Run, a) -> bool:
    return scenario_failover(run, a, idempotent=True)


def scenario_whole_crash(run: Run, a) -> bool:
    topic = "whole-crash"
    P = a.partitions
    c = run.start_cluster()
    create_topic(c, topic, P)
    stream = Stream(c.bootstrap(), topic, idempotent=False)
    stream.start()
    ok = True
    try:
        for cycle in range(1, a.cycles + 1):
            time.sleep(a.up_seconds)
            if stream.fatal:
                break
            before = len(stream.snapshot())
            c.kill9_all()
            stream.phase = cycle
            print(f"  cycle {cycle}: killed (-9) all three nodes after {before} acks in total")
            time.sleep(0.3)  # the producer sees connection errors and keeps queueing
            t0 = time.monotonic()
            c.start()
            controller = c.wait_controller()
            leaders = c.wait_leaders(topic, P)
            print(f"  cycle {cycle}: restarted all three, controller n{controller}, leaders "
                  f"{dict(sorted(leaders.items()))} within {time.monotonic() - t0:.1f}s")
            ok &= verify(f"cycle {cycle} after restart", c, topic, P, stream.snapshot(), lambda: stream.sent, False)
        time.sleep(TAIL_SECONDS)
    except BaseException:
        stream.abandon()
        raise
    stopped, acks = stream.stop_and_report()
    ok &= stopped
    phases = {x.phase for x in acks}
    if len(phases) < a.cycles + 1:
        print(f"  FAIL acks came in phases {sorted(phases)}; every cluster life 0..{a.cycles} should ack something")
        ok = False
    ok &= verify("final", c, topic, P, acks, lambda: stream.sent, False)
    ok &= settle_and_compare(c, topic, P)
    return ok


def produce_n(bootstrap: str, topic: str, n: int, first_seq: int, phase: int) -> tuple[list[Ack], list[str]]:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                  "message.timeout.ms": MESSAGE_TIMEOUT_MS, "socket.connection.setup.timeout.ms": 5000})
    acks: list[Ack] = []
    errors: list[str] = []

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            v = msg.value().decode()
            acks.append(Ack(msg.partition(), msg.offset(), v, msg.key().decode(), seq_of(v), phase))

    for seq in range(first_seq, first_seq + n):
        p.produce(topic, key=f"k{seq % NUM_KEYS}", value=value_for(seq), on_delivery=cb)
    left = p.flush(FLUSH_TIMEOUT_S)
    if left:
        errors.append(f"{left} records neither acked nor failed after {FLUSH_TIMEOUT_S}s")
    return acks, errors


def scenario_controller_pause(run: Run, a) -> bool:
    topic = "after-pause"
    P = 3
    c = run.start_cluster()
    old = c.wait_controller()
    others = [n for n in clusterctl.NODE_IDS if n != old]
    c[old].pause()
    t_pause = time.monotonic()
    print(f"  paused (SIGSTOP) controller n{old}")
    ok = True
    try:
        new = c.wait_controller(nodes=others, not_ids=(old,))
        print(f"  nodes {others} agree on new controller n{new} {time.monotonic() - t_pause:.1f}s after the pause")
        create_topic(c, topic, P, via=[n for n in others if n != new] or others)
        acks, errors = produce_n(c.bootstrap(others), topic, 30, 0, phase=0)
        if errors or len(acks) != 30:
            raise Fail(f"acks=all produce to {topic} with n{old} paused: {len(acks)}/30 acked, errors {errors[:3]}")
        print(f"  30 acks=all records to {topic} acked with n{old} paused "
              f"({time.monotonic() - t_pause:.1f}s after the pause)")
        paused_for = time.monotonic() - t_pause
        if paused_for < a.pause_seconds:
            time.sleep(a.pause_seconds - paused_for)
    finally:
        if c[old].alive() and c[old].paused:
            c[old].resume()
    t_resume = time.monotonic()
    print(f"  resumed (SIGCONT) n{old} after {t_resume - t_pause:.1f}s")

    def controller_probe():
        views = c.controller_views()
        return all(v == new for v in views.values()), None, f"controller_id by node: {views} (want n{new} everywhere)"

    try:
        wait_until(f"n{old} reports the new controller n{new}", clusterctl.CONTROLLER_TIMEOUT_S, controller_probe, c.check_alive)
        print(f"  n{old} reports controller n{new} {time.monotonic() - t_resume:.1f}s after SIGCONT")
    except Fail as e:
        print(f"  FAIL {e}")
        ok = False
    c.wait_metadata(topic, P, nodes=[old])
    c.wait_leaders(topic, P)
    c.wait_caught_up(topic, P)
    print(f"  n{old} lists {topic} in its Metadata, has a replica of every partition (/v1/partitions) and is caught up, "
          f"{time.monotonic() - t_resume:.1f}s after SIGCONT")
    ok &= verify("after resume", c, topic, P, acks, lambda: 30, False)
    statuses = c.stop_all()
    bad = {n: s for n, s in statuses.items() if s != 0}
    if bad:
        print(f"  FAIL clean shutdown (SIGTERM): exit status by node {bad}, want 0")
        ok = False
    return ok


def bench_once(label: str, bootstrap: str, topic: str, records: int, max_seconds: float) -> dict:
    """Saturating: --records (or --max-seconds of) 1 KiB records as fast as the client queue
    allows; then a paced light load for the latency without client-side queueing. Returns the
    figures plus the delivery totals (sent, acked, failed, left) over every phase."""
    payload = random.Random(7).randbytes(BENCH_VALUE_BYTES)
    errors: list[str] = []
    latencies: list[float] = []
    last = [0.0]
    totals = {"sent": 0, "acked": 0, "left": 0}

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        totals["acked"] += 1
        latencies.append(msg.latency())
        last[0] = time.monotonic()

    def producer(linger_ms: int) -> Producer:
        return Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": linger_ms,
            "compression.type": "none",
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "queue.buffering.max.messages": BENCH_QUEUE_RECORDS,
        })

    def warm_up(p: Producer, n: int) -> None:  # connections, metadata, first batches: not measured
        for _ in range(n):
            p.produce(topic, value=payload, on_delivery=cb)
        totals["sent"] += n
        if p.flush(FLUSH_TIMEOUT_S) or errors:
            raise Fail(f"bench {label}: warm-up produce failed: {errors[:3]}")
        latencies.clear()

    def pct(lat: list[float], q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")

    p = producer(linger_ms=5)
    warm_up(p, BENCH_WARMUP_RECORDS)
    sent = 0
    t0 = time.monotonic()
    while sent < records and time.monotonic() - t0 < max_seconds:
        try:
            p.produce(topic, value=payload, on_delivery=cb)
            sent += 1
        except BufferError:
            p.poll(0.005)
            continue
        p.poll(0)
    totals["sent"] += sent
    totals["left"] += p.flush(FLUSH_TIMEOUT_S)
    elapsed = max(last[0] - t0, 1e-9)
    lat = sorted(latencies)
    r = {"elapsed": elapsed, "rps": len(lat) / elapsed, "mbps": len(lat) * BENCH_VALUE_BYTES / elapsed / 1e6,
         "p50": pct(lat, 0.50), "p99": pct(lat, 0.99), "max": lat[-1] * 1000 if lat else float("nan")}
    print(f"  bench {label}: {len(lat)}/{sent} records of {BENCH_VALUE_BYTES} B acked in {elapsed:.2f}s: "
          f"{r['rps']:.0f} records/s, {r['mbps']:.1f} MB/s; acks=all latency (client queue included) "
          f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms")

    # The light load gets a producer without linger, so its latency is the broker's round trip.
    p = producer(linger_ms=0)
    warm_up(p, BENCH_WARMUP_RECORDS // 10)
    t0 = time.monotonic()
    for i in range(BENCH_PACED_RECORDS):
        while (ahead := i / BENCH_PACED_RATE_PER_S - (time.monotonic() - t0)) > 0:
            p.poll(ahead)  # returns early whenever it served a delivery report
        p.produce(topic, value=payload, on_delivery=cb)
        p.poll(0)
    totals["sent"] += BENCH_PACED_RECORDS
    totals["left"] += p.flush(FLUSH_TIMEOUT_S)
    lat = sorted(latencies)
    r.update(light_p50=pct(lat, 0.50), light_p99=pct(lat, 0.99))
    print(f"  bench {label}: at {BENCH_PACED_RATE_PER_S} records/s, acks=all latency p50 {r['light_p50']:.1f} ms, "
          f"p99 {r['light_p99']:.1f} ms ({len(lat)} records)")
    r.update(totals, failed=len(errors), errors=errors[:3])
    return r


def scenario_bench(run: Run, a) -> bool:
    topic = "bench"
    P = 6
    ok = True
    results = {}
    # Single node first: plainly started as the other system tests do (no --peers).
    single = brokerctl.Broker(run.workdir, extra_args=["--auto-create-topics", "false"], name="bench-single")
    run.single = single
    try:
        single.start()
    except SystemExit as e:  # brokerctl reports a failed start this way
        raise Fail(f"single-node broker: {e}") from None
    print(f"  single node: {single.bootstrap}, data dir {single.data_dir}")
    admin = AdminClient({"bootstrap.servers": single.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=P, replication_factor=1)])[topic].result(60)

    def visible():
        t = admin.list_topics(topic, timeout=10).topics.get(topic)
        n = len(t.partitions) if t is not None and t.error is None else 0
        return n == P, None, f"{n} partitions listed"

    wait_until(f"{topic} visible on the single node", 30, visible)
    results["single"] = bench_once("single node, RF=1", single.bootstrap, topic, a.records, a.max_seconds)
    status = single.stop()
    if status != 0:
        print(f"  FAIL single-node broker: SIGTERM exit status {status}, want 0")
        ok = False
    c = run.start_cluster()
    create_topic(c, topic, P)
    results["cluster"] = bench_once("3 nodes, RF=3", c.bootstrap(), topic, a.records, a.max_seconds)
    statuses = c.stop_all()
    bad = {n: s for n, s in statuses.items() if s != 0}
    if bad:
        print(f"  FAIL clean shutdown (SIGTERM): exit status by node {bad}, want 0")
        ok = False
    s, cl = results["single"], results["cluster"]

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}x" if y and y == y and x == x else "n/a"

    print(f"  bench ratio 3-node RF=3 / single node: throughput {ratio(cl['rps'], s['rps'])}, "
          f"p50 latency {ratio(cl['p50'], s['p50'])}, p99 latency {ratio(cl['p99'], s['p99'])}; "
          f"at {BENCH_PACED_RATE_PER_S} records/s: p50 {ratio(cl['light_p50'], s['light_p50'])}, "
          f"p99 {ratio(cl['light_p99'], s['light_p99'])}")
    for label, r in results.items():
        if r["failed"] or r["left"] or r["acked"] != r["sent"]:
            print(f"  FAIL bench {label}: {r['failed']} failed and {r['left']} unfinished deliveries "
                  f"of {r['sent']} (e.g. {r['errors']})")
            ok = False
    return ok


DECOMMISSIONED = 3


def wait_placement(c: clusterctl.Cluster, topic: str, partitions: int, want, what: str) -> dict:
    """Until Metadata v1 from every responsive node shows every partition with a leader and
    replicas for which `want(replicas)` holds; returns {partition: (leader, replicas)}."""

    def probe():
        seen, problems = {}, []
        for n in c.responsive():
            try:
                md = clusterctl.metadata_v1(clusterctl.HOSTS[n], c.kafka_port, [topic])
            except OSError as e:
                problems.append(f"n{n}: {e}")
                continue
            parts = md["topics"].get(topic, {}).get("partitions", {})
            for p in range(partitions):
                info = parts.get(p)
                if info is None or info["leader"] < 0 or not want(sorted(info["replicas"])):
                    problems.append(f"n{n} p{p}: {info}")
                else:
                    seen[p] = (info["leader"], sorted(info["replicas"]))
        return not problems, seen, " | ".join(problems[:3])

    return clusterctl.wait_until(what, clusterctl.CATCH_UP_TIMEOUT_S, probe, c.check_alive)


def scenario_decommission(run: Run, a) -> bool:
    """`sluice cluster decommission 3` while keyed acks=all records stream into a topic of RF 2
    spread over all three nodes: every replica on n3 moves to n1 and n2 (learner, promotion,
    leadership handed over, removal), every acknowledged record survives in per-key order, n3
    deletes its copies, and the replicas on n1 and n2 end byte-identical."""
    topic = "draining"
    P = a.partitions
    c = run.start_cluster()
    assignment = [[p % 3 + 1, (p + 1) % 3 + 1] for p in range(P)]
    admin = AdminClient({"bootstrap.servers": c.bootstrap(), "socket.connection.setup.timeout.ms": 5000})
    admin.create_topics([NewTopic(topic, num_partitions=P, replica_assignment=assignment)], operation_timeout=10)[topic].result(30)
    placed = wait_placement(c, topic, P, lambda r: len(r) == 2, f"{topic}: leaders on every node's Metadata")
    on_n3 = sorted(p for p, (_, replicas) in placed.items() if DECOMMISSIONED in replicas)
    print(f"  created {topic}: {P} partitions, RF 2, assignment {assignment}; n{DECOMMISSIONED} holds {on_n3}")
    stream = Stream(c.bootstrap(), topic, idempotent=False)
    stream.start()
    ok = True
    try:
        time.sleep(a.up_seconds)
        if not stream.snapshot():
            raise Fail(f"no acks in {a.up_seconds}s: {stream.summary()}")
        stream.phase = 1
        binary = os.environ.get("SLUICE_BIN") or os.path.join(brokerctl.ROOT, "target", "release", "sluice")
        admin_addr = f"{clusterctl.HOSTS[1]}:{c.admin_port}"
        t0 = time.monotonic()
        done = subprocess.run([binary, "--brokers", c.bootstrap(), "cluster", "decommission", str(DECOMMISSIONED), "--admin-addr", admin_addr,
                               "--timeout-s", str(int(clusterctl.CATCH_UP_TIMEOUT_S))],
                              capture_output=True, text=True, timeout=clusterctl.CATCH_UP_TIMEOUT_S + 30)
        print(f"  `sluice cluster decommission {DECOMMISSIONED}` exited {done.returncode} after "
              f"{time.monotonic() - t0:.1f}s: {done.stdout.strip()} {done.stderr.strip()[-300:]}")
        if done.returncode != 0:
            raise Fail("decommission failed")
        moved = wait_placement(c, topic, P, lambda r: DECOMMISSIONED not in r and len(r) == 2,
                               f"{topic}: no replica on n{DECOMMISSIONED} in any node's Metadata")
        print(f"  placement now {dict(sorted(moved.items()))}")
        stream.phase = 2
        time.sleep(TAIL_SECONDS)
    except BaseException:
        stream.abandon()
        raise
    stopped, acks = stream.stop_and_report()
    ok &= stopped
    if not any(x.phase == 2 for x in acks):
        print("  FAIL no acks after the decommission")
        ok = False
    ok &= verify("final", c, topic, P, acks, lambda: stream.sent, False)
    leftovers = []
    for p in range(P):
        d = os.path.join(c[DECOMMISSIONED].data_dir, f"{topic}-{p}")
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            data = name.endswith(".log") or name.startswith("raft") or name.startswith("hard")
            if data and os.path.getsize(os.path.join(d, name)) > 0:
                leftovers.append(f"{topic}-{p}/{name}")
    if leftovers:
        print(f"  FAIL n{DECOMMISSIONED} still holds data: {leftovers[:6]}")
        ok = False
    else:
        print(f"  n{DECOMMISSIONED} holds no data of {topic}")
    hws = c.wait_caught_up(topic, P, nodes=[1, 2])
    statuses = c.stop_all()
    if any(st != 0 for st in statuses.values()):
        print(f"  FAIL clean shutdown: exit status by node {statuses}")
        ok = False
    for p in range(P):
        dirs = {n: os.path.join(c[n].data_dir, f"{topic}-{p}") for n in (1, 2)}
        same, lines = clusterctl.compare_replicas(dirs, hws[p])
        if not same:
            ok = False
            print(f"  FAIL p{p}: committed logs differ on n1 and n2 (below {hws[p]}):")
            for line in lines:
                print(f"       {line}")
    if ok:
        print(f"  every partition's committed log is identical on n1 and n2 (high watermarks {dict(sorted(hws.items()))})")
    return ok


TESTS = {
    "decommission": scenario_decommission,
    "leader-crash": scenario_leader_crash,
    "whole-crash": scenario_whole_crash,
    "controller-pause": scenario_controller_pause,
    "idempotent-failover": scenario_idempotent_failover,
    "bench": scenario_bench,
}


def replay_command(argv: list[str], seed: int) -> str:
    args, skip = [], False
    for x in argv:
        if skip:
            skip = False
            continue
        if x == "--seed":
            skip = True
            continue
        if x.startswith("--seed="):
            continue
        args.append(x)
    env = f"SLUICE_BIN={shlex.quote(os.environ['SLUICE_BIN'])} " if os.environ.get("SLUICE_BIN") else ""
    py = os.path.relpath(sys.executable, brokerctl.ROOT) if sys.executable.startswith(brokerctl.ROOT) else sys.executable
    return (f"cd {shlex.quote(brokerctl.ROOT)} && {env}{py} {RUN_SCRIPT} "
            f"{' '.join(shlex.quote(x) for x in args)} --seed {seed}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("test", choices=sorted(TESTS))
    ap.add_argument("--seed", type=int, default=None, help="fixes the test's choices (default: random)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir even on success")
    ap.add_argument("--partitions", type=int, default=6, help="leader-crash, whole-crash, idempotent-failover")
    ap.add_argument("--up-seconds", type=float, default=3.0, help="streaming before each crash")
    ap.add_argument("--down-seconds", type=float, default=2.0, help="failover: streaming on after every partition acks again")
    ap.add_argument("--cycles", type=int, default=2, help="whole-crash: crash/restart cycles")
    ap.add_argument("--pause-seconds", type=float, default=5.0, help="controller-pause: minimum SIGSTOP time")
    ap.add_argument("--records", type=int, default=100000, help="bench: records per broker setup")
    ap.add_argument("--max-seconds", type=float, default=20.0, help="bench: producing time limit per setup")
    a = ap.parse_args()
    brokerctl.install_signal_handlers()
    if brokerctl.kind() != "sluice":
        print(f"cluster test {a.test}: needs Sluice (SYSTEM_TEST_BROKER={brokerctl.kind()}); FAIL")
        return 1
    seed = a.seed if a.seed is not None else random.randrange(1_000_000)
    run = Run(a.test, seed)
    print(f"cluster test {a.test}: seed {seed}, work dir {run.workdir}")
    ok = False
    t0 = time.monotonic()
    try:
        ok = TESTS[a.test](run, a)
    except Fail as e:
        print(f"  FAIL {e}")
    except KafkaException as e:
        print(f"  FAIL Kafka client error: {e}")
    except SystemExit as e:  # SIGTERM/SIGINT (e.g. tests/run-system's time limit)
        print(f"  FAIL interrupted (exit {e.code}) after {time.monotonic() - t0:.0f}s")
    except Exception:  # a bug here, or an unexpected answer: still clean up and report
        traceback.print_exc(file=sys.stdout)
        print("  FAIL unexpected exception (above)")
    finally:
        brokerctl.kill_all()
    if ok and not a.keep:
        shutil.rmtree(run.workdir, ignore_errors=True)
    else:
        if not ok:
            tails = run.log_tails()
            if tails:
                print(tails)
        print(f"  broker logs and data kept in {run.workdir}")
    if not ok:
        print(f"replay: {replay_command(sys.argv[1:], seed)}")
    print(f"cluster test {a.test}: {'PASS' if ok else 'FAIL'}")
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
