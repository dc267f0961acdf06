#!/usr/bin/env python3
"""Start, watch, crash, pause and stop a 3-node Sluice cluster for cluster_test.py.

Node N (1..3) listens on 127.0.0.N with the same three port numbers on each address (Kafka,
admin HTTP, Raft RPC), each node on its own data dir under the test's temp dir, started as

  sluice serve --node-id N --data-dir DIR --kafka-addr 127.0.0.N:K --advertised-kafka-addr ..
               --admin-addr 127.0.0.N:A --rpc-addr 127.0.0.N:R
               --peers 1=127.0.0.1:R,2=127.0.0.2:R,3=127.0.0.3:R

Nodes are brokerctl.Broker subclasses: they join brokerctl's list of live brokers, so its
atexit hook (and the SIGTERM/SIGINT handlers that turn into SystemExit) kill them with the test.

Also here, so that cluster_test.py stays about scenarios:
  * the admin HTTP views a test waits on: /v1/cluster (the controller) and
    /v1/partitions/{topic}/{partition} (leader, term, role, commit, offsets);
  * a tiny Kafka wire client for what librdkafka cannot be told to do: a Metadata v1 request
    to one *chosen* node, and a Produce v3 request to a chosen node (the wrong one, on purpose);
  * a parser for the segment files of a partition directory (src/storage/docs/format.md), to
    compare replicas' committed logs byte for byte.

CLI (for poking at a data dir by hand):
  clusterctl.py free-ports N            N ports free on 127.0.0.1, .2 and .3 alike
  clusterctl.py segments PARTITION_DIR [--below HW]
                                        list the batches of a partition directory

Loopback addresses only; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402

ROOT = brokerctl.ROOT
NODE_IDS = (1, 2, 3)
HOSTS = {n: f"127.0.0.{n}" for n in NODE_IDS}
READY_TIMEOUT_S = brokerctl.READY_TIMEOUT_S  # a restarted node recovers its logs first
STOP_TIMEOUT_S = brokerctl.STOP_TIMEOUT_S
CONTROLLER_TIMEOUT_S = 30  # election timeout is ~1-2 s; this allows many failed rounds
LEADERS_TIMEOUT_S = 30
CATCH_UP_TIMEOUT_S = 60
CREATE_TOPIC_TIMEOUT_S = 60
KAFKA_IO_TIMEOUT_S = 10
POLL_INTERVAL_S = 0.2

ERROR_NONE = 0
ERROR_NOT_LEADER_OR_FOLLOWER = 6


class Fail(Exception):
    """A check failed or a bounded wait ran out; the message says what and shows the state."""


# --------------------------------------------------------------------------------------------
# Ports and HTTP


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on *each* of 127.0.0.1, .2 and .3, below the ephemeral range
    (see brokerctl.free_ports for why not port 0). Held until all are chosen: no duplicates."""
    lo, _ = brokerctl._ephemeral_range()
    rng = random.Random()
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(200 * count):
            if len(ports) == count:
                break
            port = rng.randrange(20000, max(lo, 20001))
            if port in ports:
                continue
            socks = []
            try:
                for host in HOSTS.values():
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    s.bind((host, port))
            except OSError:
                for s in socks:
                    s.close()
                continue
            held.extend(socks)
            ports.append(port)
        if len(ports) < count:
            raise Fail("no ports free on all of 127.0.0.1-3 below the ephemeral range")
        return ports
    finally:
        for s in held:
            s.close()


def tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=brokerctl.HTTP_TIMEOUT_S):
            return True
    except OSError:
        return False


def http_json(host: str, port: int, path: str) -> tuple[int, dict | None]:
    """(status, parsed body); status 0 when nothing answered (down or paused), body None
    unless the status is 200 and the body is JSON."""
    status, body = brokerctl.http_get(f"http://{host}:{port}{path}")
    if status != 200:
        return status, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def wait_until(what: str, timeout_s: float, probe, check=None, interval_s: float = POLL_INTERVAL_S):
    """Calls probe() -> (done, value, detail) until done or the deadline; returns value.
    `check()` runs each round too (e.g. "every node that should run still runs") and raises
    Fail on its own. On timeout: Fail naming `what` with the last detail seen."""
    deadline = time.monotonic() + timeout_s
    detail = "(never probed)"
    while True:
        if check:
            check()
        done, value, detail = probe()
        if done:
            return value
        if time.monotonic() > deadline:
            raise Fail(f"{what}: not reached within {timeout_s:.0f}s; last seen: {detail}")
        time.sleep(interval_s)


