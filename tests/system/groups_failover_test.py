#!/usr/bin/env python3
"""Group coordinator failover on a 3-node Sluice cluster (issue 6), with confluent-kafka.

Usage: groups_failover_test.py [--keep]

Scenario (clusterctl.py: node N on 127.0.0.N; topic of 6 partitions, RF 3):
  1. 300 keyed acks=all records; two consumers in one group (session.timeout.ms 10000, manual
     synchronous commits) split the partitions 3/3 and consume everything; both commit. The
     first FindCoordinator creates __consumer_offsets (50 partitions, RF 3) in the cluster.
  2. DescribeGroups (AdminClient) names the coordinator; it must be the leader (GET
     /v1/partitions) of the group's __consumer_offsets partition (Kafka's partitionFor:
     abs(groupId.hashCode()) % 50). The committed offsets (OffsetFetch) must be exactly what
     the synchronous commits acknowledged, which lies between the consumed end (last offset
     read + 1) and the log end (a position also moves past a new leader's control batch).
  3. The coordinator is killed with -9. Within a bound, DescribeGroups must name another
     coordinator, and OffsetFetch from it must return exactly the offsets committed before
     the kill (they were acknowledged, so they are durable on a majority).
  4. 120 records produced after the kill must be consumed by the same two consumers (they
     find the new coordinator and keep or rejoin the group); their commits must succeed
     (retriable coordinator errors are retried within the bound and shown); the committed
     offsets afterwards are >= those before the kill for every partition and are what the
     commits acknowledged (as above). DescribeGroups: Stable, both members, all partitions
     assigned.
  5. The killed node restarts on its data dir; leadership of the offsets partition may come
     back to it (preferred replica). 60 more records are consumed and committed the same way,
     and OffsetFetch again returns what the commits acknowledged.
  6. The consumers close (LeaveGroup); SIGTERM to the cluster: every node must exit 0.
Every wait has a deadline; on failure the work dir (broker logs) is kept and log tails are
printed. GROUPS_DEBUG=1 adds librdkafka's `debug=cgrp` to the consumers (stderr).
The last line is `groups failover test: PASS` or `... FAIL`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
import cluster_test  # noqa: E402
import logreader  # noqa: E402
from clusterctl import Fail, wait_until  # noqa: E402
from confluent_kafka import (  # noqa: E402
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient  # noqa: E402

TOPIC = "orders"
PARTITIONS = 6
OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_PARTITIONS = 50
NUM_KEYS = 37
SESSION_TIMEOUT_MS = 10000
HEARTBEAT_INTERVAL_MS = 1000
JOIN_DEADLINE_S = 120  # the first FindCoordinator creates 50 RF-3 partitions first
CONSUME_DEADLINE_S = 60
FAILOVER_DEADLINE_S = 60  # a new coordinator answers, the group consumes again
COMMIT_DEADLINE_S = 30
ADMIN_TIMEOUT_S = 15
MAX_SHOWN = 8
DEBUG = os.environ.get("GROUPS_DEBUG") == "1"


def log(msg: str) -> None:
    print(msg, flush=True)


def java_string_hash(s: str) -> int:
    """Java's String.hashCode (UTF-16 code units; group ids here are ASCII)."""
    data = s.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def offsets_partition(group: str) -> int:
    """Kafka's GroupCoordinator.partitionFor: Utils.abs(groupId.hashCode) % partitions."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % OFFSETS_PARTITIONS


# Java: "hello".hashCode() == 99162322, "abc" 96354, "polygenelubricants" Integer.MIN_VALUE.
assert (java_string_hash("hello"), java_string_hash("abc")) == (99162322, 96354), "String.hashCode self-test"
assert java_string_hash("polygenelubricants") == -(1 << 31) and offsets_partition("polygenelubricants") == 0


class Member:
    def __init__(self, name: str, bootstrap: str, group: str):
        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000,
            "socket.connection.setup.timeout.ms": 5000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        }
        if DEBUG:
            conf["debug"] = "cgrp"
        self.name = name
        self.c = Consumer(conf)
        self.got: list[tuple[int, int, bytes]] = []
        self.errors: list[str] = []
        self.closed = False
        self.c.subscribe([TOPIC])

    def poll(self, timeout: float) -> None:
        m = self.c.poll(timeout)
        if m is None:
            return
        if m.error():
            self.errors.append(f"{time.strftime('%H:%M:%S')} {self.name}: {m.error()}")
            return
        self.got.append((m.partition(), m.offset(), m.value()))

    def assigned(self) -> list[int]:
        return [] if self.closed else sorted(tp.partition for tp in self.c.assignment())

    def commit_sync(self, deadline_s: float, pump_others) -> tuple[list[str], dict[int, int]]:
        """Commit the consumer's positions; retriable errors (coordinator moving) are retried
        until the deadline while the others keep polling. Returns the retried errors and
        {partition: offset} as the commit acknowledged it."""
        t0 = time.monotonic()
        retried = []
        while True:
            try:
                done = self.c.commit(asynchronous=False) or []
                bad = [f"p{tp.partition}: {tp.error}" for tp in done if tp.error is not None]
                if bad:
                    raise Fail(f"{self.name}: commit answered per-partition errors {bad}")
                return retried, {tp.partition: tp.offset for tp in done if tp.topic == TOPIC}
            except KafkaException as e:
                err = e.args[0]
                if err.code() == KafkaError._NO_OFFSET:
                    return retried, {}
                if not err.retriable() or time.monotonic() - t0 > deadline_s:
                    raise Fail(f"{self.name}: synchronous commit failed: {err} (retried before: {retried[-3:]})") from e
                retried.append(str(err))
                pump_others(0.5)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.c.close()


class Scenario:
    def __init__(self, run: cluster_test.Run):
        self.run = run
        self.c: clusterctl.Cluster | None = None
        self.members: list[Member] = []
        self.acked: dict[tuple[int, int], bytes] = {}
        self.group = f"failover-group-{os.getpid()}"
        self.problems: list[str] = []
        self.commits: dict[int, int] = {}  # {partition: offset} the last commits acknowledged

    # -- helpers -----------------------------------------------------------------------------

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.c.bootstrap(self.c.responsive()),
                            "socket.connection.setup.timeout.ms": 5000})

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for m in self.members:
                if not m.closed:
                    m.poll(0.05)

    def pump_until(self, what: str, limit_s: float, done, detail=lambda: "") -> float:
        t0 = time.monotonic()
        while True:
            self.c.check_alive()
            self.pump(0.2)
            if done():
                return time.monotonic() - t0
            if time.monotonic() - t0 > limit_s:
                raise Fail(f"{what}: not within {limit_s:.0f}s; {self.state()} {detail()}")

    def state(self) -> str:
        errs = [e for m in self.members for e in m.errors][-4:]
        return ("assignments " + ", ".join(f"{m.name}={m.assigned()} ({len(m.got)} read)" for m in self.members)
                + (f"; last consumer errors {errs}" if errs else ""))

    def consumed(self) -> dict[tuple[int, int], bytes]:
        return {(p, o): v for m in self.members for p, o, v in m.got}

    def all_consumed(self) -> bool:
        seen = self.consumed()
        return all(k in seen for k in self.acked)

    def consumed_ends(self) -> dict[int, int]:
        out = {}
        for p, o in self.consumed():
            out[p] = max(out.get(p, 0), o + 1)
        return out

    def produce(self, n: int, phase: str) -> None:
        """n keyed acks=all records; the consumers keep polling while they are acknowledged."""
        p = Producer({"bootstrap.servers": self.c.bootstrap(self.c.responsive()), "acks": "all",
                      "linger.ms": 5, "message.timeout.ms": 30000, "partitioner": "murmur2_random",
                      "socket.connection.setup.timeout.ms": 5000})
        errors: list[str] = []
        left = [n]

        def cb(err, msg):
            left[0] -= 1
            if err is not None:
                errors.append(str(err))
            else:
                self.acked[(msg.partition(), msg.offset())] = msg.value()

        for seq in range(n):
            p.produce(TOPIC, key=f"k{seq % NUM_KEYS}", value=f"{phase}-{seq:05d}", on_delivery=cb)
        t0 = time.monotonic()
        while left[0] > 0 and time.monotonic() - t0 < 45:
            p.poll(0.05)
            self.pump(0.05)
        if left[0] or errors:
            raise Fail(f"produce {phase}: {left[0]} of {n} unacknowledged after 45 s, failures {errors[:3]}")

    def committed(self, admin: AdminClient) -> dict[int, int]:
        req = [ConsumerGroupTopicPartitions(self.group, [TopicPartition(TOPIC, p) for p in range(PARTITIONS)])]
        res = admin.list_consumer_group_offsets(req, request_timeout=ADMIN_TIMEOUT_S)[self.group].result(ADMIN_TIMEOUT_S + 5)
        out = {}
        for tp in res.topic_partitions:
            if tp.error is not None:
                raise Fail(f"OffsetFetch {self.group} {TOPIC}-{tp.partition}: {tp.error}")
            out[tp.partition] = tp.offset
        return out

    def describe(self, admin: AdminClient):
        fut = admin.describe_consumer_groups([self.group], request_timeout=ADMIN_TIMEOUT_S)[self.group]
        return fut.result(ADMIN_TIMEOUT_S + 5)

    def commit_all(self) -> None:
        for m in self.members:
            retried, offsets = m.commit_sync(COMMIT_DEADLINE_S, self.pump)
            self.commits.update(offsets)
            if retried:
                log(f"  {m.name}: commit retried after {len(retried)} retriable error(s), e.g. {retried[:2]}")

    def watermarks(self) -> dict[int, int]:
        c = Consumer({"bootstrap.servers": self.c.bootstrap(self.c.responsive()), "group.id": "failover-watermarks",
                      "socket.connection.setup.timeout.ms": 5000})
        try:
            return {p: logreader.watermarks(c, TOPIC, p)[1] for p in range(PARTITIONS)}
        except logreader.ReadError as e:
            raise Fail(str(e)) from e
        finally:
            c.close()

    def check_committed(self, label: str, fetched: dict[int, int]) -> None:
        """OffsetFetch must return exactly what the commits acknowledged, and that must lie
        between what was consumed (last offset + 1) and the log end: a consumer's position
        also moves past control batches (a new leader's LEADER_CHANGE record), so a commit may
        be above the last record consumed."""
        ends = self.consumed_ends()
        marks = self.watermarks()
        log(f"  {label}: OffsetFetch {fetched}; commits acknowledged {dict(sorted(self.commits.items()))}; "
            f"consumed up to {dict(sorted(ends.items()))}; log ends {marks}")
        if fetched != self.commits:
            self.problems.append(f"{label}: OffsetFetch {fetched}, but the commits acknowledged {self.commits}")
        outside = {p: (ends.get(p, 0), o, marks[p]) for p, o in self.commits.items() if not ends.get(p, 0) <= o <= marks[p]}
        if outside:
            self.problems.append(f"{label}: committed offsets outside [consumed end, log end]: {outside}")

    def check_described(self, admin: AdminClient, label: str) -> int:
        d = self.describe(admin)
        members = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in d.members}
        coord = d.coordinator.id if d.coordinator else None
        log(f"  {label}: DescribeGroups: coordinator n{coord}, state {d.state.name}, members {members}")
        want = {m.name: m.assigned() for m in self.members if not m.closed}
        if d.state != ConsumerGroupState.STABLE or members != want:
            self.problems.append(f"{label}: DescribeGroups state {d.state.name} members {members}; "
                                 f"want STABLE with {want}")
        return coord

    def offsets_leader(self) -> tuple[int | None, str]:
        p = offsets_partition(self.group)
        lead, _views, detail = self.c.stable_leader(OFFSETS_TOPIC, p)
        return lead, detail

    # -- the scenario ------------------------------------------------------------------------

    def run_it(self) -> None:
        self.c = c = self.run.start_cluster()
        cluster_test.create_topic(c, TOPIC, PARTITIONS)
        self.produce(300, "p0")
        log(f"  300 records acknowledged; group {self.group} (its {OFFSETS_TOPIC} partition: "
            f"{offsets_partition(self.group)})")
        a, b = Member("A", c.bootstrap(), self.group), Member("B", c.bootstrap(), self.group)
        self.members = [a, b]

        def split() -> bool:
            x, y = a.assigned(), b.assigned()
            return len(x) == 3 and len(y) == 3 and sorted(x + y) == list(range(PARTITIONS))

        took = self.pump_until("A and B split the partitions 3/3", JOIN_DEADLINE_S, split)
        log(f"  A={a.assigned()} B={b.assigned()} after {took:.1f}s")
        took = self.pump_until("A and B consume the 300 records", CONSUME_DEADLINE_S, self.all_consumed)
        log(f"  300 records consumed in {took:.1f}s (A {len(a.got)}, B {len(b.got)})")
        self.commit_all()
        admin = self.admin()
        before = self.committed(admin)
        self.check_committed("before the kill", before)
        coord = self.check_described(admin, "before the kill")
        lead, detail = self.offsets_leader()
        if coord != lead:
            self.problems.append(f"DescribeGroups names coordinator n{coord}, but the leader of {OFFSETS_TOPIC}-"
                                 f"{offsets_partition(self.group)} is n{lead} ({detail})")
        if coord not in clusterctl.NODE_IDS:
            raise Fail(f"no usable coordinator id from DescribeGroups: {coord}")

        # -- kill the coordinator -------------------------------------------------------------
        c[coord].kill9()
        t_kill = time.monotonic()
        log(f"  killed (-9) the coordinator n{coord}")
        admin = self.admin()
        seen: list[str] = []

        def probe():
            try:
                d = self.describe(admin)
            except KafkaException as e:
                seen.append(str(e))
                return False, None, f"DescribeGroups: {e}"
            new = d.coordinator.id if d.coordinator else None
            return new is not None and new != coord, new, f"coordinator n{new}, state {d.state.name}"

        def check():
            c.check_alive()
            self.pump(0.3)

        new = wait_until(f"DescribeGroups names a coordinator other than n{coord}", FAILOVER_DEADLINE_S, probe, check)
        log(f"  new coordinator n{new} {time.monotonic() - t_kill:.1f}s after the kill"
            + (f" (DescribeGroups failed {len(seen)} time(s) before, last: {seen[-1]})" if seen else ""))
        lead, detail = self.offsets_leader()
        if new != lead:
            self.problems.append(f"after the kill DescribeGroups names n{new}, the {OFFSETS_TOPIC}-"
                                 f"{offsets_partition(self.group)} leader is n{lead} ({detail})")
        after_kill = self.committed(admin)
        log(f"  committed offsets from the new coordinator: {after_kill}")
        if after_kill != before:
            self.problems.append(f"committed offsets changed by the failover: {after_kill}, before the kill {before}")

        # -- the group keeps consuming --------------------------------------------------------
        self.produce(120, "p1")
        took = self.pump_until("A and B consume the 120 records produced after the kill", FAILOVER_DEADLINE_S,
                               self.all_consumed)
        log(f"  120 records produced after the kill consumed {time.monotonic() - t_kill:.1f}s after it "
            f"(A={a.assigned()} B={b.assigned()})")
        self.commit_all()
        after = self.committed(admin)
        self.check_committed("after failover", after)
        lower = {p: (after.get(p), before[p]) for p in before if after.get(p, -1) < before[p]}
        if lower:
            self.problems.append(f"committed offsets went backwards after failover (now, before): {lower}")
        self.check_described(admin, "after failover")

        # -- the old coordinator comes back ---------------------------------------------------
        t0 = time.monotonic()
        c[coord].start()
        log(f"  restarted n{coord} on its data dir, ready in {time.monotonic() - t0:.1f}s")
        c.wait_caught_up(OFFSETS_TOPIC, OFFSETS_PARTITIONS)
        log(f"  every {OFFSETS_TOPIC} replica caught up {time.monotonic() - t0:.1f}s after the restart")
        self.pump(6)  # preferred leadership is handed back within 5 s
        admin = self.admin()
        self.produce(60, "p2")
        took = self.pump_until("A and B consume 60 records after the restart", FAILOVER_DEADLINE_S, self.all_consumed)
        self.commit_all()
        final = self.committed(admin)
        lead, _ = self.offsets_leader()
        self.check_committed(f"after the restart ({OFFSETS_TOPIC} partition led by n{lead})", final)
        self.check_described(admin, "after the restart")

        # -- every record, values checked -----------------------------------------------------
        got = self.consumed()
        wrong = [f"p{p}@{o}" for (p, o), v in self.acked.items() if got.get((p, o)) != v]
        if wrong:
            self.problems.append(f"{len(wrong)} acknowledged records not consumed with their value, e.g. {wrong[:MAX_SHOWN]}")
        else:
            log(f"  all {len(self.acked)} acknowledged records consumed at least once with their values")
        for m in self.members:
            m.close()
        statuses = c.stop_all()
        bad = {n: s for n, s in statuses.items() if s != 0}
        if bad:
            self.problems.append(f"clean shutdown (SIGTERM): exit status by node {bad}, want 0")
        else:
            log(f"  SIGTERM: nodes {sorted(statuses)} exited 0")

    def close(self) -> None:
        errs = [e for m in self.members for e in m.errors]
        if errs:  # expected while a node is down; shown to explain timings
            log(f"  consumer errors seen ({len(errs)}), e.g. {errs[:MAX_SHOWN]}")
        for m in self.members:
            try:
                m.close()
            except Exception:
                pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the temp dir even on success")
    a = ap.parse_args()
    brokerctl.install_signal_handlers()
    if brokerctl.kind() != "sluice":
        print(f"groups failover test: needs Sluice (SYSTEM_TEST_BROKER={brokerctl.kind()}); FAIL")
        return 1
    run = cluster_test.Run("groups-failover", 0)
    print(f"groups failover test: work dir {run.workdir}", flush=True)
    s = Scenario(run)
    ok = False
    t0 = time.monotonic()
    try:
        s.run_it()
        ok = not s.problems
    except Fail as e:
        s.problems.append(str(e))
    except KafkaException as e:
        s.problems.append(f"Kafka client error: {e}")
    except SystemExit as e:  # SIGTERM/SIGINT (tests/run-system's time limit)
        s.problems.append(f"interrupted (exit {e.code}) after {time.monotonic() - t0:.0f}s")
    except Exception:
        traceback.print_exc(file=sys.stdout)
        s.problems.append("unexpected exception (above)")
    finally:
        s.close()
        brokerctl.kill_all()
    for p in s.problems:
        print(f"  FAIL {p}")
    ok = not s.problems
    if ok and not a.keep:
        shutil.rmtree(run.workdir, ignore_errors=True)
    else:
        if not ok:
            tails = run.log_tails()
            if tails:
                print(tails)
        print(f"  broker logs and data kept in {run.workdir}")
    print(f"groups failover test: {'PASS' if ok else 'FAIL'} ({time.monotonic() - t0:.0f}s)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
