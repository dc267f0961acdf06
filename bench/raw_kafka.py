"""Minimal raw Kafka-protocol clients for the benchmark: Produce v3 and Fetch v4 over one socket.

Why: librdkafka through Python spends about a core on per-record work on this 2-core machine, so
its figures measure the client as much as the broker. These clients do no per-record work: the
producer sends one pre-built RecordBatch v2 (CRC-32C computed once) per request with a window of
requests in flight, and the fetcher walks returned batches by header only. Non-flexible request
versions keep the encoding to a few struct.pack calls (Kafka protocol guide, "Produce API" and
"Fetch API"). Every loop is bounded by a count, a deadline or the bytes of a frame.
"""

from __future__ import annotations

import collections
import os
import socket
import struct
import time

RECORD_BYTES = 1024  # the benchmark's record size (value bytes)
MB = 1e6
RAW_SOCKET_TIMEOUT_SECONDS = 10.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


# Raw Fetch v4 (Kafka protocol, non-flexible): what the broker can serve without a client's
# per-record work. The response's record batches are walked by header only (never decoded).
FETCH_API_KEY = 1
FETCH_VERSION = 4
RAW_FETCH_MAX_BYTES = 64 * 1024 * 1024
RAW_FETCH_PARTITION_MAX_BYTES = 16 * 1024 * 1024
RAW_FETCH_WAIT_MS = 100
BATCH_HEADER_BYTES = 61


def _recv_exact(sock: socket.socket, count: int) -> bytearray:
    buf = bytearray(count)
    view = memoryview(buf)
    got = 0
    while got < count:  # bounded: each recv returns > 0 bytes or we raise
        n = sock.recv_into(view[got:], count - got)
        if n == 0:
            raise ConnectionError("broker closed the connection")
        got += n
    return buf


