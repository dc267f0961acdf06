#!/usr/bin/env python3
"""KIP-848 regular-expression subscriptions with confluent-kafka against a broker.

Usage:
  consumer_regex_test.py BOOTSTRAP

With `group.protocol=consumer`, librdkafka (2.16, via confluent-kafka) sends the topics of a
subscription that start with `^` as ConsumerGroupHeartbeat v1 `SubscribedTopicRegex` (joined as
`(^a)|(^b)`), and the broker resolves it against every topic it knows, whole names only (RE2/J's
`matches()` in Kafka). The broker should run with a short heartbeat interval (tests/run-system:
`--group-consumer-heartbeat-interval-ms 1000`): a topic created after the member joined is
assigned at the member's next heartbeat.

  1. Topics rx-a-RUN (2 partitions) and other-RUN (2 partitions) exist; a member subscribes to
     `^rx-.*`: it is assigned both partitions of rx-a-RUN and nothing of other-RUN.
  2. rx-b-RUN (3 partitions) is created after it joined: the member is assigned its partitions
     too, still nothing of other-RUN (nor anything outside `^rx-`).
  3. One record produced to each of the three topics: the member consumes the rx-a-RUN and
     rx-b-RUN ones and not the other-RUN one.
  4. A member subscribing to `^(rx)\\1` (a backreference: glibc's regcomp, which librdkafka
     checks patterns with, takes it; RE2 does not) gets INVALID_REGULAR_EXPRESSION, which
     librdkafka raises as a fatal error.

RUN is unique per run, so reruns against the same broker start from fresh topics. Bounded in
time (TIME_LIMIT_S overall, each wait on its own deadline); prints PASS or FAIL; exits 1 on
failure.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import confluent_kafka as k
import confluent_kafka.admin as ka

TIME_LIMIT_S = 120
WAIT_S = 30
REGEX = "^rx-.*"
BAD_REGEX = r"^(rx)\1"


class Fail(Exception):
    pass


def log(message: str) -> None:
    print(message, flush=True)


def create(admin: ka.AdminClient, topics: dict[str, int]) -> None:
    futures = admin.create_topics([ka.NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()])
    for topic, future in futures.items():
        try:
            future.result(timeout=WAIT_S)
        except Exception as e:  # noqa: BLE001 (any failure fails the test)
            raise Fail(f"creating {topic}: {e}") from e


def is_fatal(error: k.KafkaError) -> bool:
    return error.fatal() or error.code() == k.KafkaError._FATAL


def assigned(consumer: k.Consumer) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in consumer.assignment()}


def poll_until(consumer: k.Consumer, wanted: set[tuple[str, int]], what: str) -> set[tuple[str, int]]:
    """Polls until the assignment holds `wanted`; fails on an assignment outside `^rx-`."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() and is_fatal(message.error()):
            raise Fail(f"{what}: fatal consumer error {message.error()}")
        now = assigned(consumer)
        outside = {tp for tp in now if not tp[0].startswith("rx-")}
        if outside:
            raise Fail(f"{what}: assigned partitions the regex does not match: {sorted(outside)}")
        if wanted <= now:
            return now
    raise Fail(f"{what}: no assignment of {sorted(wanted)} within {WAIT_S}s (have {sorted(assigned(consumer))})")


def scenario(bootstrap: str) -> None:
    run = uuid.uuid4().hex[:8]
    rx_a, rx_b, other = f"rx-a-{run}", f"rx-b-{run}", f"other-{run}"
    admin = ka.AdminClient({"bootstrap.servers": bootstrap})
    create(admin, {rx_a: 2, other: 2})
    consumer = k.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"regex-{run}",
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    try:
        consumer.subscribe([REGEX])
        poll_until(consumer, {(rx_a, 0), (rx_a, 1)}, f"1. joining with {REGEX}")
        log(f"  1. {REGEX} assigned {rx_a} [0, 1], nothing of {other}")

        create(admin, {rx_b: 3})
        now = poll_until(consumer, {(rx_a, 0), (rx_a, 1), (rx_b, 0), (rx_b, 1), (rx_b, 2)}, f"2. after creating {rx_b}")
        log(f"  2. {rx_b} created after the join is assigned: {sorted(tp for tp in now if run in tp[0])}")

        producer = k.Producer({"bootstrap.servers": bootstrap})
        for topic in (rx_a, rx_b, other):
            producer.produce(topic, value=f"{topic}-value".encode(), partition=0)
        if producer.flush(WAIT_S) != 0:
            raise Fail("3. producing: records left unsent")
        wanted = {f"{rx_a}-value", f"{rx_b}-value"}
        seen: set[str] = set()
        deadline = time.monotonic() + WAIT_S
        while seen != wanted and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            value = message.value().decode()
            if message.topic() == other:
                raise Fail(f"3. consumed {value!r} from {other}, which the regex does not match")
            if run in message.topic():
                seen.add(value)
        if seen != wanted:
            raise Fail(f"3. consumed {sorted(seen)}, wanted {sorted(wanted)} within {WAIT_S}s")
        log(f"  3. consumed the records of {rx_a} and {rx_b}, none of {other}")
    finally:
        consumer.close()
    invalid_regex(bootstrap, run)


def invalid_regex(bootstrap: str, run: str) -> None:
    consumer = k.Consumer({"bootstrap.servers": bootstrap, "group.id": f"regex-bad-{run}", "group.protocol": "consumer"})
    try:
        consumer.subscribe([BAD_REGEX])
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or not message.error():
                continue
            error = message.error()
            if is_fatal(error) and "regular expression" in error.str():
                log(f"  4. {BAD_REGEX} refused: {error.str()}")
                return
            raise Fail(f"4. {BAD_REGEX}: unexpected error {error}")
        raise Fail(f"4. {BAD_REGEX}: no INVALID_REGULAR_EXPRESSION within {WAIT_S}s")
    finally:
        consumer.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    # The whole run is bounded: a hang is a failure, not a stuck CI job.
    signal.signal(signal.SIGALRM, lambda _s, _f: (log("consumer-regex confluent-kafka: FAIL (time limit)"), os._exit(1)))
    signal.alarm(TIME_LIMIT_S)
    started = time.monotonic()
    try:
        scenario(argv[1])
    except Fail as e:
        log(f"  FAIL {e}")
        log(f"consumer-regex confluent-kafka: FAIL in {time.monotonic() - started:.1f}s")
        return 1
    log(f"consumer-regex confluent-kafka: PASS in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
