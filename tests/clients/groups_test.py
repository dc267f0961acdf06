#!/usr/bin/env python3
"""Consumer groups with real Python clients against a Kafka-protocol broker (issue 6).

Usage:
  groups_test.py confluent BOOTSTRAP       confluent-kafka (librdkafka 2.16) scenario below
  groups_test.py kafka-python BOOTSTRAP    kafka-python scenario below
  groups_test.py member BOOTSTRAP TOPIC GROUP NAME [--protocol classic|consumer]
                                           one group member in a process of its own (the
                                           confluent scenario kills it with -9); prints its
                                           assignment as a JSON line whenever it changes
  groups_test.py kcat-input --run R --records N
  groups_test.py kcat-assigned --topic T --partitions N STDERR_FILE...
  groups_test.py kcat-check --bootstrap B --topic T --group G --run R --records N
                            --partitions N --consumed FILE...
                                           helpers and checker of kcat_groups_test.sh

Environment: GROUPS_DEBUG=1 sets librdkafka's `debug=cgrp` on every confluent-kafka consumer
(the group protocol as librdkafka sees it, on stderr) to diagnose a failure.

confluent-kafka (group "range" = librdkafka's default range,roundrobin; 6 partitions):
  1. 300 keyed records; three consumers A, B, C (session.timeout.ms 10000, auto commit) join
     the group: the assignment must become 2/2/2 (disjoint, all 6 partitions); every record is
     consumed; DescribeGroups (AdminClient) shows the group Stable with those 3 members and
     their assignments, ListGroups lists it; a synchronous commit, then the committed offsets
     (OffsetFetch via ListConsumerGroupOffsets) must be the log ends (last acked offset + 1).
  2. C commits and closes (LeaveGroup): A and B must own 3/3 within session timeout +
     rebalance allowance + slack (30 s). 300 more records: all consumed, and nobody re-reads
     an offset below the committed ones (a commit lost in the handover would show here).
  3. A member D in another process joins (2/2/2 across A, B, D), then is killed with -9: its
     partitions must reach A and B within the same bound (the coordinator must expire its
     session). 120 more records are consumed by A and B.
  4. A and B commit and close; the committed offsets are the log ends. 120 more records;
     a restarted consumer E in the group (auto.offset.reset=earliest) must start every
     partition exactly at its committed offset (not at the beginning); E commits explicit
     offsets half way through the new records and closes; F must start exactly there.
  5. A second group with partition.assignment.strategy=cooperative-sticky: X and Y split 3/3,
     Z joins and the assignment becomes 2/2/2 with X and Y keeping partitions they had
     (incremental, sticky); DescribeGroups names the assignor cooperative-sticky; every record
     of the topic is consumed in that group; Z leaves and X, Y own 3/3 again within the bound.
  Every record (checked by value at the offset its produce ack named) is consumed at least
  once in each group.

kafka-python (KafkaConsumer(group_id=...), its own heartbeat thread):
  300 records; consumer A consumes them all and commits explicit offsets half way; A closes;
  B in the same group must start exactly there, consume to the end and commit; C joins and B
  and C split the partitions 3/3; list_groups() lists the group with protocol type
  "consumer", describe_groups() shows it Stable with B and C and their assignments;
  list_group_offsets() gives the log ends. With members subscribed, delete_group_offsets()
  (OffsetDelete) must answer GROUP_SUBSCRIBED_TO_TOPIC and delete_groups() NON_EMPTY_GROUP;
  after both close the group is Empty, OffsetDelete removes partition 0's offset only, and
  DeleteGroups removes the group (no longer listed, no offsets).

Bounded in records and time; loopback only; child processes are killed on every exit.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

NUM_PARTITIONS = 6
NUM_KEYS = 37
SESSION_TIMEOUT_MS = 10000
HEARTBEAT_INTERVAL_MS = 1000
REBALANCE_ALLOWANCE_S = 10  # a rebalance after the session ended (rejoin, sync)
SLACK_S = 10  # shared, slow machines
MOVE_LIMIT_S = SESSION_TIMEOUT_MS / 1000 + REBALANCE_ALLOWANCE_S + SLACK_S
JOIN_DEADLINE_S = 60  # a first balanced assignment (KIP-134's initial delay included)
CONSUME_DEADLINE_S = 60
HARD_DEADLINE_S = 90  # how long a wait that missed its bound goes on, to report what happened
CHILD_LIFETIME_S = 240  # a child member never outlives this, whatever happens to the parent
MAX_SHOWN = 10
DEBUG = os.environ.get("GROUPS_DEBUG") == "1"


class Fail(Exception):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def make_values(run: str, phase: str, n: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs; the value names the run, the phase and the sequence number."""
    return [(f"key-{seq % NUM_KEYS:03d}".encode(), f"{run}|{phase}|{seq:06d}".encode()) for seq in range(n)]


def check_at_least_once(label: str, acked: dict[tuple[int, int], bytes], got) -> list[str]:
    """Every acked (partition, offset) was consumed with its value; nothing unknown was.
    `got` yields (partition, offset, value)."""
    problems = []
    seen: dict[tuple[int, int], bytes] = {}
    for p, o, v in got:
        if (p, o) in acked and acked[(p, o)] != v:
            problems.append(f"{label}: p{p}@{o} consumed as {v!r}, produced {acked[(p, o)]!r}")
        elif (p, o) not in acked:
            problems.append(f"{label}: p{p}@{o} {v!r} consumed but never produced")
        seen[(p, o)] = v
    missing = sorted(k for k in acked if k not in seen)
    if missing:
        problems.append(f"{label}: {len(missing)} of {len(acked)} produced records never consumed, "
                        f"e.g. {[f'p{p}@{o}' for p, o in missing[:MAX_SHOWN]]}")
    return problems