# --------------------------------------------------------------------------------------------
# One node


class Node(brokerctl.Broker):
    """One cluster node on fixed address/ports and data dir, restartable, pausable."""

    def __init__(self, workdir: str, node_id: int, ports: list[int], extra_args: list[str] | None = None):
        # Not brokerctl.Broker.__init__: that picks its own ports on 127.0.0.1 only.
        self.kind = "sluice"
        self.workdir = workdir
        self.node_id = node_id
        self.host = HOSTS[node_id]
        self.name = f"node{node_id}"
        self.data_dir = os.path.join(workdir, f"{self.name}-data")
        self.kafka_port, self.admin_port, self.rpc_port = ports
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.paused = False
        self.should_run = False  # the test wants it up: a node that dies on its own fails the test
        os.makedirs(self.data_dir, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    def peers(self) -> str:
        return ",".join(f"{n}={HOSTS[n]}:{self.rpc_port}" for n in NODE_IDS)

    def command(self) -> list[str]:
        binary = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, "target", "release", "sluice")
        if not os.access(binary, os.X_OK):
            raise Fail(f"broker binary {binary} missing: run `cargo build --release` first")
        return [
            binary, "serve",
            "--node-id", str(self.node_id),
            "--data-dir", self.data_dir,
            "--kafka-addr", self.bootstrap,
            "--advertised-kafka-addr", self.bootstrap,
            "--admin-addr", f"{self.host}:{self.admin_port}",
            "--rpc-addr", f"{self.host}:{self.rpc_port}",
            "--peers", self.peers(),
        ] + self.extra_args

    def spawn(self) -> None:
        """Start the process without waiting (brokerctl.Broker.start minus the wait), so that
        three nodes can come up together."""
        assert not self.alive(), f"{self.name} already running"
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")
        with open(self.log_path, "wb") as log:
            # Same process group as the test: tests/run-system's timeout signals it too.
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        self.paused = False
        self.should_run = True
        if self not in brokerctl._live:
            brokerctl._live.append(self)

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail(f"{self.name} exited with {self.proc.returncode} during startup")
            if self.is_ready():
                return
            time.sleep(0.1)
        raise Fail(f"{self.name} not ready (GET /v1/status/ready) after {timeout_s}s")

    def is_ready(self) -> bool:
        status, _ = brokerctl.http_get(f"http://{self.host}:{self.admin_port}/v1/status/ready")
        return status == 200 and tcp_open(self.host, self.kafka_port)

    def kill9(self) -> None:
        self.should_run = False
        super().kill9()  # SIGKILL works on a stopped (paused) process too
        self.paused = False

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> int:
        self.should_run = False
        if self.paused and self.alive():
            self.resume()  # a stopped process cannot act on SIGTERM
        return super().stop()

    def cluster_view(self) -> dict | None:
        """GET /v1/cluster, or None when the node does not answer."""
        return http_json(self.host, self.admin_port, "/v1/cluster")[1]

    def partition_view(self, topic: str, partition: int) -> tuple[int, dict | None]:
        """GET /v1/partitions/{topic}/{partition}: (status, state); 404 = no replica here."""
        return http_json(self.host, self.admin_port, f"/v1/partitions/{topic}/{partition}")


# --------------------------------------------------------------------------------------------
# The cluster


def short_state(s: dict | None) -> str:
    if s is None:
        return "-"
    return (f"{s.get('role')}/t{s.get('term')}/L{s.get('leader')} leo={s.get('log_end_offset')} "
            f"hw={s.get('high_watermark')} commit={s.get('commit')}")


