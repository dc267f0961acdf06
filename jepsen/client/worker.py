#!/usr/bin/env python3
"""One Jepsen "process" for sluice-jepsen: a confluent-kafka (librdkafka) producer and consumer,
driven one operation at a time by JSON lines on stdin, answered by JSON lines on stdout.

Why a separate process: Jepsen's kafka workload models a crashed client as a torn-down process
with a fresh id; killing this process is exactly that. librdkafka is the client most Kafka
users run, so its retries, idempotence (KIP-98) and fetch positions are what is under test.

Requests (one per line; the harness waits for the answer before sending the next):
  {"f":"send","topic":"t0","partition":1,"value":"v17"}
      -> {"type":"ok","offset":118} | {"type":"fail"|"info","error":"..."}
  {"f":"poll","poll_ms":100}
      -> {"type":"ok","polls":[{"topic","partition","fetch_offset","high_watermark",
                                "records":[[offset,value],...]}]}
  {"f":"assign","partitions":[["t0",0],...]}
      -> {"type":"ok","seeks":[["t0",0,0],...]}   (partitions newly assigned, read from 0)
  {"f":"subscribe","topics":["t0",...]}   -> {"type":"ok"}
  {"f":"close"}  -> {"type":"ok"}, then exit

Positions: the worker tracks each assigned partition's position itself (the offset after the
last record it returned), so `fetch_offset` is the position the application saw before the
poll (jepsen_tla.md §1.2). Newly assigned partitions start at offset 0 (no retention in these
tests; auto.offset.reset=earliest as Jepsen's "safe" settings).

In subscribe mode the group decides the assignment; each poll reports the rebalance events that
happened during it, with the committed offsets the consumer restarts from, and commits the
positions after the poll (commitSync, as Jepsen's client does for polls without assign).

Error classes (jepsen_tla.md §1.2): "fail" only for errors that guarantee nothing was written;
everything else, NOT_LEADER_OR_FOLLOWER included (KAFKA-13574), is "info".
The worker exits when stdin closes, and asks the kernel to kill it if its parent dies.
"""

import ctypes
import json
import signal
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

SEND_FLUSH_S = 12.0  # message.timeout.ms is 10 s (Jepsen's client deadline); flush waits a bit longer
POLL_MESSAGES_MAX = 500
PR_SET_PDEATHSIG = 1