def covered(acked: dict, members) -> bool:
    """Every acked (partition, offset) was consumed by one of `members` (values are checked
    afterwards by check_at_least_once)."""
    seen = {(p, o) for m in members for p, o, _v, _s in m.got}
    return all(k in seen for k in acked)


# ================================================================================================
# confluent-kafka


def ck():
    import confluent_kafka  # imported lazily: kafka-python's run needs no librdkafka
    import confluent_kafka.admin  # noqa: F401 (makes confluent_kafka.admin an attribute)
    return confluent_kafka


class Member:
    """One confluent-kafka group member in this process, polled by pump()."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, strategy: str | None = None,
                 auto_commit: bool = True, protocol: str = "classic"):
        c = ck()
        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": auto_commit,
            "auto.commit.interval.ms": 1000,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 2000,
        }
        conf.update(protocol_conf(protocol, strategy))
        if DEBUG:
            conf["debug"] = "cgrp"
        self.name = name
        self.group = group
        self.topic = topic
        self.c = c.Consumer(conf)
        self.got: list[tuple[int, int, bytes, str]] = []  # (partition, offset, value, step)
        self.events: list[tuple[float, str, list[int]]] = []
        self.errors: list[str] = []
        self.step = "start"
        self.closed = False
        self.c.subscribe([topic], on_assign=self._on("assign"), on_revoke=self._on("revoke"),
                         on_lost=self._on("lost"))

    def _on(self, kind: str):
        def cb(_consumer, partitions):
            self.events.append((time.monotonic(), kind, sorted(tp.partition for tp in partitions)))
        return cb

    def poll(self, timeout: float) -> None:
        m = self.c.poll(timeout)
        if m is None:
            return
        if m.error():
            self.errors.append(f"{self.name}: {m.error()}")
            return
        self.got.append((m.partition(), m.offset(), m.value(), self.step))

    def assigned(self) -> list[int]:
        if self.closed:
            return []
        return sorted(tp.partition for tp in self.c.assignment())

    def commit_sync(self) -> None:
        """Commit the positions of what was consumed; nothing to commit is fine."""
        k = ck()
        try:
            self.c.commit(asynchronous=False)
        except k.KafkaException as e:
            if e.args[0].code() != k.KafkaError._NO_OFFSET:
                raise Fail(f"{self.name}: synchronous commit failed: {e}") from e

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.c.close()

    def first_offsets(self, step: str) -> dict[int, int]:
        """The first offset read from each partition during `step`."""
        out: dict[int, int] = {}
        for p, o, _v, s in self.got:
            if s == step and p not in out:
                out[p] = o
        return out


def protocol_conf(protocol: str, strategy: str | None) -> dict:
    """The group settings of a member of `protocol`: the classic protocol's session, heartbeat
    and client-side assignor, or KIP-848's (`group.protocol=consumer`), where the broker sets
    the timing and `strategy` names a server-side assignor."""
    if protocol == "consumer":
        conf = {"group.protocol": "consumer"}
        if strategy:
            conf["group.remote.assignor"] = strategy
        return conf
    conf = {"session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS}
    if strategy:
        conf["partition.assignment.strategy"] = strategy
    return conf


def pump(members, done, what: str, limit_s: float, hard_s: float | None = None,
         others=lambda: {}) -> float:
    """Poll every member round robin until done() holds; returns the seconds it took. Past
    `limit_s` it is a failure, but polling goes on until `hard_s` to tell how late it came."""
    t0 = time.monotonic()
    hard = max(hard_s or limit_s, limit_s)
    while True:
        for m in members:
            m.poll(0.05)
        if done():
            took = time.monotonic() - t0
            if took > limit_s:
                raise Fail(f"{what}: took {took:.1f}s, the bound is {limit_s:.0f}s; {state(members, others())}")
            return took
        if time.monotonic() - t0 > hard:
            raise Fail(f"{what}: not reached within {hard:.0f}s (bound {limit_s:.0f}s); {state(members, others())}")


def state(members, others: dict) -> str:
    parts = [f"{m.name}={m.assigned()} ({len(m.got)} read)" for m in members if not m.closed]
    parts += [f"{name}={a}" for name, a in others.items()]
    errs = [e for m in members for e in m.errors][-3:]
    return "assignments " + ", ".join(parts) + (f"; consumer errors {errs}" if errs else "")


def balanced(assignments: list[list[int]], sizes: list[int]) -> bool:
    """Disjoint, covering every partition, with these sizes (in any order)."""
    flat = [p for a in assignments for p in a]
    return sorted(flat) == list(range(NUM_PARTITIONS)) and sorted(len(a) for a in assignments) == sorted(sizes)


def create_topic_ck(bootstrap: str, topic: str) -> None:
    k = ck()
    admin = k.admin.AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([k.admin.NewTopic(topic, num_partitions=NUM_PARTITIONS, replication_factor=1)],
                        operation_timeout=30, request_timeout=30)[topic].result(60)
    deadline = time.monotonic() + 30
    while True:
        t = admin.list_topics(topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == NUM_PARTITIONS:
            return
        if time.monotonic() > deadline:
            raise Fail(f"{topic} not visible with {NUM_PARTITIONS} partitions 30 s after CreateTopics")
        time.sleep(0.2)


def produce_ck(bootstrap: str, topic: str, pairs, acked: dict) -> dict[int, int]:
    """acks=all, Java partitioner; records every ack in `acked`; returns acks per partition."""
    k = ck()
    p = k.Producer({"bootstrap.servers": bootstrap, "acks": "all", "partitioner": "murmur2_random",
                    "linger.ms": 5, "message.timeout.ms": 30000})
    errors = []
    per: dict[int, int] = {}

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[(msg.partition(), msg.offset())] = msg.value()
            per[msg.partition()] = per.get(msg.partition(), 0) + 1

    for key, value in pairs:
        p.produce(topic, key=key, value=value, on_delivery=cb)
        p.poll(0)
    left = p.flush(60)
    if left or errors:
        raise Fail(f"produce to {topic}: {left} undelivered, failures {errors[:3]}")
    return per


def ends(offsets, partitions: int = NUM_PARTITIONS) -> dict[int, int]:
    """{partition: last offset + 1} over (partition, offset) pairs (the acks of everything
    produced: the log end of a topic only this test writes, and what a consumer that read it
    all commits)."""
    out = {p: 0 for p in range(partitions)}
    for p, o in offsets:
        out[p] = max(out[p], o + 1)
    return out


def group_offsets_ck(admin, group: str, topic: str, partitions: int = NUM_PARTITIONS) -> dict[int, int]:
    """OffsetFetch through the AdminClient: {partition: committed offset} (-1001: none)."""
    k = ck()
    req = [k.ConsumerGroupTopicPartitions(group, [k.TopicPartition(topic, p) for p in range(partitions)])]
    res = admin.list_consumer_group_offsets(req, request_timeout=15)[group].result(20)
    out = {}
    for tp in res.topic_partitions:
        if tp.error is not None:
            raise Fail(f"OffsetFetch {group} {topic}-{tp.partition}: {tp.error}")
        out[tp.partition] = tp.offset
    return out


def describe_ck(admin, group: str):
    return admin.describe_consumer_groups([group], request_timeout=15)[group].result(20)


def check_described(admin, group: str, members: list[Member], assignor: str, problems: list[str]) -> None:
    """DescribeGroups: Stable, exactly these members (by client id) with the assignments they
    report themselves, and the expected assignor; ListGroups lists the group."""
    k = ck()
    d = describe_ck(admin, group)
    desc = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in d.members}
    want = {m.name: m.assigned() for m in members}
    log(f"  DescribeGroups {group}: state {d.state.name}, assignor {d.partition_assignor!r}, "
        f"coordinator {d.coordinator.id if d.coordinator else None}, members {desc}")
    if d.state != k.ConsumerGroupState.STABLE:
        problems.append(f"DescribeGroups {group}: state {d.state.name}, want STABLE")
    if desc != want:
        problems.append(f"DescribeGroups {group}: members/assignments {desc}, the consumers report {want}")
    if d.partition_assignor != assignor:
        problems.append(f"DescribeGroups {group}: assignor {d.partition_assignor!r}, want {assignor!r}")
    listed = admin.list_consumer_groups(request_timeout=15).result(20)
    ids = {g.group_id for g in listed.valid}
    if group not in ids:
        problems.append(f"ListGroups does not list {group} (lists {sorted(ids)[:MAX_SHOWN]}; errors {listed.errors})")
    else:
        g = next(g for g in listed.valid if g.group_id == group)
        log(f"  ListGroups lists {group} (state {g.state.name if g.state else None})")


class ChildMember:
    """A group member in another process (`groups_test.py member`), to be killed with -9."""

    def __init__(self, bootstrap: str, topic: str, group: str, name: str, protocol: str = "classic"):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "member", bootstrap, topic, group, name,
             "--protocol", protocol],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None, text=True)
        _children.append(self.proc)
        self.assignment: list[int] | None = None
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            try:
                self.assignment = json.loads(line)["assigned"]
            except (ValueError, KeyError):
                pass

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


_children: list[subprocess.Popen] = []


def _kill_children() -> None:
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()


atexit.register(_kill_children)


def cmd_member(a) -> int:
    """A plain member: polls and prints its assignment on every change; never commits."""
    k = ck()
    conf = {"bootstrap.servers": a.bootstrap, "group.id": a.group, "client.id": a.name,
            "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}
    conf.update(protocol_conf(a.protocol, None))
    if DEBUG:
        conf["debug"] = "cgrp"
    c = k.Consumer(conf)
    c.subscribe([a.topic])
    last = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < CHILD_LIFETIME_S:
        c.poll(0.1)
        now = sorted(tp.partition for tp in c.assignment())
        if now != last:
            print(json.dumps({"assigned": now}), flush=True)
            last = now
    c.close()
    return 0


def scenario_confluent(bootstrap: str) -> list[str]:
    k = ck()
    v = k.version()
    v = v[0] if isinstance(v, tuple) else v
    log(f"confluent-kafka {v}, librdkafka {k.libversion()[0]}; bootstrap {bootstrap}")
    run = common.run_id()
    topic = f"sys-groups-ck-{run}"
    group = f"groups-ck-range-{run}"
    create_topic_ck(bootstrap, topic)
    admin = k.admin.AdminClient({"bootstrap.servers": bootstrap})
    acked: dict[tuple[int, int], bytes] = {}
    problems: list[str] = []
    members: list[Member] = []
    try:
        # -- 1. three members, 2/2/2 ----------------------------------------------------------
        produce_ck(bootstrap, topic, make_values(run, "p0", 300), acked)
        hw0 = ends(acked)
        log(f"  produced 300 records to {topic}; log ends {hw0}")
        a, b, c = (Member(n, bootstrap, group, topic) for n in ("A", "B", "C"))
        members = [a, b, c]
        took = pump(members, lambda: balanced([m.assigned() for m in members], [2, 2, 2]),
                    "three members reach a 2/2/2 assignment", JOIN_DEADLINE_S)
        log(f"  A, B, C joined {group}: {state(members, {})} after {took:.1f}s")
        p0 = dict(acked)
        took = pump(members, lambda: covered(p0, members),
                    "every record consumed by the three members", CONSUME_DEADLINE_S)
        log(f"  all 300 records consumed in {took:.1f}s: " + ", ".join(f"{m.name} read {len(m.got)}" for m in members))
        check_described(admin, group, members, "range", problems)
        for m in members:
            m.commit_sync()
        committed = group_offsets_ck(admin, group, topic)
        log(f"  committed after a synchronous commit: {committed}")
        if committed != hw0:
            problems.append(f"after consuming everything and committing, OffsetFetch says {committed}, "
                            f"want the log ends {hw0}")

        # -- 2. C leaves: its partitions move within the bound --------------------------------
        c_had = c.assigned()
        c.commit_sync()
        t_close = time.monotonic()
        c.close()
        for m in (a, b):
            m.step = "after-leave"
        took = pump([a, b], lambda: balanced([a.assigned(), b.assigned()], [3, 3]),
                    f"C closed (LeaveGroup): A and B own all 6 partitions", MOVE_LIMIT_S, HARD_DEADLINE_S)
        log(f"  C (had {c_had}) closed; {time.monotonic() - t_close:.1f}s later A={a.assigned()} B={b.assigned()} "
            f"(bound {MOVE_LIMIT_S:.0f}s)")
        produce_ck(bootstrap, topic, make_values(run, "p1", 300), acked)
        p1 = dict(acked)
        took = pump([a, b], lambda: covered(p1, members),
                    "A and B consume the next 300 records", CONSUME_DEADLINE_S)
        log(f"  300 more records consumed by A and B in {took:.1f}s")
        rereads = [f"{m.name} p{p}@{o}" for m in (a, b) for p, o, _v, s in m.got if s == "after-leave" and o < hw0[p]]
        if rereads:
            problems.append(f"after everything up to {hw0} was committed, {len(rereads)} records were read again "
                            f"after C left (commits lost or ignored?): {rereads[:MAX_SHOWN]}")
        for m in (a, b):
            starts = m.first_offsets("after-leave")
            wrong = {p: o for p, o in starts.items() if o != hw0[p]}
            if wrong:
                problems.append(f"{m.name} resumed partitions at {wrong} after C left; the committed offsets were "
                                f"{ {p: hw0[p] for p in wrong} }")

        # -- 3. a member in another process joins and is killed with -9 -----------------------
        d = ChildMember(bootstrap, topic, group, "D")
        for m in (a, b):
            m.step = "with-D"
        took = pump([a, b], lambda: d.assignment is not None and balanced([a.assigned(), b.assigned(), d.assignment], [2, 2, 2]),
                    "A, B and the process D reach 2/2/2", JOIN_DEADLINE_S, others=lambda: {"D": d.assignment})
        log(f"  D (pid {d.proc.pid}) joined: A={a.assigned()} B={b.assigned()} D={d.assignment} after {took:.1f}s")
        d_had = d.assignment
        d.kill9()
        t_kill = time.monotonic()
        for m in (a, b):
            m.step = "after-kill"
        took = pump([a, b], lambda: balanced([a.assigned(), b.assigned()], [3, 3]),
                    f"D killed (-9): its partitions {d_had} reach A and B", MOVE_LIMIT_S, HARD_DEADLINE_S)
        log(f"  D killed with -9; {took:.1f}s later A={a.assigned()} B={b.assigned()} "
            f"(session timeout {SESSION_TIMEOUT_MS / 1000:.0f}s, bound {MOVE_LIMIT_S:.0f}s)")
        produce_ck(bootstrap, topic, make_values(run, "p2", 120), acked)
        p2 = dict(acked)
        took = pump([a, b], lambda: covered(p2, members),
                    "A and B consume 120 more records", CONSUME_DEADLINE_S)
        log(f"  120 more records consumed by A and B in {took:.1f}s")
        problems += check_at_least_once(f"group {group}", acked, ((p, o, v) for m in members for p, o, v, _ in m.got))

        # -- 4. restart resumes from the commit ------------------------------------------------
        for m in (a, b):
            m.commit_sync()
            m.close()
        hw2 = ends(acked)
        committed = group_offsets_ck(admin, group, topic)
        log(f"  A and B committed and closed; committed {committed}, log ends {hw2}")
        if committed != hw2:
            problems.append(f"after A and B committed everything and closed, OffsetFetch says {committed}, want {hw2}")
        d_empty = describe_ck(admin, group)
        if d_empty.state != k.ConsumerGroupState.EMPTY or d_empty.members:
            problems.append(f"DescribeGroups {group} with no member left: state {d_empty.state.name}, "
                            f"{len(d_empty.members)} members; want EMPTY, none")
        produce_ck(bootstrap, topic, make_values(run, "p3", 120), acked)
        hw3 = ends(acked)
        e = Member("E", bootstrap, group, topic, auto_commit=False)
        members.append(e)
        e.step = "E"
        pump([e], lambda: e.assigned() == list(range(NUM_PARTITIONS)), "E alone owns all 6 partitions", JOIN_DEADLINE_S)
        pump([e], lambda: {(p, o) for p, o, _, _ in e.got} >= {(p, o) for (p, o) in acked if o >= hw2[p]},
             "E consumes the 120 records produced while the group was empty", CONSUME_DEADLINE_S)
        starts = e.first_offsets("E")
        log(f"  E (auto.offset.reset=earliest) started at {starts}; committed were {hw2}")
        if starts != {p: hw2[p] for p in range(NUM_PARTITIONS) if hw3[p] > hw2[p]}:
            problems.append(f"restarted consumer E started at {starts}, want the committed offsets {hw2} "
                            f"(for the partitions that got new records)")
        half = {p: hw2[p] + (hw3[p] - hw2[p]) // 2 for p in range(NUM_PARTITIONS)}
        done = e.c.commit(offsets=[k.TopicPartition(topic, p, o) for p, o in half.items()], asynchronous=False)
        bad = [f"p{tp.partition}: {tp.error}" for tp in done or [] if tp.error is not None]
        if bad:
            problems.append(f"E's explicit commit of {half} answered per-partition errors {bad}")
        asked = [k.TopicPartition(topic, p) for p in range(NUM_PARTITIONS)]
        got = {tp.partition: tp.offset for tp in e.c.committed(asked, timeout=10)}
        if got != half:
            problems.append(f"E committed {half} explicitly; committed() answers {got}")
        e.close()
        f = Member("F", bootstrap, group, topic, auto_commit=False)
        members.append(f)
        f.step = "F"
        pump([f], lambda: f.assigned() == list(range(NUM_PARTITIONS)), "F alone owns all 6 partitions", JOIN_DEADLINE_S)
        pump([f], lambda: {(p, o) for p, o, _, _ in f.got} >= {(p, o) for (p, o) in acked if o >= half[p]},
             "F consumes from the half-way commits to the end", CONSUME_DEADLINE_S)
        starts = f.first_offsets("F")
        want = {p: half[p] for p in range(NUM_PARTITIONS) if hw3[p] > half[p]}
        log(f"  F started at {starts} after E committed {half}")
        if starts != want:
            problems.append(f"restarted consumer F started at {starts}, want E's commits {want}")
        problems += check_at_least_once(f"group {group} after the restarts",
                                        {k: v for k, v in acked.items() if k[1] >= hw2[k[0]]},
                                        ((p, o, v) for m in (e, f) for p, o, v, _ in m.got))
        f.commit_sync()
        f.close()
        committed = group_offsets_ck(admin, group, topic)
        if committed != hw3:
            problems.append(f"after F consumed and committed everything, OffsetFetch says {committed}, want {hw3}")

        # -- 5. cooperative-sticky in a second group ------------------------------------------
        coop = f"groups-ck-coop-{run}"
        x, y = (Member(n, bootstrap, coop, topic, strategy="cooperative-sticky") for n in ("X", "Y"))
        cm = [x, y]
        members += cm
        took = pump(cm, lambda: balanced([x.assigned(), y.assigned()], [3, 3]),
                    "cooperative-sticky: X and Y split 3/3", JOIN_DEADLINE_S)
        x_had, y_had = x.assigned(), y.assigned()
        log(f"  cooperative-sticky group {coop}: X={x_had} Y={y_had} after {took:.1f}s")
        z = Member("Z", bootstrap, coop, topic, strategy="cooperative-sticky")
        cm.append(z)
        members.append(z)
        t_z = time.monotonic()
        took = pump(cm, lambda: balanced([m.assigned() for m in cm], [2, 2, 2]),
                    "cooperative-sticky: Z joins, 2/2/2", JOIN_DEADLINE_S)
        log(f"  Z joined: X={x.assigned()} Y={y.assigned()} Z={z.assigned()} after {took:.1f}s")
        if not (set(x.assigned()) <= set(x_had) and set(y.assigned()) <= set(y_had)):
            problems.append(f"cooperative-sticky: X {x_had} -> {x.assigned()}, Y {y_had} -> {y.assigned()}: "
                            f"a member got a partition another one had (not sticky)")
        for m in (x, y):
            revoked = sorted({p for t, kind, ps in m.events if t >= t_z and kind in ("revoke", "lost") for p in ps})
            if set(revoked) & set(m.assigned()):
                problems.append(f"cooperative-sticky: {m.name} had {revoked} revoked and kept {m.assigned()}: "
                                f"partitions it kept were revoked (an eager rebalance, not incremental)")
        check_described(admin, coop, cm, "cooperative-sticky", problems)
        took = pump(cm, lambda: covered(acked, cm),
                    "the cooperative group consumes the whole topic", CONSUME_DEADLINE_S)
        log(f"  the cooperative group consumed all {len(acked)} records in {took:.1f}s")
        problems += check_at_least_once(f"group {coop}", acked, ((p, o, v) for m in cm for p, o, v, _ in m.got))
        for m in cm:
            m.commit_sync()
        z_had = z.assigned()
        z.close()
        took = pump([x, y], lambda: balanced([x.assigned(), y.assigned()], [3, 3]),
                    "cooperative-sticky: Z left, X and Y own everything", MOVE_LIMIT_S, HARD_DEADLINE_S)
        log(f"  Z (had {z_had}) closed; {took:.1f}s later X={x.assigned()} Y={y.assigned()}")
        for m in (x, y):
            m.close()
        committed = group_offsets_ck(admin, coop, topic)
        if committed != hw3:
            problems.append(f"cooperative group {coop}: committed {committed} after consuming everything, want {hw3}")
    except Fail as err:
        problems.append(str(err))
    finally:
        for m in members:
            try:
                m.close()
            except Exception as err:  # closing must not hide the verdict
                problems.append(f"{m.name}: close failed: {err}")
        _kill_children()
    errs = [e for m in members for e in m.errors]
    if errs:
        problems.append(f"{len(errs)} consumer error(s), e.g. {errs[:MAX_SHOWN]}")
    return problems


# ================================================================================================
# kafka-python


def describe_kp(admin, group: str, problems: list[str]) -> dict:
    """admin.describe_groups([group])[group]; a failure is a problem (and an empty answer)."""
    try:
        return admin.describe_groups([group]).get(group) or {}
    except Exception as e:  # kafka-python raises plain ValueErrors while decoding, too
        problems.append(f"describe_groups([{group!r}]) failed: {type(e).__name__}: {e}")
        return {}


def scenario_kafka_python(bootstrap: str) -> list[str]:
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.structs import OffsetAndMetadata

    log(f"kafka-python {kafka.__version__}; bootstrap {bootstrap}")
    run = common.run_id()
    topic = f"sys-groups-kp-{run}"
    group = f"groups-kp-{run}"
    tps = [TopicPartition(topic, p) for p in range(NUM_PARTITIONS)]
    problems: list[str] = []
    consumers = []
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="groups-kp-admin", request_timeout_ms=30000)

    def consumer(name: str) -> KafkaConsumer:
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id=name,
                          enable_auto_commit=False, auto_offset_reset="earliest",
                          session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                          fetch_max_wait_ms=100, request_timeout_ms=30000)
        consumers.append(c)
        return c

    def poll_until(cs, done, what: str, limit_s: float, got: dict) -> float:
        t0 = time.monotonic()
        while not done():
            if time.monotonic() - t0 > limit_s:
                assigned = {n: sorted(tp.partition for tp in c.assignment()) for n, c in cs.items()}
                raise Fail(f"kafka-python: {what}: not within {limit_s:.0f}s; assignments {assigned}")
            for name, c in cs.items():
                for _tp, msgs in c.poll(timeout_ms=100).items():
                    for m in msgs:
                        got.setdefault(name, []).append((m.partition, m.offset, m.value))
        return time.monotonic() - t0

    try:
        admin.create_topics([NewTopic(topic, num_partitions=NUM_PARTITIONS, replication_factor=1)], timeout_ms=30000)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        acked: dict[tuple[int, int], bytes] = {}
        futs = [producer.send(topic, key=key, value=value) for key, value in make_values(run, "kp", 300)]
        producer.flush(timeout=60)
        for (key, value), fut in zip(make_values(run, "kp", 300), futs):
            md = fut.get(timeout=60)
            acked[(md.partition, md.offset)] = value
        producer.close(timeout=10)
        hw = {p: max([o + 1 for (q, o) in acked if q == p], default=0) for p in range(NUM_PARTITIONS)}
        log(f"  produced 300 records to {topic}; log ends {hw}")

        got: dict[str, list] = {}
        a = consumer("kp-A")
        took = poll_until({"A": a}, lambda: {(p, o) for p, o, _ in got.get("A", [])} >= set(acked),
                          "A consumes every record", JOIN_DEADLINE_S + CONSUME_DEADLINE_S, got)
        log(f"  A joined {group} and consumed all 300 records in {took:.1f}s; assignment "
            f"{sorted(tp.partition for tp in a.assignment())}")
        problems += check_at_least_once("kafka-python A", acked, got["A"])
        half = {p: hw[p] // 2 for p in range(NUM_PARTITIONS)}
        a.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in half.items()})
        seen = {tp.partition: a.committed(tp) for tp in tps}
        if seen != half:
            problems.append(f"A committed {half}; committed() answers {seen}")
        a.close(autocommit=False)

        b = consumer("kp-B")
        got.clear()
        want = {(p, o) for (p, o) in acked if o >= half[p]}
        took = poll_until({"B": b}, lambda: {(p, o) for p, o, _ in got.get("B", [])} >= want,
                          "B consumes from A's commits to the end", JOIN_DEADLINE_S + CONSUME_DEADLINE_S, got)
        starts = {}
        for p, o, _v in got["B"]:
            starts.setdefault(p, o)
        log(f"  B (same group) started at {starts} after A committed {half} ({took:.1f}s)")
        expect = {p: o for p, o in half.items() if hw[p] > o}
        if starts != expect:
            problems.append(f"kafka-python B started at {starts}, want A's commits {expect}")
        b.commit()

        c = consumer("kp-C")
        cs = {"B": b, "C": c}

        def split():
            ab = [sorted(tp.partition for tp in x.assignment()) for x in (b, c)]
            return balanced(ab, [3, 3])

        took = poll_until(cs, split, "B and C split the partitions 3/3", JOIN_DEADLINE_S, got)
        assigned = {n: sorted(tp.partition for tp in x.assignment()) for n, x in cs.items()}
        log(f"  C joined: {assigned} after {took:.1f}s")
        groups = admin.list_groups()
        mine = [g for g in groups if g.get("group_id") == group]
        log(f"  list_groups(): {mine}")
        if not mine or mine[0].get("protocol_type") != "consumer":
            problems.append(f"list_groups() should list {group} with protocol type 'consumer': {groups[:MAX_SHOWN]}")
        desc = describe_kp(admin, group, problems)
        members = {m.get("client_id"): m for m in desc.get("members", [])}

        def parts(m) -> list[int]:
            """The member's partitions of `topic` from its decoded assignment (kafka-python 3
            turns it into {"assigned_partitions": [{"topic", "partitions"}], ...})."""
            asg = m.get("member_assignment")
            entries = asg.get("assigned_partitions") if isinstance(asg, dict) else None
            return sorted(p for t in entries or [] if t.get("topic") == topic for p in t.get("partitions") or [])

        shown = {cid: parts(m) for cid, m in members.items()}
        log(f"  describe_groups(): state {desc.get('group_state')!r}, protocol {desc.get('protocol_data')!r}, "
            f"members {shown}, error {desc.get('error')}")
        if desc.get("error") or desc.get("group_state") != "Stable":
            problems.append(f"describe_groups({group}): state {desc.get('group_state')!r} error {desc.get('error')}; want Stable")
        if desc.get("protocol_data") != "range":
            problems.append(f"describe_groups({group}): protocol {desc.get('protocol_data')!r}, want 'range' "
                            f"(both members list range first)")
        if shown != {"kp-B": assigned["B"], "kp-C": assigned["C"]}:
            problems.append(f"describe_groups({group}): members {shown}, the consumers report {assigned}")
        # With members subscribed: OffsetDelete and DeleteGroups must refuse.
        res = admin.delete_group_offsets(group, [tps[0]])
        got_err = getattr(res.get(tps[0]), "__name__", str(res.get(tps[0])))
        log(f"  delete_group_offsets(p0) with members subscribed: {got_err}")
        if got_err != "GroupSubscribedToTopicError":
            problems.append(f"OffsetDelete of {topic}-0 while B and C consume it answered {got_err}, "
                            f"want GroupSubscribedToTopicError (GROUP_SUBSCRIBED_TO_TOPIC)")
        res = admin.delete_groups([group])
        log(f"  delete_groups() with members: {res}")
        if res.get(group) != "NonEmptyGroupError":
            problems.append(f"DeleteGroups of a group with members answered {res}, want NonEmptyGroupError")
        for x in (b, c):
            x.commit()
        offsets = admin.list_group_offsets(group).get(group, {})
        committed = {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic}
        log(f"  list_group_offsets(): {committed}")
        if committed != hw:
            problems.append(f"list_group_offsets({group}) = {committed}, want the log ends {hw}")
        for x in (b, c):
            x.close(autocommit=False)
        desc = describe_kp(admin, group, problems)
        if desc.get("group_state") != "Empty" or desc.get("members"):
            problems.append(f"after both consumers closed, describe_groups says state {desc.get('group_state')!r} "
                            f"with {len(desc.get('members') or [])} members; want Empty, none")
        # Empty: OffsetDelete removes one partition's offset, DeleteGroups the whole group.
        res = admin.delete_group_offsets(group, [tps[0]])
        got_err = getattr(res.get(tps[0]), "__name__", str(res.get(tps[0])))
        left = {tp.partition: om.offset for tp, om in admin.list_group_offsets(group).get(group, {}).items()
                if tp.topic == topic and om.offset >= 0}
        log(f"  delete_group_offsets(p0) on the empty group: {got_err}; offsets left {left}")
        if got_err != "NoError" or left != {p: o for p, o in hw.items() if p != 0}:
            problems.append(f"OffsetDelete of {topic}-0 on the empty group: {got_err}, offsets left {left}; "
                            f"want NoError and every partition but 0 ({hw})")
        res = admin.delete_groups([group])
        listed = [g.get("group_id") for g in admin.list_groups()]
        left = admin.list_group_offsets(group).get(group, {})
        log(f"  delete_groups(): {res}; listed afterwards: {group in listed}; offsets left {len(left)}")
        if res.get(group) != "OK" or group in listed or any(om.offset >= 0 for om in left.values()):
            problems.append(f"DeleteGroups of the empty group: {res}; still listed: {group in listed}; offsets {left}")
    except Fail as err:
        problems.append(str(err))
    except kafka.errors.KafkaError as err:
        problems.append(f"kafka-python error: {err!r}")
    finally:
        for x in consumers:
            try:
                x.close(autocommit=False)
            except Exception:
                pass
        admin.close()
    return problems


# ================================================================================================
# kcat_groups_test.sh's checker


def cmd_kcat_check(a) -> int:
    """kcat -G output files (`%p\\t%o\\t%s` lines) against the regenerated records, then the
    group's committed offsets (AdminClient) against the log ends."""
    k = ck()
    values = {v for _k, v in make_values(a.run, "kcat", a.records)}
    seen: dict[bytes, set] = {}
    per_file = []
    problems = []
    for path in a.consumed:
        n = 0
        for line in open(path, "rb"):
            line = line.rstrip(b"\n")
            if not line:
                continue
            parts = line.split(b"\t")
            if len(parts) != 3:
                problems.append(f"{path}: unparsable line {line[:100]!r}")
                continue
            p, o, v = int(parts[0]), int(parts[1]), parts[2]
            if v not in values:
                problems.append(f"{path}: unknown record p{p}@{o} {v[:80]!r}")
                continue
            prev = seen.setdefault(v, set())
            prev.add((p, o))
            n += 1
        per_file.append(n)
    missing = [v for v in values if v not in seen]
    moved = [v for v, at in seen.items() if len(at) > 1]
    print(f"  kcat -G processes read {per_file} records; {len(seen)} of {len(values)} distinct records")
    if missing:
        problems.append(f"{len(missing)} records never consumed by any kcat -G, e.g. {sorted(missing)[:5]}")
    if moved:
        problems.append(f"{len(moved)} records read at two different offsets, e.g. {moved[:3]}")
    if any(n == 0 for n in per_file):
        problems.append(f"a kcat -G process consumed nothing ({per_file}): the group did not split the work")
    admin = k.admin.AdminClient({"bootstrap.servers": a.bootstrap})
    hw = ends((at for ats in seen.values() for at in ats), a.partitions)
    try:
        committed = group_offsets_ck(admin, a.group, a.topic, a.partitions)
    except (Fail, k.KafkaException) as e:
        committed = None
        problems.append(f"OffsetFetch for group {a.group}: {e}")
    print(f"  committed offsets of {a.group}: {committed}; log ends (last offset read + 1) {hw}")
    if committed is not None and committed != hw:
        problems.append(f"committed offsets {committed} != the log ends {hw} after the kcat -G processes exited")
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