class Cluster:
    def __init__(self, workdir: str, extra_args: list[str] | None = None):
        self.workdir = workdir
        ports = free_ports(3)
        self.nodes = {n: Node(workdir, n, ports, extra_args) for n in NODE_IDS}
        self.kafka_port, self.admin_port, self.rpc_port = ports

    def __getitem__(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def describe(self) -> str:
        return (f"3 nodes on 127.0.0.1-3, kafka port {self.kafka_port}, admin {self.admin_port}, "
                f"rpc {self.rpc_port}; data dirs {self.workdir}/node{{1,2,3}}-data")

    def bootstrap(self, nodes=None) -> str:
        return ",".join(self.nodes[n].bootstrap for n in (nodes or NODE_IDS))

    def up(self) -> list[int]:
        """Nodes the test wants running (paused ones included)."""
        return [n for n, node in self.nodes.items() if node.should_run]

    def responsive(self) -> list[int]:
        return [n for n, node in self.nodes.items() if node.should_run and not node.paused]

    def check_alive(self) -> None:
        for n, node in self.nodes.items():
            if node.should_run and not node.alive():
                node.should_run = False
                rc = node.proc.returncode
                how = (f"killed by signal {-rc}" if rc < 0 else
                       "exit status 0: a clean shutdown this test did not ask for (SIGTERM/SIGINT from elsewhere?)"
                       if rc == 0 else f"exit status {rc}")
                raise Fail(f"node {n} died on its own ({how})")

    def start(self) -> None:
        """Spawn every node that is down, then wait until each is ready."""
        down = [node for node in self.nodes.values() if not node.alive()]
        for node in down:
            node.spawn()
        for node in down:
            node.wait_ready()

    def kill9_all(self) -> None:
        """All three at once: SIGKILL each before reaping any."""
        for node in self.nodes.values():
            node.should_run = False
            if node.alive():
                os.kill(node.proc.pid, signal.SIGKILL)
        for node in self.nodes.values():
            if node.proc is not None:
                node.proc.wait(timeout=STOP_TIMEOUT_S)
            node.paused = False

    def stop_all(self) -> dict[int, int | None]:
        """SIGTERM every running node together, each must exit within STOP_TIMEOUT_S;
        {node: exit status} for the nodes that were running (-9: had to be killed)."""
        running = [node for node in self.nodes.values() if node.alive()]
        for node in self.nodes.values():
            node.should_run = False
        for node in running:
            if node.paused:
                node.resume()
            node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        statuses = {}
        for node in running:
            try:
                statuses[node.node_id] = node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
                statuses[node.node_id] = -9
        return statuses

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for n, node in self.nodes.items():
            if node.starts:
                out.append(f"  node {n} log tail ({node.log_path}):\n{node.log_tail(lines)}")
        return "\n".join(out)

    # -- controller ------------------------------------------------------------------------

    def controller_views(self, nodes=None) -> dict[int, int | None]:
        """{node: controller_id it reports}; None when it does not answer."""
        views = {}
        for n in nodes or self.responsive():
            v = self.nodes[n].cluster_view()
            views[n] = v.get("controller_id") if isinstance(v, dict) else None
        return views

    def wait_controller(self, nodes=None, not_ids=(), timeout_s: float = CONTROLLER_TIMEOUT_S) -> int:
        """Until every node in `nodes` (default: all responsive) reports the same controller,
        which is not -1 and not in `not_ids`; returns it."""

        def probe():
            views = self.controller_views(nodes)
            ids = set(views.values())
            if len(ids) == 1:
                (c,) = ids
                if c is not None and c >= 0 and c not in not_ids:
                    return True, c, str(views)
            return False, None, f"controller_id by node: {views}"

        return wait_until("all nodes agree on a controller", timeout_s, probe, self.check_alive)

    def wait_registered(self, nodes=None, timeout_s: float = CONTROLLER_TIMEOUT_S) -> None:
        """Until every node of `nodes` (default: responsive) lists all 3 brokers in /v1/cluster
        (registered with the controller): before that, CreateTopics with RF 3 is refused."""

        def probe():
            views = {}
            for n in nodes or self.responsive():
                v = self.nodes[n].cluster_view() or {}
                views[n] = sorted(b.get("node_id") for b in v.get("brokers", []))
            return all(ids == list(NODE_IDS) for ids in views.values()), None, f"registered brokers by node: {views}"

        wait_until("every node lists all 3 brokers", timeout_s, probe, self.check_alive)

    # -- partitions ------------------------------------------------------------------------

    def partition_views(self, topic: str, partition: int, nodes=None) -> dict[int, dict | None]:
        out = {}
        for n in nodes or self.responsive():
            status, state = self.nodes[n].partition_view(topic, partition)
            out[n] = state if status == 200 else None
        return out

    def stable_leader(self, topic: str, partition: int, nodes=None) -> tuple[int | None, dict, str]:
        """(leader, views, detail): the leader when one node of `nodes` says it leads and every
        node of `nodes` names it as leader in the same term; else (None, views, detail)."""
        views = self.partition_views(topic, partition, nodes)
        detail = f"p{partition}: " + "; ".join(f"n{n} {short_state(s)}" for n, s in views.items())
        leaders = [n for n, s in views.items() if s and s.get("role") == "leader"]
        if len(leaders) != 1 or any(s is None for s in views.values()):
            return None, views, detail
        lead = leaders[0]
        term = views[lead].get("term")
        if all(s.get("leader") == lead and s.get("term") == term for s in views.values()):
            return lead, views, detail
        return None, views, detail

    def wait_leaders(self, topic: str, partitions: int, nodes=None, timeout_s: float = LEADERS_TIMEOUT_S) -> dict[int, int]:
        """Until every partition has a stable leader among `nodes` (default: the responsive
        ones); returns {partition: leader}."""

        def probe():
            leaders, details = {}, []
            for p in range(partitions):
                lead, _, detail = self.stable_leader(topic, p, nodes)
                if lead is None:
                    details.append(detail)
                else:
                    leaders[p] = lead
            return not details, leaders, " | ".join(details[:3])

        return wait_until(f"{topic}: a leader for every partition", timeout_s, probe, self.check_alive)

    def wait_caught_up(self, topic: str, partitions: int, nodes=None, timeout_s: float = CATCH_UP_TIMEOUT_S) -> dict[int, int]:
        """Until, for every partition, every node of `nodes` (default: responsive) has been seen
        with a log end and a commit index at or past the leader's high watermark as sampled just
        before it (commit = last committed offset, so commit >= hw - 1). A partition once seen
        caught up stays done, so this works while producers are still writing (the target moves).
        Returns {partition: the high watermark every replica was seen to reach}; once producing
        has stopped these are final, and every replica holds everything below them."""
        done: dict[int, int] = {}

        def probe():
            lagging = []
            for p in range(partitions):
                if p in done:
                    continue
                lead, views, detail = self.stable_leader(topic, p, nodes)
                if lead is None:
                    lagging.append(f"no stable leader ({detail})")
                    continue
                hw = views[lead].get("high_watermark", -1)
                behind = [
                    f"p{p} n{n} behind leader n{lead} hw={hw}: {short_state(s)}"
                    for n, s in views.items()
                    if s.get("log_end_offset", -1) < hw or s.get("commit", -1) < hw - 1
                ]
                if behind:
                    lagging.extend(behind)
                else:
                    done[p] = hw
            return not lagging, dict(sorted(done.items())), " | ".join(lagging[:4])

        return wait_until(f"{topic}: every replica caught up with its leader", timeout_s, probe, self.check_alive)

    def wait_metadata(self, topic: str, partitions: int, nodes=None, timeout_s: float = LEADERS_TIMEOUT_S) -> None:
        """Until Metadata v1 from each node (default: responsive) lists all 3 brokers at their
        addresses, the controller its /v1/cluster names, and `topic` with `partitions`
        partitions, each with replicas {1,2,3}, a leader and a non-empty ISR."""
        want_brokers = {n: (HOSTS[n], self.kafka_port) for n in NODE_IDS}

        def probe():
            problems = []
            for n in nodes or self.responsive():
                node = self.nodes[n]
                try:
                    md = metadata_v1(node.host, node.kafka_port, [topic])
                except (OSError, Fail) as e:
                    problems.append(f"n{n}: Metadata failed: {e}")
                    continue
                if md["brokers"] != want_brokers:
                    problems.append(f"n{n}: brokers {md['brokers']}, want {want_brokers}")
                view = node.cluster_view() or {}
                if md["controller_id"] < 0 or md["controller_id"] != view.get("controller_id"):
                    problems.append(f"n{n}: Metadata controller {md['controller_id']}, /v1/cluster {view.get('controller_id')}")
                t = md["topics"].get(topic)
                if t is None or t["error"] != 0 or len(t["partitions"]) != partitions:
                    problems.append(f"n{n}: topic {topic} error {t['error'] if t else 'missing'}, "
                                    f"{len(t['partitions']) if t else 0} partitions")
                    continue
                for p, pm in sorted(t["partitions"].items()):
                    if sorted(pm["replicas"]) != list(NODE_IDS) or pm["leader"] not in NODE_IDS or not pm["isr"]:
                        problems.append(f"n{n}: {topic}-{p} {pm}")
            return not problems, None, " | ".join(problems[:4])

        wait_until(f"{topic}: Metadata agrees on every node", timeout_s, probe, self.check_alive)


# --------------------------------------------------------------------------------------------
# A tiny Kafka wire client: one request to one chosen node


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()
assert crc32c(b"123456789") == 0xE3069283, "crc32c self-test failed"


def _zigzag_varint(v: int) -> bytes:
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        if z < 0x80:
            out.append(z)
            return bytes(out)
        out.append((z & 0x7F) | 0x80)
        z >>= 7


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def record_batch(key: bytes, value: bytes, timestamp_ms: int) -> bytes:
    """One uncompressed, non-idempotent RecordBatch v2 holding one record."""
    body = (
        b"\x00"  # record attributes
        + _zigzag_varint(0)  # timestamp delta
        + _zigzag_varint(0)  # offset delta
        + _zigzag_varint(len(key)) + key
        + _zigzag_varint(len(value)) + value
        + _zigzag_varint(0)  # headers
    )
    record = _zigzag_varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, 0, timestamp_ms, timestamp_ms, -1, -1, -1, 1) + record
    after_length = struct.pack(">ibI", -1, 2, crc32c(after_crc)) + after_crc  # leader epoch, magic, crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s

    def array(self, item):
        n = self.take(">i")
        return [item() for _ in range(max(n, 0))]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Fail(f"connection closed after {len(buf)} of {n} response bytes")
        buf += chunk
    return bytes(buf)


