#!/usr/bin/env bash
# kcat -G (librdkafka's high-level balanced consumer) in a consumer group (issue 6).
#
# Usage: kcat_groups_test.sh BOOTSTRAP                 e.g. 127.0.0.1:9092
# Environment:
#   KCAT               kcat binary (default: kcat from PATH)
#   LD_LIBRARY_PATH    as for kcat_test.sh: tests/run-system runs this with Debian's librdkafka
#                      2.0.2 and with the 2.16 of the confluent-kafka wheel
#   PYTHON             the .venv python (groups_test.py's checker needs confluent-kafka)
#
# 1. 60 records create the topic (auto-created by the produce, like kcat_test.sh does).
# 2. Two `kcat -G GROUP TOPIC` processes run concurrently (auto.offset.reset=earliest, auto
#    commit every 500 ms, session.timeout.ms 10000). Balanced consumers cannot stop at the end
#    (-e), so each runs under `timeout` and is stopped with SIGTERM once the work is done (kcat
#    then closes its consumer: final commit and LeaveGroup). Their rebalance lines on stderr
#    must show the partitions split between the two (disjoint, all partitions, both non-empty).
#    Output is unbuffered (-u): the test reads the files while kcat runs.
# 3. 540 more records; across the two outputs every one of the 600 must be consumed (values
#    checked, each at one offset) and both processes must have consumed some.
# 4. After both exited: the group's committed offsets (OffsetFetch, via confluent-kafka's
#    AdminClient in groups_test.py kcat-check) must be the log ends (last offset read + 1).
set -euo pipefail

BOOTSTRAP=${1:?usage: kcat_groups_test.sh BOOTSTRAP}
HERE=$(cd "$(dirname "$0")" && pwd)
KCAT=${KCAT:-kcat}
PYTHON=${PYTHON:-python3}
RECORDS=600
FIRST=60                    # records that create the topic before the consumers start
KCAT_TIMEOUT_S=60           # bound on each producing / metadata kcat
GROUP_RUN_LIMIT_S=150       # hard bound on each kcat -G process (SIGTERM, then SIGKILL 10 s later)
SPLIT_DEADLINE_S=60         # both kcat -G assigned, partitions split
CONSUME_DEADLINE_S=60
STOP_DEADLINE_S=30          # a kcat -G must exit this soon after SIGTERM
SETTINGS=(-X session.timeout.ms=10000 -X heartbeat.interval.ms=1000 -X auto.offset.reset=earliest
  -X enable.auto.commit=true -X auto.commit.interval.ms=500 -X fetch.wait.max.ms=100)

LIBVER=$("$KCAT" -V 2>&1 | sed -n 's/.*librdkafka \([0-9.]*\).*/\1/p' | head -1)
[[ -n "$LIBVER" ]] || { echo "kcat groups: FAIL: cannot run '$KCAT -V'"; exit 1; }
LABEL="kcat -G (librdkafka $LIBVER)"
RUN="$(date +%s)-$$-$RANDOM"
TOPIC="sys-groups-kcat-${LIBVER//./}-$RUN"
GROUP="groups-kcat-${LIBVER//./}-$RUN"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kcat-groups-test.XXXXXX")
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
echo "$LABEL; bootstrap $BOOTSTRAP; topic $TOPIC, group $GROUP"

fail() {
  echo "  FAIL $LABEL: $1"
  local i
  for i in 1 2; do
    if [[ -s "$WORK/kcat-$i.err" ]]; then
      echo "  kcat -G #$i stderr (tail):"
      tail -n 15 "$WORK/kcat-$i.err" | sed 's/^/       /'
    fi
  done
  echo "$LABEL: FAIL"
  exit 1
}

distinct_consumed() { cut -f3 "$WORK"/consumed-*.txt 2>/dev/null | sort -u | wc -l; }

"$PYTHON" "$HERE/groups_test.py" kcat-input --run "$RUN" --records "$RECORDS" >"$WORK/input.txt"
head -n "$FIRST" "$WORK/input.txt" >"$WORK/first.txt"
tail -n +"$((FIRST + 1))" "$WORK/input.txt" >"$WORK/rest.txt"
PRODUCE=("$KCAT" -b "$BOOTSTRAP" -P -t "$TOPIC" -K: -X acks=all -X partitioner=murmur2_random -m 10)