def cmd_kcat_assigned(a) -> int:
    """Exit 0 when the latest rebalance line of each kcat -G stderr file shows a non-empty
    assignment and together they are disjoint and cover every partition; prints what it saw.
    kcat prints `% Group G rebalanced (memberid M): assigned: T [0], T [3]` (or `revoked: ...`)."""
    latest = []
    for path in a.files:
        now = None
        try:
            lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            if "rebalanced (memberid" not in line:
                continue
            if "assigned:" in line:
                items = line.split("assigned:", 1)[1].split(",")
                now = sorted(int(x.rsplit("[", 1)[1].rstrip("] ")) for x in items if "[" in x
                             and x.strip().startswith(a.topic + " "))
            else:
                now = []
        latest.append(now)
    flat = sorted(p for x in latest if x for p in x)
    ok = all(latest) and flat == list(range(a.partitions))
    print(" / ".join(f"kcat #{i + 1}: {x if x is not None else 'no assignment yet'}" for i, x in enumerate(latest)))
    return 0 if ok else 1


def cmd_kcat_input(a) -> int:
    for key, value in make_values(a.run, "kcat", a.records):
        print(f"{key.decode()}:{value.decode()}")
    return 0


# ================================================================================================


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("confluent", "kafka-python"):
        sub.add_parser(name).add_argument("bootstrap")
    sp = sub.add_parser("member")
    for arg in ("bootstrap", "topic", "group", "name"):
        sp.add_argument(arg)
    sp.add_argument("--protocol", choices=("classic", "consumer"), default="classic")
    sp = sub.add_parser("kcat-input")
    sp.add_argument("--run", required=True)
    sp.add_argument("--records", type=int, required=True)
    sp = sub.add_parser("kcat-check")
    sp.add_argument("--bootstrap", required=True)
    sp.add_argument("--topic", required=True)
    sp.add_argument("--group", required=True)
    sp.add_argument("--run", required=True)
    sp.add_argument("--records", type=int, required=True)
    sp.add_argument("--partitions", type=int, required=True)
    sp.add_argument("--consumed", nargs="+", required=True)
    sp = sub.add_parser("kcat-assigned")
    sp.add_argument("--topic", required=True)
    sp.add_argument("--partitions", type=int, required=True)
    sp.add_argument("files", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "member":
        return cmd_member(a)
    if a.cmd == "kcat-check":
        return cmd_kcat_check(a)
    if a.cmd == "kcat-input":
        return cmd_kcat_input(a)
    if a.cmd == "kcat-assigned":
        return cmd_kcat_assigned(a)
    # SIGTERM (tests/run-system's time limit) becomes SystemExit, so atexit kills the children.
    signal.signal(signal.SIGTERM, lambda signum, _f: sys.exit(128 + signum))
    label = {"confluent": "groups confluent-kafka", "kafka-python": "groups kafka-python"}[a.cmd]
    t0 = time.monotonic()
    try:
        problems = scenario_confluent(a.bootstrap) if a.cmd == "confluent" else scenario_kafka_python(a.bootstrap)
    except Exception as e:  # an unexpected client error: still a clear verdict
        import traceback
        traceback.print_exc(file=sys.stdout)
        problems = [f"unexpected {type(e).__name__}: {e}"]
    for p in problems:
        log(f"  FAIL {p}")
    log(f"{label}: {'PASS' if not problems else 'FAIL'} ({time.monotonic() - t0:.0f}s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