def kafka_request(host: str, port: int, api_key: int, version: int, body: bytes) -> _Reader:
    """One request (header v1) on a fresh connection; returns a reader past the response
    header (v0: correlation id only; every request built here is non-flexible)."""
    correlation = random.randrange(1, 2**31)
    frame = struct.pack(">hhi", api_key, version, correlation) + _str("sluice-cluster-test") + body
    with socket.create_connection((host, port), timeout=KAFKA_IO_TIMEOUT_S) as s:
        s.settimeout(KAFKA_IO_TIMEOUT_S)
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _recv_exact(s, 4))[0]
        r = _Reader(_recv_exact(s, size))
    got = r.take(">i")
    if got != correlation:
        raise Fail(f"response correlation id {got}, sent {correlation}")
    return r


def metadata_v1(host: str, port: int, topics: list[str]) -> dict:
    """Metadata v1 from one node: {"brokers": {id: (host, port)}, "controller_id",
    "topics": {name: {"error", "partitions": {p: {"error","leader","replicas","isr"}}}}}."""
    body = struct.pack(">i", len(topics)) + b"".join(_str(t) for t in topics)
    r = kafka_request(host, port, 3, 1, body)

    def broker():
        node_id, h, p = r.take(">i"), r.string(), r.take(">i")
        r.string()  # rack
        return node_id, (h, p)

    def partition():
        err, index, leader = r.take(">hii")
        replicas = r.array(lambda: r.take(">i"))
        isr = r.array(lambda: r.take(">i"))
        return index, {"error": err, "leader": leader, "replicas": replicas, "isr": isr}

    def topic():
        err, name = r.take(">h"), r.string()
        r.take(">b")  # is_internal
        return name, {"error": err, "partitions": dict(r.array(partition))}

    brokers = dict(r.array(broker))
    controller = r.take(">i")
    return {"brokers": brokers, "controller_id": controller, "topics": dict(r.array(topic))}


