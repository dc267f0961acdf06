"""Shared workload and checker for the per-client compatibility tests.

Every client test (confluent_kafka_test.py, kafka_python_test.py, kcat_test.sh; kafkajs_test.js
carries a JavaScript twin of this file) runs the same scenario so their results are comparable:

  for each compression codec the client supports:
    * a 6-partition topic of its own,
    * RECORDS_PER_CODEC keyed records with headers and explicit CreateTime timestamps,
    * read back with *assign* from the beginning of every partition (Sluice has no consumer
      groups yet, so nothing here may use subscribe or commit),
    * checked by `check()` below.

What `check()` proves, and why each matters for a broker:
  * exactly once: every acknowledged record is read back once; nothing unknown appears
    (lost writes, duplicated batches, or records from another topic);
  * offsets: a record sits at the offset its produce acknowledgement reported (the broker
    assigns base offsets by rewriting the batch in place; a mismatch means it lied in the ack);
  * same key -> same partition, and the partition is murmur2(key) % partitions where the client
    uses Kafka's Java default partitioner (the broker must report partition counts correctly);
  * per-partition order equals produce order (offsets strictly increase along produce order);
  * key, value (including a null value), headers (binary, empty, duplicate keys, in order) and
    timestamps (CreateTime) come back byte for byte, through every compression codec.

The module is also a small CLI used by kcat_test.sh (`kcat-input`, `kcat-verify`, `partitions`),
so that the shell test shares this checker instead of re-implementing it in awk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field

CODECS_ALL = ["none", "gzip", "snappy", "lz4", "zstd"]
NUM_PARTITIONS = 6
NUM_KEYS = 37  # prime, so keys spread unevenly and a wrong modulus is likely to show
RECORDS_PER_CODEC = 600
# One record in this many carries a null value (a tombstone), to check null != empty.
NULL_VALUE_EVERY = 97
# Timestamps are explicit and 10 minutes in the past: far enough from "now" to be told apart
# from a broker-assigned LogAppendTime, and well inside any default retention or
# message.timestamp.*.max.ms bound.
TIMESTAMP_AGE_MS = 600_000
TIMESTAMP_TYPE_CREATE = 0  # Kafka record batch attribute bit 3 clear = CreateTime
MAX_ERRORS_SHOWN = 25


# --------------------------------------------------------------------------------------------
# murmur2: Kafka's Java default partitioner (org.apache.kafka.common.utils.Utils.murmur2)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), returned as a signed 32-bit int like Java."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    mask = 0xFFFFFFFF
    h = (seed ^ length) & mask
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    extra = length % 4
    idx = length & ~3
    if extra >= 3:
        h ^= data[idx + 2] << 16
    if extra >= 2:
        h ^= data[idx + 1] << 8
    if extra >= 1:
        h ^= data[idx]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, num_partitions: int) -> int:
    """Partition the Java client (and librdkafka's murmur2_random, kafkajs 2.x) picks."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


# Vectors from Kafka's UtilsTest.testMurmur2. Checked at import so a broken hash can never
# make a partitioning failure look like a broker bug.
_MURMUR2_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}
for _data, _want in _MURMUR2_VECTORS.items():
    assert murmur2(_data) == _want, f"murmur2 self-test failed for {_data!r}"


# --------------------------------------------------------------------------------------------
# The workload


@dataclass
class Rec:
    """One record to produce, plus what the produce acknowledgement said about it."""

    rid: str  # identity, unique within a run; carried in the "seq" header and the value
    seq: int  # produce order within its topic
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int
    ack_partition: int | None = None
    ack_offset: int | None = None


