#!/usr/bin/env bash
# kcat (librdkafka's CLI) against a Kafka-protocol broker.
#
# Usage: kcat_test.sh BOOTSTRAP                 e.g. 127.0.0.1:9092
# Environment:
#   KCAT               kcat binary (default: kcat from PATH)
#   LD_LIBRARY_PATH    tests/run-system runs this script twice: once with Debian's
#                      librdkafka 2.0.2 (the "old client canary": it mis-skips tagged fields,
#                      so a broker that sends default-valued tagged fields fails here), and once
#                      with the librdkafka 2.16 from the confluent-kafka wheel via this variable.
#   PYTHON             python3 for the checker in common.py (stdlib only; default python3)
#   EXPECT_PARTITIONS  if set, auto-created topics must have exactly this many partitions
#
# kcat cannot create topics, so each codec's topic is auto-created by the first produce
# (Metadata with allow_auto_topic_creation; the broker's --num-partitions decides the count).
# kcat also cannot set per-record headers or timestamps: every chunk of records is one kcat
# invocation with its own -H headers, and timestamps (librdkafka's CreateTime = now) are
# checked against the wall-clock window of that invocation. Records are read back with
# `-C -o beginning -e -f FORMAT` (no -G: kcat then assigns partitions itself, no group) and
# checked by common.py (exactly once, same key -> same partition = murmur2 with
# partitioner=murmur2_random, per-partition produce order, headers, timestamps).
set -euo pipefail

BOOTSTRAP=${1:?usage: kcat_test.sh BOOTSTRAP}
HERE=$(cd "$(dirname "$0")" && pwd)
KCAT=${KCAT:-kcat}
PYTHON=${PYTHON:-python3}
CODECS=(none gzip snappy lz4 zstd)   # every librdkafka build used here has all five
CHUNKS=6
KCAT_TIMEOUT_S=60                    # bound on every single kcat invocation

LIBVER=$("$KCAT" -V 2>&1 | sed -n 's/.*librdkafka \([0-9.]*\).*/\1/p' | head -1)
[[ -n "$LIBVER" ]] || { echo "kcat: FAIL: cannot run '$KCAT -V'"; exit 1; }
LABEL="kcat (librdkafka $LIBVER)"
RUN="$(date +%s)-$$-$RANDOM"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kcat-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "$LABEL; bootstrap $BOOTSTRAP"

now_ms() { date +%s%3N; }

# Common librdkafka settings: idempotent acks=all producer (ordering under retries, and it
# exercises InitProducerId), Java-compatible partitioner, metadata timeout of 10 s.
PRODUCE_OPTS=(-X acks=all -X enable.idempotence=true -X partitioner=murmur2_random -m 10)

failures=0
fail() { echo "  FAIL $LABEL $1"; failures=$((failures + 1)); }

for codec in "${CODECS[@]}"; do
  topic="sys-kcat-${LIBVER//./}-$codec-$RUN"
  dir="$WORK/$codec"
  mkdir -p "$dir"
  "$PYTHON" "$HERE/common.py" kcat-input --run "$RUN" --codec "$codec" --chunks "$CHUNKS" --out-dir "$dir"

  # Produce: one kcat per chunk, each with its own headers, timing each for the timestamp check.
  windows="{"
  produced_ok=1
  for ((c = 0; c < CHUNKS; c++)); do
    t0=$(now_ms)
    if ! timeout "$KCAT_TIMEOUT_S" "$KCAT" -b "$BOOTSTRAP" -P -t "$topic" -K: -z "$codec" \
        -H "codec=$codec" -H "chunk=$c" "${PRODUCE_OPTS[@]}" \
        <"$dir/chunk-$c.txt" 2>"$dir/produce-$c.err"; then
      fail "$codec: kcat -P failed (chunk $c):"
      sed 's/^/       /' "$dir/produce-$c.err" | tail -15
      produced_ok=0
      break
    fi
    t1=$(now_ms)
    windows+="\"$c\": [$t0, $t1],"
  done
  [[ $produced_ok == 1 ]] || continue
  echo "${windows%,}}" >"$dir/windows.json"

  # Metadata: how many partitions did auto-creation give the topic?
  if ! timeout "$KCAT_TIMEOUT_S" "$KCAT" -b "$BOOTSTRAP" -L -J -t "$topic" -m 10 >"$dir/meta.json" 2>"$dir/meta.err" ||
     ! parts=$("$PYTHON" "$HERE/common.py" partitions --topic "$topic" <"$dir/meta.json"); then
    fail "$codec: kcat -L failed:"
    sed 's/^/       /' "$dir/meta.err" "$dir/meta.json" | tail -15
    continue
  fi
  if [[ -n "${EXPECT_PARTITIONS:-}" && "$parts" != "$EXPECT_PARTITIONS" ]]; then
    fail "$codec: auto-created topic has $parts partitions, broker should have made $EXPECT_PARTITIONS"
    continue
  fi
  if ((parts < 2)); then
    fail "$codec: auto-created topic has $parts partition(s); need >= 2 to check partitioning"
    continue
  fi

  # Consume every partition from the beginning to the end (-e), no consumer group.
  if ! timeout "$KCAT_TIMEOUT_S" "$KCAT" -b "$BOOTSTRAP" -C -t "$topic" -o beginning -e -m 10 \
      -X fetch.wait.max.ms=100 -f '%p\t%o\t%T\t%k\t%s\t%h\n' >"$dir/consumed.txt" 2>"$dir/consume.err"; then
    fail "$codec: kcat -C failed:"
    sed 's/^/       /' "$dir/consume.err" | tail -15
    continue
  fi
  if ! "$PYTHON" "$HERE/common.py" kcat-verify --run "$RUN" --codec "$codec" --chunks "$CHUNKS" \
      --consumed "$dir/consumed.txt" --windows "$dir/windows.json" --partitions "$parts" \
      --label "$LABEL $codec"; then
    failures=$((failures + 1))
  fi
done

if ((failures > 0)); then
  echo "$LABEL: FAIL ($failures codec(s) failed)"
  exit 1
fi
echo "$LABEL: PASS"