def produce_v3(host: str, port: int, topic: str, partition: int, key: bytes, value: bytes,
               acks: int = -1, timeout_ms: int = 5000) -> tuple[int, int]:
    """Produce v3 of one record to one node: (error_code, base_offset)."""
    batch = record_batch(key, value, int(time.time() * 1000))
    body = (
        struct.pack(">h", -1)  # transactional_id: null
        + struct.pack(">hi", acks, timeout_ms)
        + struct.pack(">i", 1) + _str(topic)
        + struct.pack(">i", 1) + struct.pack(">i", partition)
        + struct.pack(">i", len(batch)) + batch
    )
    r = kafka_request(host, port, 0, 3, body)
    results = {}
    for _ in range(r.take(">i")):
        name = r.string()
        for _ in range(r.take(">i")):
            index, err, base, _append_time = r.take(">ihqq")
            results[(name, index)] = (err, base)
    if (topic, partition) not in results:
        raise Fail(f"Produce response has no entry for {topic}-{partition}: {results}")
    return results[(topic, partition)]


# --------------------------------------------------------------------------------------------
# Segment files (src/storage/docs/format.md)

BATCH_FIELDS = [  # (first byte, name) of a RecordBatch v2 header, to name a differing byte
    (0, "baseOffset"), (8, "batchLength"), (12, "partitionLeaderEpoch"), (16, "magic"), (17, "crc"),
    (21, "attributes"), (23, "lastOffsetDelta"), (27, "baseTimestamp"), (35, "maxTimestamp"),
    (43, "producerId"), (51, "producerEpoch"), (53, "baseSequence"), (57, "recordCount"), (61, "records"),
]
BATCH_HEADER_BYTES = 61


