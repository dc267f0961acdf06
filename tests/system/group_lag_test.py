#!/usr/bin/env python3
"""Consumer lag metrics: a group that committed offset C of a partition whose high watermark is
H shows sluice_group_lag_records = H - C on /metrics, and sluice_group_lag_seconds > 0 (the
oldest unconsumed record's age); once it commits H, both fall to 0.

One broker (brokerctl.Broker, fresh temp data dir); one single-partition topic; a standalone
commit (confluent-kafka `commit(offsets=...)` with assign) sets the committed offset. Every wait
is bounded by METRICS_WAIT_S (the broker recomputes lag every 5 s).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "lagged"
GROUP = "lag-group"
RECORDS = 10
COMMITTED = 4
METRICS_WAIT_S = 30


def lag(broker: brokerctl.Broker) -> tuple[float | None, float | None]:
    _, body = brokerctl.http_get(f"http://127.0.0.1:{broker.admin_port}/metrics")
    text = body.decode() if isinstance(body, bytes) else str(body)
    found = {}
    for name in ("records", "seconds"):
        pattern = rf'sluice_group_lag_{name}{{[^}}]*group="{GROUP}"[^}}]*}} ([0-9.e+-]+)'
        match = re.search(pattern, text)
        found[name] = float(match.group(1)) if match else None
    return found["records"], found["seconds"]


def wait_for(broker, predicate, what: str) -> tuple:
    deadline = time.monotonic() + METRICS_WAIT_S
    while True:
        value = lag(broker)
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: /metrics shows (records, seconds) = {value}")
        time.sleep(0.5)


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="sluice-lag-")
    broker = brokerctl.Broker(workdir)
    ok = False
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
            future.result(30)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for i in range(RECORDS):
            producer.produce(TOPIC, key=str(i), value=f"v{i}")
        if producer.flush(30) != 0:
            raise SystemExit("produce did not finish")
        del producer
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": GROUP, "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition(TOPIC, 0, COMMITTED)], asynchronous=False)
        time.sleep(1.1)  # the oldest unconsumed record is now over a second old
        records, seconds = wait_for(broker, lambda v: v[0] == RECORDS - COMMITTED and (v[1] or 0) >= 1.0,
                                    "lag after committing offset 4 of 10")
        print(f"lag: {records:.0f} records, {seconds:.1f} s")
        consumer.commit(offsets=[TopicPartition(TOPIC, 0, RECORDS)], asynchronous=False)
        wait_for(broker, lambda v: v == (0.0, 0.0), "lag after committing the high watermark")
        print("caught up: lag 0 records, 0 s")
        consumer.close()
        ok = True
        return 0
    except SystemExit as error:
        print(f"FAIL: {error}")
        return 1
    finally:
        broker.stop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