@dataclass
class Got:
    """One record as a consumer returned it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None
    timestamp_ms: int | None
    timestamp_type: int | None  # None when the client does not expose it


def run_id() -> str:
    """Short unique suffix so reruns against one broker never share topics."""
    return f"{int(time.time()) % 1_000_000}-{os.getpid()}-{random.randint(0, 9999):04d}"


def topic_name(client: str, codec: str, rid: str) -> str:
    return f"sys-{client}-{codec}-{rid}"


def make_records(run: str, codec: str, n: int = RECORDS_PER_CODEC) -> list[Rec]:
    """Deterministic (per run and codec) records: compressible but not trivially so."""
    rng = random.Random(f"{run}/{codec}")
    base_ts = (int(time.time() * 1000) - TIMESTAMP_AGE_MS) // 1000 * 1000
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    out = []
    for seq in range(n):
        rid = f"{codec}-{seq:06d}"
        key = f"key-{rng.randrange(NUM_KEYS):03d}".encode()
        if seq % NULL_VALUE_EVERY == NULL_VALUE_EVERY - 1:
            value = None
        else:
            body = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 40)))
            value = f"{run}|{rid}|{body}|{rng.getrandbits(64):016x}".encode()
        headers = [
            ("seq", rid.encode()),
            ("codec", codec.encode()),
            ("bin", bytes([seq % 256, 0, 255, (seq * 7) % 256])),
            ("empty", b""),
            ("dup", b"first"),
            ("dup", b"second"),
        ]
        out.append(Rec(rid, seq, key, value, headers, base_ts + seq * 3))
    return out


def header_map(headers) -> dict:
    return {k: v for k, v in (headers or [])}


# --------------------------------------------------------------------------------------------
# The checker


@dataclass
class Report:
    label: str
    errors: list[str] = field(default_factory=list)

    def err(self, msg: str) -> None:
        self.errors.append(msg)

    def show(self) -> bool:
        """Print a verdict; returns True when there were no errors."""
        if not self.errors:
            print(f"  ok   {self.label}")
            return True
        print(f"  FAIL {self.label}: {len(self.errors)} problem(s)")
        for e in self.errors[:MAX_ERRORS_SHOWN]:
            print(f"       - {e}")
        if len(self.errors) > MAX_ERRORS_SHOWN:
            print(f"       ... and {len(self.errors) - MAX_ERRORS_SHOWN} more")
        return False


def check(
    label: str,
    produced: list[Rec],
    got: list[Got],
    num_partitions: int,
    *,
    rid_of,
    expect_murmur2: bool,
    check_acks: bool = True,
    check_headers: bool = True,
    ts_window=None,
) -> bool:
    """Compare what was produced with what was read back; print and return the verdict.

    rid_of(got) extracts a record identity from a consumed record. ts_window(rec) returns an
    inclusive (lo, hi) range for clients that cannot set timestamps (kcat); otherwise the
    timestamp must equal rec.timestamp_ms exactly.
    """
    rep = Report(label)
    by_rid = {r.rid: r for r in produced}
    seen: dict[str, Got] = {}
    for g in got:
        if not 0 <= g.partition < num_partitions:
            rep.err(f"record at partition {g.partition} outside 0..{num_partitions - 1}")
        rid = rid_of(g)
        rec = by_rid.get(rid)
        if rec is None:
            rep.err(f"unknown record p{g.partition}@{g.offset} key={g.key!r} value={g.value!r:.80}")
            continue
        if rid in seen:
            first = seen[rid]
            rep.err(f"{rid} read twice: p{first.partition}@{first.offset} and p{g.partition}@{g.offset}")
            continue
        seen[rid] = g
        if g.key != rec.key:
            rep.err(f"{rid} key {g.key!r} != produced {rec.key!r}")
        if g.value != rec.value:
            rep.err(f"{rid} value {g.value!r:.60} != produced {rec.value!r:.60}")
        if check_headers and list(g.headers or []) != rec.headers:
            rep.err(f"{rid} headers {g.headers!r} != produced {rec.headers!r}")
        if ts_window is None:
            if g.timestamp_ms != rec.timestamp_ms:
                rep.err(f"{rid} timestamp {g.timestamp_ms} != produced {rec.timestamp_ms}")
        else:
            lo, hi = ts_window(rec)
            if g.timestamp_ms is None or not lo <= g.timestamp_ms <= hi:
                rep.err(f"{rid} timestamp {g.timestamp_ms} outside produce window [{lo}, {hi}]")
        if g.timestamp_type is not None and g.timestamp_type != TIMESTAMP_TYPE_CREATE:
            rep.err(f"{rid} timestamp type {g.timestamp_type}, expected CreateTime (0)")
        if check_acks and rec.ack_partition is not None:
            if (g.partition, g.offset) != (rec.ack_partition, rec.ack_offset):
                rep.err(
                    f"{rid} read at p{g.partition}@{g.offset} but the produce ack said "
                    f"p{rec.ack_partition}@{rec.ack_offset}"
                )
        if expect_murmur2 and rec.key is not None:
            want = java_partition(rec.key, num_partitions)
            if g.partition != want:
                rep.err(f"{rid} key {rec.key!r} in p{g.partition}, murmur2 says p{want}")

    missing = [r.rid for r in produced if r.rid not in seen]
    if missing:
        rep.err(f"{len(missing)} acknowledged record(s) never read back, e.g. {missing[:5]}")

    # Same key -> same partition (checked on the reads, independent of any partitioner).
    key_parts: dict[bytes, set[int]] = {}
    for rid, g in seen.items():
        key_parts.setdefault(by_rid[rid].key, set()).add(g.partition)
    for key, parts in sorted(key_parts.items()):
        if len(parts) > 1:
            rep.err(f"key {key!r} landed in several partitions {sorted(parts)}")

    # Per-partition order: sorted by offset, produce order (seq) must strictly increase.
    per_part: dict[int, list[tuple[int, int]]] = {}
    for rid, g in seen.items():
        per_part.setdefault(g.partition, []).append((g.offset, by_rid[rid].seq))
    for p, items in sorted(per_part.items()):
        items.sort()
        for (o1, s1), (o2, s2) in zip(items, items[1:]):
            if o1 == o2:
                rep.err(f"p{p}: two records at offset {o1}")
            elif s2 <= s1:
                rep.err(f"p{p}: produce order broken: seq {s1}@{o1} before seq {s2}@{o2}")
                break
    used = len(per_part)
    if produced and used < min(num_partitions, 2):
        rep.err(f"all records landed in {used} partition(s): keys were not spread")
    ok = rep.show()
    if ok:
        print(f"       {len(seen)} records over {used} partitions verified")
    return ok


# --------------------------------------------------------------------------------------------
# CLI for kcat_test.sh


def _cmd_kcat_input(args) -> int:
    """Write kcat -K: input chunks: one line `key:value` per record, values without ':' or tabs.

    kcat cannot set per-record headers or timestamps, so each chunk becomes one kcat
    invocation with its own `-H chunk=N` header; the timestamps are checked against the wall
    clock window of that invocation instead.
    """
    recs = make_records(args.run, args.codec, args.records)
    os.makedirs(args.out_dir, exist_ok=True)
    per_chunk = (len(recs) + args.chunks - 1) // args.chunks
    for c in range(args.chunks):
        with open(os.path.join(args.out_dir, f"chunk-{c}.txt"), "w") as f:
            for r in recs[c * per_chunk : (c + 1) * per_chunk]:
                f.write(f"{r.key.decode()}:{_kcat_value(r)}\n")
    return 0


def _kcat_value(r: Rec) -> str:
    # kcat sends text lines: a null value cannot be expressed, so it becomes a marker.
    v = r.value.decode() if r.value is not None else f"null-{r.rid}"
    assert ":" not in v and "\t" not in v and "\n" not in v
    return f"{r.rid}={v}"


def _cmd_kcat_verify(args) -> int:
    """Check kcat -C -f '%p\\t%o\\t%T\\t%k\\t%s\\t%h\\n' output against the regenerated input."""
    recs = make_records(args.run, args.codec, args.records)
    per_chunk = (len(recs) + args.chunks - 1) // args.chunks
    windows = json.loads(open(args.windows).read())  # chunk -> [t_before_ms, t_after_ms]
    chunk_of = {}
    for r in recs:
        c = r.seq // per_chunk
        chunk_of[r.rid] = c
        r.value = _kcat_value(r).encode()
        r.headers = [("codec", args.codec.encode()), ("chunk", str(c).encode())]
    got = []
    bad_lines = 0
    for line in open(args.consumed, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 6:
            bad_lines += 1
            print(f"  unparsable kcat line: {line[:120]!r}")
            continue
        p, o, ts, k, v, h = parts
        headers = []
        for kv in filter(None, h.split(",")):
            hk, _, hv = kv.partition("=")
            headers.append((hk, hv.encode()))
        got.append(Got(int(p), int(o), k.encode(), v.encode(), headers, int(ts), None))

    def rid_of(g: Got) -> str:
        return (g.value or b"").decode().split("=", 1)[0]

    def ts_window(r: Rec):
        lo, hi = windows[str(chunk_of[r.rid])]
        return lo, hi

    ok = check(
        args.label,
        recs,
        got,
        args.partitions,
        rid_of=rid_of,
        expect_murmur2=True,
        check_acks=False,
        ts_window=ts_window,
    )
    return 0 if ok and bad_lines == 0 else 1


def _cmd_partitions(args) -> int:
    """Print the partition count of a topic from `kcat -L -J` output on stdin."""
    meta = json.load(sys.stdin)
    for t in meta.get("topics", []):
        if t.get("topic") == args.topic:
            if t.get("err"):
                print(f"metadata error for {args.topic}: {t['err']}", file=sys.stderr)
                return 1
            print(len(t.get("partitions", [])))
            return 0
    print(f"topic {args.topic} not in metadata", file=sys.stderr)
    return 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("kcat-input", "kcat-verify"):
        sp = sub.add_parser(name)
        sp.add_argument("--run", required=True)
        sp.add_argument("--codec", required=True)
        sp.add_argument("--records", type=int, default=RECORDS_PER_CODEC)
        sp.add_argument("--chunks", type=int, default=6)
        if name == "kcat-input":
            sp.add_argument("--out-dir", required=True)
        else:
            sp.add_argument("--consumed", required=True)
            sp.add_argument("--windows", required=True)
            sp.add_argument("--partitions", type=int, required=True)
            sp.add_argument("--label", required=True)
    sp = sub.add_parser("partitions")
    sp.add_argument("--topic", required=True)
    args = ap.parse_args(argv)
    return {"kcat-input": _cmd_kcat_input, "kcat-verify": _cmd_kcat_verify, "partitions": _cmd_partitions}[
        args.cmd
    ](args)


if __name__ == "__main__":
    sys.exit(main())