FAIL_ERRORS = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.INVALID_REPLICATION_FACTOR,
    KafkaError.NOT_CONTROLLER,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    KafkaError.PRODUCER_FENCED,
    KafkaError._PURGE_QUEUE,
}


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Worker:
    def __init__(self, bootstrap, idempotent, client_id, group):
        producer_config = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": idempotent,
            "linger.ms": 0,
            "message.timeout.ms": 10000,
            "request.timeout.ms": 5000,
            "socket.timeout.ms": 5000,
            "retry.backoff.ms": 100,
            "reconnect.backoff.max.ms": 1000,
        }
        if not idempotent:
            producer_config["retries"] = 1000
        self.producer = Producer(producer_config)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": client_id,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 100,
                "socket.timeout.ms": 5000,
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "reconnect.backoff.max.ms": 1000,
            }
        )
        self.positions = {}  # (topic, partition) -> next offset the application reads
        self.subscribed = False
        self.client_id = client_id
        self.commits_made = 0
        self.rebalances = []
        self.reassigned = set()  # partitions (re)assigned during the current poll

    def send(self, req):
        delivered = []

        def on_delivery(err, msg):
            delivered.append((err, msg.offset() if err is None else None))

        try:
            self.producer.produce(req["topic"], value=req["value"].encode(), partition=req["partition"],
                                  on_delivery=on_delivery)
        except BufferError as e:
            return {"type": "fail", "error": f"BufferError {e}"}
        except Exception as e:  # a KafkaException before enqueueing: nothing was sent
            return {"type": "fail", "error": str(e)}
        self.producer.flush(SEND_FLUSH_S)
        if not delivered:
            return {"type": "info", "error": "no delivery report within the flush deadline"}
        err, offset = delivered[0]
        if err is None:
            return {"type": "ok", "offset": offset}
        kind = "fail" if err.code() in FAIL_ERRORS else "info"
        return {"type": kind, "error": err.name()}

    def assign(self, req):
        wanted = [(t, p) for t, p in req["partitions"]]
        seeks = []
        tps = []
        for key in wanted:
            if key in self.positions:
                tps.append(TopicPartition(key[0], key[1], self.positions[key]))
            else:
                tps.append(TopicPartition(key[0], key[1], OFFSET_BEGINNING))
                seeks.append([key[0], key[1], 0])
        self.positions = {key: self.positions.get(key, 0) for key in wanted}
        self.consumer.assign(tps)
        return {"type": "ok", "seeks": seeks}

    def on_assign(self, consumer, partitions):
        # An OffsetFetch: what the group committed (null: nothing), and where reading restarts.
        committed = consumer.committed(partitions, timeout=5)
        seeks = []
        fetches = []
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else 0
            self.positions[(tp.topic, tp.partition)] = offset
            self.reassigned.add((tp.topic, tp.partition))
            seeks.append([tp.topic, tp.partition, offset])
            value = [tp.offset, tp.metadata or ""] if tp.offset >= 0 else None
            fetches.append([tp.topic, tp.partition, value])
        self.rebalances.append({"type": "assigned", "seeks": seeks, "fetches": fetches})

    def on_revoke(self, consumer, partitions):
        for tp in partitions:
            self.positions.pop((tp.topic, tp.partition), None)
        self.rebalances.append({"type": "revoked", "partitions": [[tp.topic, tp.partition] for tp in partitions]})

    def commit(self):
        """commitSync of every position, each with metadata unique in the history (a read of the
        committed offset then names the commit it saw). Returns [topic, partition, offset,
        metadata, outcome] per partition."""
        tps = []
        for (t, p), o in sorted(self.positions.items()):
            self.commits_made += 1
            tps.append(TopicPartition(t, p, o, metadata=f"{self.client_id}-c{self.commits_made}"))
        try:
            answered = self.consumer.commit(offsets=tps, asynchronous=False)
            by_key = {(tp.topic, tp.partition): tp.error for tp in answered}
            outcomes = [commit_outcome(by_key.get((tp.topic, tp.partition))) for tp in tps]
        except KafkaException as e:
            outcomes = [commit_outcome(e.args[0])] * len(tps)
        except Exception:
            outcomes = ["Indeterminate"] * len(tps)
        return [[tp.topic, tp.partition, tp.offset, tp.metadata, outcome] for tp, outcome in zip(tps, outcomes)]

    def subscribe(self, req):
        self.consumer.subscribe(req["topics"], on_assign=self.on_assign, on_revoke=self.on_revoke)
        self.subscribed = True
        return {"type": "ok"}

    def poll(self, req):
        before = dict(self.positions)
        self.reassigned = set()
        messages = self.consumer.consume(POLL_MESSAGES_MAX, req["poll_ms"] / 1000.0)
        by_partition = {}
        for msg in messages:
            if msg.error() is not None:
                continue
            key = (msg.topic(), msg.partition())
            if key not in self.positions:
                continue  # revoked while the message was queued
            by_partition.setdefault(key, []).append([msg.offset(), (msg.value() or b"").decode()])
        polls = []
        for key, records in sorted(by_partition.items()):
            # A partition (re)assigned during this poll starts where its assignment put it.
            if key in self.reassigned or key not in before:
                fetch_offset = self.positions[key]
            else:
                fetch_offset = before[key]
            self.positions[key] = records[-1][0] + 1
            _, high = self.consumer.get_watermark_offsets(TopicPartition(key[0], key[1]), cached=True)
            if high < 0:
                high = records[-1][0] + 1
            polls.append({"topic": key[0], "partition": key[1], "fetch_offset": fetch_offset,
                          "high_watermark": max(high, records[-1][0] + 1), "records": records})
        answer = {"type": "ok", "polls": polls}
        if self.subscribed:
            answer["rebalances"], self.rebalances = self.rebalances, []
            if self.positions:
                answer["commits"] = self.commit()
        return answer


COMMIT_FAIL_ERRORS = {  # fencing errors: the coordinator refuses before writing anything
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID,
}


def commit_outcome(error):
    if error is None:
        return "Ok"
    return "Failed" if error.code() in COMMIT_FAIL_ERRORS else "Indeterminate"


def main():
    libc = ctypes.CDLL(None)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    bootstrap, idempotent, client_id, group = sys.argv[1], sys.argv[2] == "true", sys.argv[3], sys.argv[4]
    worker = Worker(bootstrap, idempotent, client_id, group)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        f = req["f"]
        if f == "close":
            reply({"type": "ok"})
            break
        handler = {"send": worker.send, "poll": worker.poll, "assign": worker.assign,
                   "subscribe": worker.subscribe}[f]
        reply(handler(req))


if __name__ == "__main__":
    main()