def batch_field(pos: int) -> str:
    return [name for start, name in BATCH_FIELDS if start <= pos][-1]


def read_batches(partition_dir: str) -> tuple[list[tuple[int, int, bytes]], list[str]]:
    """Every whole batch of every `NNNNNNNNNNNNNNNNNNNN.log` in base-offset order:
    ([(base_offset, last_offset, batch bytes)], notes). A file ends at the first range that is
    not a whole batch continuing the previous one (a torn or unflushed tail): those bytes are
    ignored and mentioned in notes. CRCs are not checked here (the broker checks them when
    serving; the comparison is byte for byte anyway)."""
    notes: list[str] = []
    try:
        names = os.listdir(partition_dir)
    except FileNotFoundError:
        return [], [f"{partition_dir} does not exist"]
    segments = sorted(
        (int(n[:-4]), n) for n in names if n.endswith(".log") and len(n) == 24 and n[:20].isdigit()
    )
    batches: list[tuple[int, int, bytes]] = []
    for base, name in segments:
        with open(os.path.join(partition_dir, name), "rb") as f:
            data = f.read()
        pos, expect = 0, None
        while pos + BATCH_HEADER_BYTES <= len(data):
            base_offset, length, _epoch, magic = struct.unpack_from(">qiib", data, pos)
            end = pos + 12 + length
            # Not a whole batch: too short, cut off, not v2, or not continuing the previous
            # batch of the file (batches tile a segment densely; format.md).
            if length < BATCH_HEADER_BYTES - 12 or end > len(data) or magic != 2:
                break
            if expect is not None and base_offset != expect:
                break
            last_delta = struct.unpack_from(">i", data, pos + 23)[0]
            batches.append((base_offset, base_offset + last_delta, data[pos:end]))
            expect = base_offset + last_delta + 1
            pos = end
        if pos < len(data):
            notes.append(f"{name}: {len(data) - pos} trailing bytes at {pos} are not a whole batch (ignored)")
        if pos and struct.unpack_from(">q", data, 0)[0] != base:
            notes.append(f"{name}: first batch has base offset {struct.unpack_from('>q', data, 0)[0]}")
    return batches, notes


