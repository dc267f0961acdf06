#!/usr/bin/env python3
"""Single-broker throughput benchmark for Sluice, with the machine's own disk figure beside it.

What: starts one `sluice serve` on free loopback ports with a temporary data dir (fsync before
acks=all, the default), produces 1 KiB records with librdkafka (confluent-kafka) acks=all into a
1-partition topic (optionally also a 6-partition one), consumes them back from the beginning
with assign(), measures sequential write + one fdatasync per producer-sized batch on the data
dir's file system, and prints one summary block: produce MB/s vs that disk figure, fetch MB/s vs
the 1 GB/s target, and where the broker's time went (its /metrics fsync histogram, the CPU
seconds of broker and client per phase, and optionally a perf profile of the broker).

Because client and broker share two cores, a Python client can be the bottleneck. So each layout
also runs a "raw" producer (Produce v3 requests carrying one pre-built batch of the librdkafka
batch's record count, a window in flight) and a "raw" fetcher (Fetch v4, batches walked by header
only): those two measure the broker rather than the client.

Why: "produce at N MB/s" means nothing on its own on a shared 2-vCPU VM whose fsync cost varies
(reference/clients_perf.md §4); the ratio to the same disk measured in the same run does.

Everything is bounded: each phase has a record count and a deadline, every wait has a timeout,
and the broker is stopped with SIGTERM (and must exit 0) whatever happens. Loopback only.
MB = 10^6 bytes, MiB = 2^20 bytes; both are printed where they could be confused.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from raw_kafka import (MB, RAW_PRODUCE_IN_FLIGHT, RAW_RECORDS_PER_BATCH_DEFAULT, RECORD_BYTES, percentile, raw_fetch,
                       raw_produce)

# Workload defaults (overridable by flags).
RECORDS_DEFAULT = 1_000_000  # ~1 GB per topic: phases of seconds, not 100s of ms
PHASE_SECONDS_DEFAULT = 60.0
LINGER_MS = 5
BATCH_BYTES = 1_048_576  # librdkafka batch.size: the largest batch per partition
QUEUE_MESSAGES_MAX = 20_000  # in the client queue: bounds produce->ack latency to queueing
FETCH_TARGET_MB_S = 1000.0  # the 1 GB/s fetch target

# Bounds on waits.
LOADGEN_GRACE_SECONDS = 60.0  # a loadgen phase may run this long past its deadline (flush)
BROKER_READY_SECONDS = 30.0
BROKER_EXIT_SECONDS = 30.0
ADMIN_SECONDS = 20.0
FLUSH_SECONDS = 60.0
POLL_SECONDS = 0.1
CONSUME_BATCH = 10_000
STATS_INTERVAL_MS = 1000

# Disk measurement bounds.
DISK_BYTES_MAX = 1024 * 1024 * 1024  # as clients_perf.md §4 (1 GiB sequential)
DISK_SECONDS_MAX = 20.0
DISK_SYNCS_MIN = 50

# perf (optional): sampling rate and report size.
PERF_HZ = 999
PERF_START_SECONDS = 0.5
PERF_STOP_SECONDS = 60
PERF_REPORT_SECONDS = 300
PERF_PERCENT_MIN = 1.5
PERF_ROWS_MAX = 18

MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, ""


# --------------------------------------------------------------------------------------------
# Broker lifecycle


class Broker:
    """One `sluice serve` process on free loopback ports and a temporary data dir."""

    def __init__(self, binary: str, data_root: str | None, log_path: str):
        self.data_dir = tempfile.mkdtemp(prefix="sluice-bench-", dir=data_root)
        self.kafka_port = free_port()
        self.admin_port = free_port()
        self.rpc_port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "wb")
        command = [
            binary, "serve",
            "--data-dir", self.data_dir,
            "--kafka-addr", f"127.0.0.1:{self.kafka_port}",
            "--admin-addr", f"127.0.0.1:{self.admin_port}",
            "--rpc-addr", f"127.0.0.1:{self.rpc_port}",
            "--auto-create-topics", "false",
        ]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + BROKER_READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode} before ready; log: {self.log_path}")
            status, _ = http_get(self.admin + "/v1/status/ready")
            if status == 200:
                return
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"broker not ready within {BROKER_READY_SECONDS}s; log: {self.log_path}")

    def metrics(self) -> str:
        status, body = http_get(self.admin + "/metrics", timeout=5.0)
        return body if status == 200 else ""

    def stop(self) -> int:
        """SIGTERM, wait (bounded), SIGKILL as a last resort. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=BROKER_EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=BROKER_EXIT_SECONDS)
                self.log.close()
                return -9
        self.log.close()
        return self.process.returncode

    def cleanup(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def own_cpu_seconds() -> float:
    """This process's CPU seconds, librdkafka's threads included, plus finished child processes
    (the compiled load generator, when --loadgen is used)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Phase:
    """CPU use of the broker and of this client over one phase, and an optional perf profile."""

    def __init__(self, broker_pid: int, perf: bool, label: str):
        self.broker_pid = broker_pid
        self.label = label
        self.perf_data = None
        self.perf = None
        if perf and shutil.which("perf"):
            self.perf_data = os.path.join(tempfile.gettempdir(), f"sluice-bench-{os.getpid()}.perf.data")
            self.perf = subprocess.Popen(["perf", "record", "-g", "-F", str(PERF_HZ), "-o", self.perf_data,
                                          "-p", str(broker_pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(PERF_START_SECONDS)
        self.broker0 = process_cpu_seconds(broker_pid)
        self.client0 = own_cpu_seconds()
        self.wall0 = time.perf_counter()

    def stop(self) -> None:
        """Ends the measured window (idempotent); `finish` prints it."""
        if getattr(self, "wall", None) is None:
            self.wall = time.perf_counter() - self.wall0
            self.broker = process_cpu_seconds(self.broker_pid) - self.broker0
            self.client = own_cpu_seconds() - self.client0

    def finish(self) -> None:
        self.stop()
        wall, broker, client = self.wall, self.broker, self.client
        print(f"    cpu over {wall:.2f} s: broker {broker:.2f} s ({100 * broker / wall:.0f}% of a core), "
              f"client {client:.2f} s ({100 * client / wall:.0f}%); machine has {os.cpu_count()} cores")
        if self.perf is None:
            return
        self.perf.send_signal(signal.SIGINT)
        self.perf.wait(timeout=PERF_STOP_SECONDS)
        report = subprocess.run(["perf", "report", "-i", self.perf_data, "--no-children", "--stdio", "-g", "none",
                                 "--sort", "sym", "--percent-limit", str(PERF_PERCENT_MIN)],
                                capture_output=True, text=True, timeout=PERF_REPORT_SECONDS).stdout
        rows = [line.strip() for line in report.splitlines() if line.strip() and not line.startswith("#")]
        print(f"    perf, broker self time >= {PERF_PERCENT_MIN}% ({self.label}):")
        for row in rows[:PERF_ROWS_MAX]:
            print("      " + row)
        os.unlink(self.perf_data)


def metric_values(text: str, name: str) -> dict[str, float]:
    """Samples of one metric family: {'{labels}' or '': value}, incl. _sum/_count/quantiles."""
    values: dict[str, float] = {}
    pattern = re.compile(r"^(" + re.escape(name) + r"(?:_sum|_count|_bucket)?)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


def metric_total(text: str, name: str) -> float:
    """Sum of a counter over its labels (0 if absent)."""
    return sum(v for k, v in metric_values(text, name).items() if k.startswith(name + "{") or k == name)


# --------------------------------------------------------------------------------------------
# Phases


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                  request_timeout=ADMIN_SECONDS)
    futures[topic].result(timeout=ADMIN_SECONDS)


def run_loadgen(loadgen: str, mode: str, bootstrap: str, topic: str, partitions: int, records: int,
                seconds: float) -> dict:
    """One phase on the compiled load generator (bench/loadgen, librdkafka via the rdkafka crate):
    the same librdkafka settings as the Python phases below, without an interpreter in the loop."""
    done = subprocess.run([loadgen, mode, bootstrap, topic, str(partitions), str(records), str(seconds)],
                          capture_output=True, text=True, timeout=seconds + LOADGEN_GRACE_SECONDS)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {mode} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def produce(bootstrap: str, topic: str, partitions: int, records: int, seconds: float, phase: "Phase",
            loadgen: str | None = None) -> dict:
    """acks=all, open loop bounded by a client queue of QUEUE_MESSAGES_MAX records."""
    if loadgen:
        result = run_loadgen(loadgen, "produce", bootstrap, topic, partitions, records, seconds)
        phase.stop()
        return result
    stats: dict = {}
    sent_at = [collections.deque() for _ in range(partitions)]
    latencies: list[float] = []
    errors = [0]

    def on_delivery(error, message):
        t0 = sent_at[message.partition()].popleft()
        if error is not None:
            errors[0] += 1
        else:
            latencies.append(time.perf_counter() - t0)

    def on_stats(payload: str):
        stats["last"] = json.loads(payload)

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": LINGER_MS,
        "batch.size": BATCH_BYTES,
        "batch.num.messages": 1_000_000,
        "queue.buffering.max.messages": QUEUE_MESSAGES_MAX,
        "compression.type": "none",
        "enable.idempotence": False,
        "statistics.interval.ms": STATS_INTERVAL_MS,
        "stats_cb": on_stats,
        "on_delivery": on_delivery,
    })
    value = os.urandom(RECORD_BYTES)  # incompressible, though compression is off
    started = time.perf_counter()
    deadline = started + seconds
    produced = 0
    while produced < records and time.perf_counter() < deadline:
        partition = produced % partitions
        try:
            sent_at[partition].append(time.perf_counter())
            producer.produce(topic, value, partition=partition)
            produced += 1
        except BufferError:
            sent_at[partition].pop()
            producer.poll(0.001)
            continue
        if produced % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(max(1.0, deadline + FLUSH_SECONDS - time.perf_counter()))
    elapsed = time.perf_counter() - started
    phase.stop()
    producer.poll(1.5 * STATS_INTERVAL_MS / 1000)  # one more statistics callback
    acked = len(latencies)
    latencies.sort()
    batch_avg = None
    topic_stats = stats.get("last", {}).get("topics", {}).get(topic, {})
    if topic_stats.get("batchsize", {}).get("avg"):
        batch_avg = topic_stats["batchsize"]["avg"]
    return {
        "produced": produced, "acked": acked, "errors": errors[0], "unflushed": remaining,
        "seconds": elapsed, "bytes": acked * RECORD_BYTES,
        "mb_s": acked * RECORD_BYTES / MB / elapsed, "records_s": acked / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3,
        "max_ms": (latencies[-1] * 1e3) if latencies else float("nan"),
        "client_batch_bytes_avg": batch_avg,
        "client_batch_records_avg": topic_stats.get("batchcnt", {}).get("avg"),
    }


def consume(bootstrap: str, topic: str, partitions: int, records: int, seconds: float,
            loadgen: str | None = None) -> dict:
    if loadgen:
        return run_loadgen(loadgen, "consume", bootstrap, topic, partitions, records, seconds)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-{uuid.uuid4()}",  # unique: never waits on a stale member
        "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
        "fetch.wait.max.ms": 100,
        "queued.max.messages.kbytes": 262_144,
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    received = 0
    value_bytes = 0
    errors = 0
    started = time.perf_counter()
    first_at = None
    deadline = started + seconds
    while received < records and time.perf_counter() < deadline:
        batch = consumer.consume(num_messages=CONSUME_BATCH, timeout=0.5)
        for message in batch:
            if message.error() is not None:
                errors += 1
                continue
            received += 1
            value_bytes += len(message.value())
        if batch and first_at is None:
            first_at = time.perf_counter()
    elapsed = time.perf_counter() - started
    consumer.close()
    return {
        "received": received, "errors": errors, "seconds": elapsed, "bytes": value_bytes,
        "mb_s": value_bytes / MB / elapsed, "records_s": received / elapsed,
        "first_batch_ms": ((first_at - started) * 1e3) if first_at else float("nan"),
    }


def print_raw(label: str, r: dict) -> None:
    print(f"  raw fetch {label} (Fetch v4, batches walked by header, not decoded): {r['received']} records in "
          f"{r['requests']} requests, {r['seconds']:.2f} s")
    print(f"    {r['mb_s']:.1f} MB/s ({r['mb_s'] * MB / MIB:.1f} MiB/s), {r['records_s']:,.0f} records/s")


def print_raw_produce(label: str, r: dict, b: dict) -> None:
    print(f"  raw produce {label} (Produce v3 acks=-1, {RAW_PRODUCE_IN_FLIGHT} in flight, one pre-built "
          f"{r['batch_bytes']:,} B batch per request): {r['batches']} batches, {r['errors']} errors, {r['seconds']:.2f} s")
    print(f"    {r['mb_s']:.1f} MB/s ({r['mb_s'] * MB / MIB:.1f} MiB/s), {r['records_s']:,.0f} records/s; "
          f"request->response p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    if b["fsyncs"]:
        print(f"    broker: {b['fsyncs']:.0f} fsync rounds (avg {b['bytes_per_fsync'] or 0:,.0f} B each, "
              f"mean {b['fsync_mean_ms']:.2f} ms), fsync busy {100 * b['fsync_busy_fraction']:.0f}% of the phase")


def disk_figure(directory: str, batch_bytes: int) -> dict:
    """Sequential appends of batch_bytes, one fdatasync each, in a new file under directory."""
    path = os.path.join(directory, "disk-figure.tmp")
    block = os.urandom(batch_bytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    syncs: list[float] = []
    written = 0
    started = time.perf_counter()
    try:
        while written + batch_bytes <= DISK_BYTES_MAX:
            if time.perf_counter() - started > DISK_SECONDS_MAX and len(syncs) >= DISK_SYNCS_MIN:
                break
            t0 = time.perf_counter()
            view = memoryview(block)
            while view:  # bounded: each write advances or raises
                view = view[os.write(fd, view):]
            os.fdatasync(fd)
            syncs.append(time.perf_counter() - t0)
            written += batch_bytes
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(path)
    syncs.sort()
    return {
        "batch_bytes": batch_bytes, "batches": len(syncs), "bytes": written, "seconds": elapsed,
        "mib_s": written / MIB / elapsed, "mb_s": written / MB / elapsed,
        "p50_ms": percentile(syncs, 0.5) * 1e3, "p99_ms": percentile(syncs, 0.99) * 1e3,
    }


def bracket(before: dict, after: dict) -> dict:
    """The disk figure for a phase: the mean of the measurements just before and just after it."""
    mb_s = (before["mb_s"] + after["mb_s"]) / 2
    return {**before, "mb_s": mb_s, "mib_s": mb_s * MB / MIB, "before_mb_s": before["mb_s"], "after_mb_s": after["mb_s"]}


def print_disk(label: str, disk: dict) -> None:
    print(f"  disk ({label}): {disk['batches']} x ({disk['batch_bytes']:,} B write + fdatasync) in "
          f"{disk['seconds']:.2f} s: {disk['mib_s']:.1f} MiB/s ({disk['mb_s']:.1f} MB/s); "
          f"per batch p50 {disk['p50_ms']:.2f} ms, p99 {disk['p99_ms']:.2f} ms")


def broker_view(before: str, after: str, seconds: float) -> dict:
    """Deltas of the broker's own counters over a phase."""
    def delta(name: str) -> float:
        return metric_total(after, name) - metric_total(before, name)

    fsync_count = delta("sluice_fsync_seconds_count")
    fsync_sum = delta("sluice_fsync_seconds_sum")
    batches = delta("sluice_produce_batches_total")
    received = delta("sluice_bytes_received_total")
    quantiles = {k: v for k, v in metric_values(after, "sluice_fsync_seconds").items() if "quantile" in k}
    produce_sum = sum(v for k, v in metric_values(after, "sluice_request_duration_seconds").items()
                      if k.startswith("sluice_request_duration_seconds_sum") and 'api="Produce"' in k) - \
        sum(v for k, v in metric_values(before, "sluice_request_duration_seconds").items()
            if k.startswith("sluice_request_duration_seconds_sum") and 'api="Produce"' in k)
    return {
        "fsyncs": fsync_count, "fsync_seconds": fsync_sum,
        "fsync_busy_fraction": fsync_sum / seconds if seconds > 0 else float("nan"),
        "fsync_mean_ms": (fsync_sum / fsync_count * 1e3) if fsync_count else float("nan"),
        "fsync_quantiles": quantiles,
        "batches": batches, "bytes_received": received,
        "batch_bytes_avg": (received / batches) if batches else None,
        "bytes_per_fsync": (received / fsync_count) if fsync_count else None,
        "records": delta("sluice_records_appended_total"),
        "fetch_bytes": delta("sluice_fetch_bytes_total"),
        "produce_request_seconds": produce_sum,
    }


# --------------------------------------------------------------------------------------------
# Reporting


def print_produce(label: str, r: dict, b: dict) -> None:
    print(f"  produce {label}: {r['acked']}/{r['produced']} acked, {r['errors']} errors, {r['seconds']:.2f} s")
    print(f"    {r['mb_s']:.1f} MB/s ({r['mb_s'] * MB / MIB:.1f} MiB/s), {r['records_s']:,.0f} records/s; "
          f"produce->ack p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms")
    if r["client_batch_bytes_avg"]:
        print(f"    client batches: avg {r['client_batch_bytes_avg']:,.0f} B, "
              f"{r['client_batch_records_avg'] or 0:,.0f} records (librdkafka stats)")
    if b["batches"]:
        print(f"    broker: {b['batches']:.0f} batches (avg {b['batch_bytes_avg']:,.0f} B incl. request framing), "
              f"{b['fsyncs']:.0f} fsync rounds (avg {b['bytes_per_fsync'] or 0:,.0f} B each, mean {b['fsync_mean_ms']:.2f} ms), "
              f"fsync busy {100 * b['fsync_busy_fraction']:.0f}% of the phase")


def print_consume(label: str, r: dict, b: dict) -> None:
    print(f"  fetch {label}: {r['received']} records, {r['errors']} errors, {r['seconds']:.2f} s "
          f"(first batch after {r['first_batch_ms']:.0f} ms)")
    print(f"    {r['mb_s']:.1f} MB/s ({r['mb_s'] * MB / MIB:.1f} MiB/s), {r['records_s']:,.0f} records/s; "
          f"broker sent {b['fetch_bytes'] / MB:.1f} MB of records")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--records", type=int, default=RECORDS_DEFAULT)
    parser.add_argument("--seconds", type=float, default=PHASE_SECONDS_DEFAULT, help="deadline per phase")
    parser.add_argument("--six", action="store_true", help="also run a 6-partition topic")
    parser.add_argument("--data-root", default=None, help="parent of the temp data dir (default: $TMPDIR)")
    parser.add_argument("--disk-batch-bytes", type=int, default=0,
                        help="fdatasync batch size for the disk figure (default: the average producer batch)")
    parser.add_argument("--perf", action="store_true", help="perf-record the broker in every phase (top symbols)")
    parser.add_argument("--keep-log", action="store_true")
    parser.add_argument("--loadgen", default=None,
                        help="path of bench/loadgen's binary: run produce and fetch on it instead of Python")
    args = parser.parse_args()

    log_path = os.path.join(tempfile.gettempdir(), f"sluice-bench-{os.getpid()}.log")
    broker = Broker(args.binary, args.data_root, log_path)
    exit_code = None
    summary_rows: list[tuple[str, dict, dict, dict, dict, dict]] = []
    try:
        broker.wait_ready()
        fs = subprocess.run(["df", "-T", broker.data_dir], capture_output=True, text=True).stdout.splitlines()[-1]
        print(f"broker pid {broker.process.pid}: kafka {broker.bootstrap}, admin {broker.admin}, data {broker.data_dir}")
        print(f"  file system: {fs}")
        client = f"bench/loadgen ({args.loadgen})" if args.loadgen else "confluent-kafka (Python)"
        print(f"load generator: librdkafka via {client}")
        print(f"workload: {args.records} x {RECORD_BYTES} B records per topic, acks=all, linger.ms={LINGER_MS}, "
              f"batch.size={BATCH_BYTES}, deadline {args.seconds:.0f} s per phase")
        layouts = [("1 partition", 1)] + ([("6 partitions", 6)] if args.six else [])
        for label, partitions in layouts:
            topic = f"bench-{partitions}p-{uuid.uuid4().hex[:8]}"
            create_topic(broker.bootstrap, topic, partitions)
            # The disk figure for this layout brackets its produce phase (before and after): this
            # VM's fsync speed drifts by 4x over a run (a host write cache fills), so only
            # measurements under the same conditions make the ratio meaningful.
            disk_here = disk_figure(broker.data_dir, args.disk_batch_bytes or BATCH_BYTES)
            print_disk(f"before produce {label}", disk_here)
            m0 = broker.metrics()
            phase = Phase(broker.process.pid, args.perf, f"produce {label}")
            produced = produce(broker.bootstrap, topic, partitions, args.records, args.seconds, phase, args.loadgen)
            m1 = broker.metrics()
            produce_broker = broker_view(m0, m1, produced["seconds"])
            print_produce(label, produced, produce_broker)
            phase.finish()
            disk_after = disk_figure(broker.data_dir, args.disk_batch_bytes or BATCH_BYTES)
            print_disk(f"after produce {label}", disk_after)
            disk_here = bracket(disk_here, disk_after)
            phase = Phase(broker.process.pid, args.perf, f"fetch {label}")
            consumed = consume(broker.bootstrap, topic, partitions, produced["acked"], args.seconds, args.loadgen)
            phase.stop()
            m2 = broker.metrics()
            consume_broker = broker_view(m1, m2, consumed["seconds"])
            print_consume(label, consumed, consume_broker)
            phase.finish()
            phase = Phase(broker.process.pid, args.perf, f"raw fetch {label}")
            raw = raw_fetch(broker.bootstrap, topic, partitions, produced["acked"], args.seconds)
            phase.stop()
            print_raw(label, raw)
            phase.finish()
            raw_topic = topic + "-raw"
            create_topic(broker.bootstrap, raw_topic, partitions)
            per_batch = int(round(produced["client_batch_records_avg"] or RAW_RECORDS_PER_BATCH_DEFAULT))
            m3 = broker.metrics()
            phase = Phase(broker.process.pid, args.perf, f"raw produce {label}")
            raw_produced = raw_produce(broker.bootstrap, raw_topic, partitions, args.records, args.seconds, per_batch)
            phase.stop()
            raw_produce_broker = broker_view(m3, broker.metrics(), raw_produced["seconds"])
            print_raw_produce(label, raw_produced, raw_produce_broker)
            phase.finish()
            summary_rows.append((label, produced, produce_broker, consumed, raw, raw_produced, disk_here))

        # The disk figure, batch size = what the producer actually sent (or as told).
        first = summary_rows[0][1]
        batch_bytes = args.disk_batch_bytes or int(first["client_batch_bytes_avg"] or
                                                   summary_rows[0][2]["batch_bytes_avg"] or BATCH_BYTES)
        disk = disk_figure(broker.data_dir, batch_bytes)
        batch_source = "--disk-batch-bytes" if args.disk_batch_bytes else "average librdkafka batch of the 1-partition run"
        print_disk("at the end, batch = average librdkafka batch", disk)
    finally:
        exit_code = broker.stop()
        if exit_code == 0 and not args.keep_log:
            os.unlink(log_path)
        broker.cleanup()

    print()
    print("=" * 100)
    print("SUMMARY  (MB = 10^6 B, MiB = 2^20 B; client and broker share this machine's cores)")
    print(f"  disk at the end of the run: write + fdatasync per {disk['batch_bytes']:,} B batch ({batch_source}): "
          f"{disk['mib_s']:.1f} MiB/s = {disk['mb_s']:.1f} MB/s (for comparison; ratios use the figure per layout)")
    for label, produced, _, consumed, raw, raw_produced, disk_here in summary_rows:
        print(f"  {label:>12}: disk      {disk_here['mb_s']:7.1f} MB/s  (write + fdatasync per {disk_here['batch_bytes']:,} B: "
              f"mean of {disk_here['before_mb_s']:.0f} before and {disk_here['after_mb_s']:.0f} after this produce phase)")
        ratio = produced["mb_s"] / disk_here["mb_s"] if disk_here["mb_s"] else float("nan")
        raw_ratio = raw_produced["mb_s"] / disk_here["mb_s"] if disk_here["mb_s"] else float("nan")
        print(f"  {'':>12}  produce   {produced['mb_s']:7.1f} MB/s {produced['records_s']:>10,.0f} rec/s  "
              f"p50 {produced['p50_ms']:6.2f} ms p99 {produced['p99_ms']:7.2f} ms  | produce/disk = {ratio:.2f}")
        print(f"  {'':>12}  raw prod. {raw_produced['mb_s']:7.1f} MB/s {raw_produced['records_s']:>10,.0f} rec/s  "
              f"p50 {raw_produced['p50_ms']:6.2f} ms p99 {raw_produced['p99_ms']:7.2f} ms  | produce/disk = {raw_ratio:.2f} "
              f"(per request)")
        print(f"  {'':>12}  fetch     {consumed['mb_s']:7.1f} MB/s {consumed['records_s']:>10,.0f} rec/s  "
              f"(librdkafka consumer)    | fetch/1 GB/s target = {consumed['mb_s'] / FETCH_TARGET_MB_S:.2f}")
        print(f"  {'':>12}  raw fetch {raw['mb_s']:7.1f} MB/s {raw['records_s']:>10,.0f} rec/s  "
              f"(Fetch v4, no decoding)  | fetch/1 GB/s target = {raw['mb_s'] / FETCH_TARGET_MB_S:.2f}")
    print(f"  broker exit code after SIGTERM: {exit_code}" + ("" if exit_code == 0 else f" (log kept: {log_path})"))
    print("=" * 100)
    failed = exit_code != 0 or any(p["errors"] or p["acked"] < p["produced"] or c["received"] < p["acked"]
                                   or r["received"] < p["acked"] or rp["errors"] for _, p, _, c, r, rp, _ in summary_rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
