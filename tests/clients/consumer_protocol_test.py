#!/usr/bin/env python3
"""KIP-848 consumer groups (`group.protocol=consumer`) with confluent-kafka against a broker.

Usage:
  consumer_protocol_test.py BOOTSTRAP [--session-timeout-ms MS]

The broker must run with the session timeout given here (tests/run-system starts it with
`--group-consumer-session-timeout-ms 10000 --group-consumer-heartbeat-interval-ms 1000`):
with KIP-848 the broker, not the client, sets a member's session and heartbeat interval.

librdkafka (2.16, via confluent-kafka) speaks ConsumerGroupHeartbeat and ConsumerGroupDescribe
when `group.protocol=consumer`. 6 partitions:
  1. 300 keyed records; members A, B, C join: the assignment becomes 2/2/2 (disjoint, all 6
     partitions); every record is consumed; ConsumerGroupDescribe (AdminClient
     describe_consumer_groups) shows a CONSUMER group, Stable, with those 3 members, the
     assignments they report and the server assignor `uniform`; ListGroups v5 with a type
     filter lists it as a consumer group; a synchronous commit (OffsetCommit with the member
     epoch), then the committed offsets must be the log ends.
  2. C closes (leaves at epoch -1): A and B own 3/3 within the bound, keeping what they had
     (the uniform assignor is sticky). 300 more records: consumed, none re-read below the
     commits.
  3. A member D in another process joins (2/2/2) and is killed with -9: its partitions reach A
     and B once the broker's session timeout expires it.
  4. A and B commit and close: the group is Empty with the log ends committed. 120 more
     records; a classic-protocol member E joins the same group (an empty consumer group
     becomes a classic group, keeping its offsets) and starts exactly at the commits; E
     commits half way and closes; a consumer-protocol member F (the group converts back)
     starts exactly at E's commits.
  5. A second group asks for the `range` server assignor: X and Y own partitions 0-2 and 3-5;
     ConsumerGroupDescribe names the assignor range.
  Every record (checked by value at the offset its produce ack named) is consumed at least
  once in each group.

Bounded in records and time; loopback only; the child process is killed on every exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import groups_test as g  # noqa: E402  (the classic scenario's members, pumps and checks)
from groups_test import Fail, log  # noqa: E402

PARTITIONS = g.NUM_PARTITIONS
PROTOCOL = "consumer"


def members_of(described) -> dict[str, list[int]]:
    return {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in described.members}


def check_described(admin, group: str, members, assignor: str, problems: list[str]) -> None:
    """ConsumerGroupDescribe: a consumer group, Stable, exactly these members with the
    assignments they report (current and target), and the assignor; ListGroups v5 lists it as
    a consumer group when asked for consumer groups only."""
    k = g.ck()
    d = g.describe_ck(admin, group)
    desc = members_of(d)
    want = {m.name: m.assigned() for m in members}
    targets = {m.client_id: sorted(tp.partition for tp in m.target_assignment.topic_partitions)
               for m in d.members if m.target_assignment is not None}
    log(f"  ConsumerGroupDescribe {group}: type {d.type.name}, state {d.state.name}, "
        f"assignor {d.partition_assignor!r}, members {desc}, targets {targets}")
    if d.type != k.ConsumerGroupType.CONSUMER:
        problems.append(f"describe {group}: type {d.type.name}, want CONSUMER")
    if d.state != k.ConsumerGroupState.STABLE:
        problems.append(f"describe {group}: state {d.state.name}, want STABLE")
    if desc != want or targets != want:
        problems.append(f"describe {group}: members {desc}, targets {targets}; the consumers report {want}")
    if d.partition_assignor != assignor:
        problems.append(f"describe {group}: assignor {d.partition_assignor!r}, want {assignor!r}")
    listed = admin.list_consumer_groups(request_timeout=15, types={k.ConsumerGroupType.CONSUMER}).result(20)
    found = [x for x in listed.valid if x.group_id == group]
    others = [x.group_id for x in listed.valid if x.type != k.ConsumerGroupType.CONSUMER]
    if not found:
        problems.append(f"ListGroups (type consumer) does not list {group}; errors {listed.errors}")
    if others:
        problems.append(f"ListGroups (type consumer) lists groups of other types: {others[:g.MAX_SHOWN]}")


def pump_until_balanced(members, sizes, what, limit_s, hard_s=None, others=lambda: {}) -> float:
    return g.pump(members, lambda: g.balanced([m.assigned() for m in members], sizes), what, limit_s, hard_s,
                  others=others)


def scenario(bootstrap: str, session_timeout_ms: int) -> list[str]:
    k = g.ck()
    log(f"confluent-kafka {k.version()[0]}, librdkafka {k.libversion()[0]}; bootstrap {bootstrap}; "
        f"group.protocol=consumer, broker session timeout {session_timeout_ms} ms")
    run = g.common.run_id()
    topic = f"sys-kip848-{run}"
    group = f"kip848-{run}"
    move_limit_s = session_timeout_ms / 1000 + g.REBALANCE_ALLOWANCE_S + g.SLACK_S
    g.create_topic_ck(bootstrap, topic)
    admin = k.admin.AdminClient({"bootstrap.servers": bootstrap})
    acked: dict[tuple[int, int], bytes] = {}
    problems: list[str] = []
    members: list[g.Member] = []

    def member(name, group_id=group, protocol=PROTOCOL, **kw) -> g.Member:
        m = g.Member(name, bootstrap, group_id, topic, protocol=protocol, **kw)
        members.append(m)
        return m

    try:
        # -- 1. three members, 2/2/2 ----------------------------------------------------------
        g.produce_ck(bootstrap, topic, g.make_values(run, "p0", 300), acked)
        hw0 = g.ends(acked)
        a, b, c = (member(n) for n in ("A", "B", "C"))
        took = pump_until_balanced([a, b, c], [2, 2, 2], "three members reach 2/2/2", g.JOIN_DEADLINE_S)
        log(f"  A, B, C joined {group}: {g.state([a, b, c], {})} after {took:.1f}s")
        p0 = dict(acked)
        took = g.pump([a, b, c], lambda: g.covered(p0, [a, b, c]), "every record consumed", g.CONSUME_DEADLINE_S)
        log(f"  all 300 records consumed in {took:.1f}s")
        check_described(admin, group, [a, b, c], "uniform", problems)
        for m in (a, b, c):
            m.commit_sync()
        committed = g.group_offsets_ck(admin, group, topic)
        log(f"  committed after a synchronous commit: {committed}")
        if committed != hw0:
            problems.append(f"OffsetFetch after committing everything: {committed}, want the log ends {hw0}")

        # -- 2. C leaves: A and B take its partitions, keeping their own ------------------------
        a_had, b_had = a.assigned(), b.assigned()
        c.close()
        for m in (a, b):
            m.step = "after-leave"
        took = pump_until_balanced([a, b], [3, 3], "C left: A and B own all 6", move_limit_s, g.HARD_DEADLINE_S)
        log(f"  C closed; {took:.1f}s later A={a.assigned()} B={b.assigned()}")
        if not (set(a_had) <= set(a.assigned()) and set(b_had) <= set(b.assigned())):
            problems.append(f"uniform assignor: A {a_had} -> {a.assigned()}, B {b_had} -> {b.assigned()} "
                            f"after C left: a member lost a partition (not sticky)")
        g.produce_ck(bootstrap, topic, g.make_values(run, "p1", 300), acked)
        p1 = dict(acked)
        took = g.pump([a, b], lambda: g.covered(p1, members), "A and B consume 300 more", g.CONSUME_DEADLINE_S)
        log(f"  300 more records consumed by A and B in {took:.1f}s")
        rereads = [f"{m.name} p{p}@{o}" for m in (a, b) for p, o, _v, s in m.got if s == "after-leave" and o < hw0[p]]
        if rereads:
            problems.append(f"records below the commits {hw0} read again after C left: {rereads[:g.MAX_SHOWN]}")

        # -- 3. a member in another process joins, and is killed with -9 ------------------------
        d = g.ChildMember(bootstrap, topic, group, "D", protocol=PROTOCOL)
        took = g.pump([a, b], lambda: d.assignment is not None and g.balanced(
            [a.assigned(), b.assigned(), d.assignment], [2, 2, 2]), "A, B and the process D reach 2/2/2",
            g.JOIN_DEADLINE_S, others=lambda: {"D": d.assignment})
        log(f"  D (pid {d.proc.pid}) joined: A={a.assigned()} B={b.assigned()} D={d.assignment} after {took:.1f}s")
        d_had = d.assignment
        d.kill9()
        took = pump_until_balanced([a, b], [3, 3], f"D killed (-9): its partitions {d_had} reach A and B",
                                   move_limit_s, g.HARD_DEADLINE_S)
        log(f"  D killed with -9; {took:.1f}s later A={a.assigned()} B={b.assigned()} (bound {move_limit_s:.0f}s)")
        g.produce_ck(bootstrap, topic, g.make_values(run, "p2", 120), acked)
        p2 = dict(acked)
        took = g.pump([a, b], lambda: g.covered(p2, members), "A and B consume 120 more", g.CONSUME_DEADLINE_S)
        problems += g.check_at_least_once(f"group {group}", acked,
                                          ((p, o, v) for m in members for p, o, v, _ in m.got))

        # -- 4. empty; a classic member, then a consumer-protocol member, resume from commits --
        for m in (a, b):
            m.commit_sync()
            m.close()
        hw2 = g.ends(acked)
        committed = g.group_offsets_ck(admin, group, topic)
        if committed != hw2:
            problems.append(f"after A and B committed everything and closed, OffsetFetch says {committed}, want {hw2}")
        empty = g.describe_ck(admin, group)
        log(f"  A and B closed: state {empty.state.name}, {len(empty.members)} members, committed {committed}")
        if empty.state != k.ConsumerGroupState.EMPTY or empty.members:
            problems.append(f"describe {group} with no member left: {empty.state.name}, {len(empty.members)} members")
        g.produce_ck(bootstrap, topic, g.make_values(run, "p3", 120), acked)
        hw3 = g.ends(acked)
        e = member("E", protocol="classic", auto_commit=False)
        e.step = "E"
        g.pump([e], lambda: e.assigned() == list(range(PARTITIONS)), "classic E owns all 6", g.JOIN_DEADLINE_S)
        g.pump([e], lambda: {(p, o) for p, o, _, _ in e.got} >= {(p, o) for (p, o) in acked if o >= hw2[p]},
               "E consumes the records produced while the group was empty", g.CONSUME_DEADLINE_S)
        starts = e.first_offsets("E")
        log(f"  classic E started at {starts}; committed were {hw2}")
        if starts != {p: hw2[p] for p in range(PARTITIONS) if hw3[p] > hw2[p]}:
            problems.append(f"classic E started at {starts}, want the consumer group's commits {hw2}")
        half = {p: hw2[p] + (hw3[p] - hw2[p]) // 2 for p in range(PARTITIONS)}
        e.c.commit(offsets=[k.TopicPartition(topic, p, o) for p, o in half.items()], asynchronous=False)
        e.close()
        f = member("F", auto_commit=False)
        f.step = "F"
        g.pump([f], lambda: f.assigned() == list(range(PARTITIONS)), "consumer F owns all 6", g.JOIN_DEADLINE_S)
        g.pump([f], lambda: {(p, o) for p, o, _, _ in f.got} >= {(p, o) for (p, o) in acked if o >= half[p]},
               "F consumes from E's commits to the end", g.CONSUME_DEADLINE_S)
        starts = f.first_offsets("F")
        want = {p: half[p] for p in range(PARTITIONS) if hw3[p] > half[p]}
        log(f"  consumer-protocol F started at {starts} after classic E committed {half}")
        if starts != want:
            problems.append(f"consumer-protocol F started at {starts}, want classic E's commits {want}")
        f.commit_sync()
        f.close()
        committed = g.group_offsets_ck(admin, group, topic)
        if committed != hw3:
            problems.append(f"after F consumed and committed everything, OffsetFetch says {committed}, want {hw3}")

        # -- 5. the range server assignor ----------------------------------------------------
        ranged = f"kip848-range-{run}"
        x, y = (member(n, group_id=ranged, strategy="range") for n in ("X", "Y"))
        took = pump_until_balanced([x, y], [3, 3], "range: X and Y split 3/3", g.JOIN_DEADLINE_S)
        log(f"  range group {ranged}: X={x.assigned()} Y={y.assigned()} after {took:.1f}s")
        if sorted([x.assigned(), y.assigned()]) != [[0, 1, 2], [3, 4, 5]]:
            problems.append(f"range assignor: X={x.assigned()} Y={y.assigned()}, want 0-2 and 3-5")
        check_described(admin, ranged, [x, y], "range", problems)
        took = g.pump([x, y], lambda: g.covered(acked, [x, y]), "the range group consumes the topic",
                      g.CONSUME_DEADLINE_S)
        problems += g.check_at_least_once(f"group {ranged}", acked, ((p, o, v) for m in (x, y) for p, o, v, _ in m.got))
    except Fail as err:
        problems.append(str(err))
    finally:
        for m in members:
            try:
                m.close()
            except Exception as err:  # closing must not hide the verdict
                problems.append(f"{m.name}: close failed: {err}")
        g._kill_children()
    errs = [e for m in members for e in m.errors]
    if errs:
        problems.append(f"{len(errs)} consumer error(s), e.g. {errs[:g.MAX_SHOWN]}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bootstrap")
    ap.add_argument("--session-timeout-ms", type=int, default=10000)
    a = ap.parse_args(argv)
    # SIGTERM (tests/run-system's time limit) becomes SystemExit, so atexit kills the child.
    signal.signal(signal.SIGTERM, lambda signum, _f: sys.exit(128 + signum))
    t0 = time.monotonic()
    try:
        problems = scenario(a.bootstrap, a.session_timeout_ms)
    except Exception as e:  # an unexpected client error: still a clear verdict
        import traceback
        traceback.print_exc(file=sys.stdout)
        problems = [f"unexpected {type(e).__name__}: {e}"]
    for p in problems:
        log(f"  FAIL {p}")
    log(f"groups-kip848 confluent-kafka: {'FAIL' if problems else 'PASS'} in {time.monotonic() - t0:.1f}s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