def committed_batches(partition_dir: str, high_watermark: int) -> tuple[list[tuple[int, int, bytes]], list[str]]:
    """The batches wholly below `high_watermark`, plus problems: gaps or overlaps between
    consecutive batches, and a log that does not reach high_watermark - 1."""
    batches, notes = read_batches(partition_dir)
    kept = [b for b in batches if b[1] < high_watermark]
    problems = []
    for (b0, l0, _), (b1, _, _) in zip(kept, kept[1:]):
        if b1 != l0 + 1:
            problems.append(f"batch at {b1} follows one ending at {l0} (gap or overlap)")
    end = kept[-1][1] + 1 if kept else (batches[0][0] if batches else 0)
    if high_watermark > 0 and end != high_watermark:
        straddling = [b for b in batches if b[0] < high_watermark <= b[1]]
        problems.append(
            f"committed batches end at {end}, high watermark is {high_watermark}"
            + (f" (a batch {straddling[0][0]}..{straddling[0][1]} straddles it)" if straddling else "")
        )
    return kept, notes + problems


def compare_replicas(dirs: dict[int, str], high_watermark: int) -> tuple[bool, list[str]]:
    """Byte-compare the committed batches of one partition across nodes {node: partition dir}.
    Returns (identical, report lines)."""
    lines, ok = [], True
    logs = {}
    for n, d in dirs.items():
        kept, problems = committed_batches(d, high_watermark)
        logs[n] = kept
        size = sum(len(b[2]) for b in kept)
        # Notes and problems explain; the byte comparison and the coverage check below decide.
        lines.append(f"n{n}: {len(kept)} batches, {size} bytes below hw {high_watermark}"
                     + (f"; {'; '.join(problems)}" if problems else ""))
    ref_node = min(logs)
    ref = logs[ref_node]
    for n, log in logs.items():
        if n == ref_node:
            continue
        for i, (a, b) in enumerate(zip(ref, log)):
            if a[2] != b[2]:
                pos = next((k for k in range(min(len(a[2]), len(b[2]))) if a[2][k] != b[2][k]), min(len(a[2]), len(b[2])))
                lines.append(
                    f"DIFFER n{ref_node} vs n{n}: batch #{i} (n{ref_node} offsets {a[0]}..{a[1]}, n{n} {b[0]}..{b[1]}): "
                    f"first difference at byte {pos} ({batch_field(pos)}), lengths {len(a[2])} vs {len(b[2])}"
                )
                ok = False
                break
        else:
            if len(ref) != len(log):
                lines.append(f"DIFFER n{ref_node} vs n{n}: {len(ref)} vs {len(log)} committed batches (one is a prefix of the other)")
                ok = False
    short = [n for n, log in logs.items() if high_watermark > 0 and (not log or log[-1][1] + 1 != high_watermark)]
    if short:
        lines.append(f"committed log of node(s) {short} does not end at the high watermark {high_watermark}")
        ok = False
    return ok, lines


# --------------------------------------------------------------------------------------------
# CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="cluster helpers for cluster_test.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("free-ports")
    sp.add_argument("count", type=int)
    sp = sub.add_parser("segments")
    sp.add_argument("partition_dir")
    sp.add_argument("--below", type=int, default=None, help="only batches wholly below this offset (a high watermark)")
    a = ap.parse_args(argv)
    if a.cmd == "free-ports":
        print(" ".join(map(str, free_ports(a.count))))
        return 0
    if a.below is None:
        batches, notes = read_batches(a.partition_dir)
    else:
        batches, notes = committed_batches(a.partition_dir, a.below)
    for base, last, raw in batches:
        epoch, magic, crc, attrs = struct.unpack_from(">ibIh", raw, 12)
        pid, pepoch, seq, count = struct.unpack_from(">qhii", raw, 43)
        ok = crc32c(raw[21:]) == crc
        print(f"{base:>10}..{last:<10} {len(raw):>7} B  epoch {epoch:<4} attrs {attrs:#06x} records {count:<5} "
              f"pid {pid} pepoch {pepoch} seq {seq}  crc {'ok' if ok else 'BAD'}")
    for n in notes:
        print(f"note: {n}")
    print(f"{len(batches)} batches, {sum(len(b[2]) for b in batches)} bytes, "
          f"zlib crc32 of all {zlib.crc32(b''.join(b[2] for b in batches)):#010x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