def _fetch_request(correlation_id: int, topic: str, offsets: dict[int, int]) -> bytes:
    name = topic.encode()
    body = struct.pack(">iiiib", -1, RAW_FETCH_WAIT_MS, 1, RAW_FETCH_MAX_BYTES, 0)
    body += struct.pack(">ih", 1, len(name)) + name + struct.pack(">i", len(offsets))
    for partition, offset in offsets.items():
        body += struct.pack(">iqi", partition, offset, RAW_FETCH_PARTITION_MAX_BYTES)
    client = b"sluice-bench"
    header = struct.pack(">hhih", FETCH_API_KEY, FETCH_VERSION, correlation_id, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def _walk_fetch_response(buf: bytearray, offsets: dict[int, int]) -> tuple[int, int]:
    """Advances offsets past the whole batches returned; returns (records, batch bytes)."""
    at = 4 + 4  # correlation id, throttle time
    records = total = 0
    (topics,) = struct.unpack_from(">i", buf, at); at += 4
    for _ in range(topics):
        (name_len,) = struct.unpack_from(">h", buf, at); at += 2 + name_len
        (partitions,) = struct.unpack_from(">i", buf, at); at += 4
        for _ in range(partitions):
            partition, error, _hw, _lso = struct.unpack_from(">ihqq", buf, at); at += 22
            if error:
                raise RuntimeError(f"fetch error code {error} on partition {partition}")
            (aborted,) = struct.unpack_from(">i", buf, at); at += 4
            at += max(aborted, 0) * 16
            (size,) = struct.unpack_from(">i", buf, at); at += 4
            end = at + max(size, 0)
            while at + BATCH_HEADER_BYTES <= end:  # bounded: each batch advances >= 61 bytes
                base, length = struct.unpack_from(">qi", buf, at)
                if at + 12 + length > end:
                    break  # a batch cut at the size limit: fetched again next time
                (last_delta,) = struct.unpack_from(">i", buf, at + 23)
                (count,) = struct.unpack_from(">i", buf, at + 57)
                records += count
                total += 12 + length
                offsets[partition] = base + last_delta + 1
                at += 12 + length
            at = end
    return records, total


def raw_fetch(bootstrap: str, topic: str, partitions: int, records: int, seconds: float) -> dict:
    host, port = bootstrap.rsplit(":", 1)
    offsets = {p: 0 for p in range(partitions)}
    received = total = requests = 0
    started = time.perf_counter()
    deadline = started + seconds
    with socket.create_connection((host, int(port)), timeout=RAW_SOCKET_TIMEOUT_SECONDS) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while received < records and time.perf_counter() < deadline:
            requests += 1
            sock.sendall(_fetch_request(requests, topic, offsets))
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            got, batch_bytes = _walk_fetch_response(_recv_exact(sock, size), offsets)
            received += got
            total += batch_bytes
    elapsed = time.perf_counter() - started
    return {"received": received, "bytes": total, "seconds": elapsed, "requests": requests,
            "mb_s": total / MB / elapsed, "records_s": received / elapsed}


# Raw Produce v3 (non-flexible), acks=-1, a window of requests in flight on one connection, each
# carrying one pre-built batch: the broker's produce path without a client's per-record work.
PRODUCE_API_KEY = 0
PRODUCE_VERSION = 3
RAW_PRODUCE_IN_FLIGHT = 5  # librdkafka's max.in.flight with idempotence
RAW_PRODUCE_TIMEOUT_MS = 30_000
RAW_RECORDS_PER_BATCH_DEFAULT = 1000
CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ CRC32C_POLY if c & 1 else c >> 1
        table.append(c)
    return table


def crc32c(data: bytes) -> int:
    """Pure-Python CRC-32C (Kafka's batch CRC); slow, so used once per batch template."""
    table = _crc32c_table()
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _zigzag_varint(value: int) -> bytes:
    u = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:  # bounded: at most 10 groups of 7 bits
        if u < 0x80:
            out.append(u)
            return bytes(out)
        out.append((u & 0x7F) | 0x80)
        u >>= 7


def build_batch(records: int, value: bytes, timestamp_ms: int) -> bytes:
    """A RecordBatch v2 (Kafka protocol: Record Batch) of `records` records, no compression."""
    body = bytearray()
    for i in range(records):
        record = b"\x00" + _zigzag_varint(0) + _zigzag_varint(i) + _zigzag_varint(-1) + \
            _zigzag_varint(len(value)) + value + _zigzag_varint(0)
        body += _zigzag_varint(len(record)) + record
    after_crc = struct.pack(">hiqqqhii", 0, records - 1, timestamp_ms, timestamp_ms, -1, -1, -1, records) + body
    head = struct.pack(">qiib", 0, 4 + 1 + 4 + len(after_crc), -1, 2)
    return head + struct.pack(">I", crc32c(after_crc)) + after_crc


def _produce_request(correlation_id: int, topic: str, partition: int, batch: bytes) -> list[bytes]:
    name = topic.encode()
    client = b"sluice-bench"
    header = struct.pack(">hhih", PRODUCE_API_KEY, PRODUCE_VERSION, correlation_id, len(client)) + client
    body = struct.pack(">hhi", -1, -1, RAW_PRODUCE_TIMEOUT_MS) + struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iii", 1, partition, len(batch))
    size = len(header) + len(body) + len(batch)
    return [struct.pack(">i", size) + header + body, batch]


def _produce_response_errors(buf: bytearray) -> int:
    at = 4
    errors = 0
    (topics,) = struct.unpack_from(">i", buf, at); at += 4
    for _ in range(topics):
        (name_len,) = struct.unpack_from(">h", buf, at); at += 2 + name_len
        (partitions,) = struct.unpack_from(">i", buf, at); at += 4
        for _ in range(partitions):
            _partition, error = struct.unpack_from(">ih", buf, at); at += 22
            errors += error != 0
    return errors


def raw_produce(bootstrap: str, topic: str, partitions: int, records: int, seconds: float,
                records_per_batch: int) -> dict:
    batch = build_batch(records_per_batch, os.urandom(RECORD_BYTES), int(time.time() * 1000))
    batches_total = max(1, records // records_per_batch)
    host, port = bootstrap.rsplit(":", 1)
    sent_at: collections.deque = collections.deque()
    latencies: list[float] = []
    errors = sent = acked = 0
    started = time.perf_counter()
    deadline = started + seconds
    with socket.create_connection((host, int(port)), timeout=RAW_SOCKET_TIMEOUT_SECONDS) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while acked < batches_total:  # bounded: each pass receives one response or raises
            while sent < batches_total and len(sent_at) < RAW_PRODUCE_IN_FLIGHT and time.perf_counter() < deadline:
                sent_at.append(time.perf_counter())
                sock.sendmsg(_produce_request(sent, topic, sent % partitions, batch))
                sent += 1
            if not sent_at:
                break
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            errors += _produce_response_errors(_recv_exact(sock, size))
            latencies.append(time.perf_counter() - sent_at.popleft())
            acked += 1
    elapsed = time.perf_counter() - started
    latencies.sort()
    record_bytes = acked * records_per_batch * RECORD_BYTES
    return {"batches": acked, "batch_bytes": len(batch), "records": acked * records_per_batch, "errors": errors,
            "seconds": elapsed, "mb_s": record_bytes / MB / elapsed,
            "records_s": acked * records_per_batch / elapsed,
            "p50_ms": percentile(latencies, 0.5) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3}