# 1. Create the topic with the first records.
timeout "$KCAT_TIMEOUT_S" "${PRODUCE[@]}" <"$WORK/first.txt" 2>"$WORK/produce-1.err" ||
  fail "kcat -P failed: $(tail -n 5 "$WORK/produce-1.err")"
timeout "$KCAT_TIMEOUT_S" "$KCAT" -b "$BOOTSTRAP" -L -J -t "$TOPIC" -m 10 >"$WORK/meta.json" 2>"$WORK/meta.err" ||
  fail "kcat -L failed: $(tail -n 5 "$WORK/meta.err")"
PARTS=$("$PYTHON" "$HERE/common.py" partitions --topic "$TOPIC" <"$WORK/meta.json") || fail "no partition count for $TOPIC"
((PARTS >= 2)) || fail "$TOPIC has $PARTS partition(s); the group needs >= 2 to split"

# 2. Two balanced consumers.
for i in 1 2; do
  timeout --kill-after=10 "$GROUP_RUN_LIMIT_S" "$KCAT" -b "$BOOTSTRAP" -G "$GROUP" "${SETTINGS[@]}" \
    -u -f '%p\t%o\t%s\n' "$TOPIC" >"$WORK/consumed-$i.txt" 2>"$WORK/kcat-$i.err" &
  PIDS+=($!)
done
deadline=$((SECONDS + SPLIT_DEADLINE_S))
until split=$("$PYTHON" "$HERE/groups_test.py" kcat-assigned --topic "$TOPIC" --partitions "$PARTS" \
    "$WORK/kcat-1.err" "$WORK/kcat-2.err"); do
  ((SECONDS < deadline)) || fail "the two kcat -G did not split the $PARTS partitions within ${SPLIT_DEADLINE_S}s: $split"
  for i in 1 2; do
    kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null || fail "kcat -G #$i exited early"
  done
  sleep 0.5
done
echo "  partitions split: $split"

# 3. The rest of the records, consumed across the two.
timeout "$KCAT_TIMEOUT_S" "${PRODUCE[@]}" <"$WORK/rest.txt" 2>"$WORK/produce-2.err" ||
  fail "kcat -P failed: $(tail -n 5 "$WORK/produce-2.err")"
deadline=$((SECONDS + CONSUME_DEADLINE_S))
while (($(distinct_consumed) < RECORDS)); do
  ((SECONDS < deadline)) || fail "only $(distinct_consumed) of $RECORDS records consumed within ${CONSUME_DEADLINE_S}s"
  sleep 0.5
done
echo "  all $RECORDS records consumed ($(cat "$WORK"/consumed-1.txt | wc -l) and $(cat "$WORK"/consumed-2.txt | wc -l) lines)"
sleep 2 # a few auto-commit intervals; the close on SIGTERM commits too

# SIGTERM to the `timeout` wrappers, which pass it on to kcat.
for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
t0=$SECONDS
for i in 1 2; do
  pid=${PIDS[$((i - 1))]}
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS - t0 < STOP_DEADLINE_S)) || fail "kcat -G #$i still running ${STOP_DEADLINE_S}s after SIGTERM"
    sleep 0.2
  done
  status=0
  wait "$pid" || status=$?
  # kcat exits 0 after a clean close; 143 would mean it died of the signal without closing.
  ((status == 0)) || fail "kcat -G #$i exited with status $status after SIGTERM"
done
PIDS=()

# 4. Values and committed offsets.
"$PYTHON" "$HERE/groups_test.py" kcat-check --bootstrap "$BOOTSTRAP" --topic "$TOPIC" --group "$GROUP" \
  --run "$RUN" --records "$RECORDS" --partitions "$PARTS" \
  --consumed "$WORK/consumed-1.txt" "$WORK/consumed-2.txt" || fail "checks above"
echo "$LABEL: PASS"
