#!/usr/bin/env python3
"""tracegen.py: turns a simulator Raft trace into a TLA+ module for trace validation.

Why (issue 7): TLC 2.15 has no Json module, so a trace reaches TLC as a generated module
`TraceData` holding a tuple of records, which TracePartitionReplication.tla consumes one per
step (see ../../shared/reference/jepsen_tla.md §4.4).

Input: the JSON lines `sim/run --trace-out DIR` writes (one file per seed,
sim/src/runner.rs::write_trace): {"node", "group", "event", ...fields of
sluice_raft::TraceEvent}, in one global order. Every Raft group (each partition, and
`__cluster_metadata`) is a separate behaviour of the spec; a module may hold several, each
opened by a "Group" record that resets the spec's state.

Mapping: the core emits one trace event per effect, and one step of the core (one input)
emits several effects; the shell records them as one contiguous block. This script cuts the
blocks into core steps with the grammar below, and each step becomes one record that one
spec action must explain (linear validation, no search for hidden steps):

    Restart                                   -> Restart / RestartUndone
    Role(PreCandidate)                        -> Timeout
    HardState(t, self) Role(Candidate)        -> BecomeCandidate / TransferCampaign
    Role(Leader) Append([noop])               -> BecomeLeader
    Append (on a leader)                      -> Propose
    Commit (on a leader)                      -> AdvanceCommit
    Role(Follower, None) (leader, candidates) -> CheckQuorumStepDown / LoseElection
    Vote                                      -> SendVote
    Ack                                       -> SendAck
    [HardState(t, None)] [Role(Follower, l)]  -> a receive step: HandleVoteRequest when
      then HardState(t, c) | ResetLog [Commit]   a vote is granted, HandleLogStart on a reset,
      | [Truncate] [Append] [Commit]             HandleAppendEntries otherwise (or LearnTerm)

Unlogged steps the spec needs are made explicit as records: "MoveStart" (retention moved a
replica's log start; seen only when a restart recovers a later start) before the Restart that
shows it, and "PreVotes" (the voters' pre-vote answers, which no event logs) after each
Timeout and before each BecomeCandidate of a pre-candidate.
Repeated identical acknowledgements of a replica with nothing of its own in between are
stuttering steps and are dropped (their events stay listed in the sidecar map).

Output: OUT/TraceData.tla and OUT/TraceData.json (per record: group, the trace lines it
came from, for reports). Usage:
    tracegen.py TRACE.jsonl --out DIR [--group G ...] [--max-steps N] [--list]
                [--break old-term-commit|double-vote]
--break plants a defect in the trace for the self-test: a leader's commit moved back onto an
entry of an earlier term (Raft §5.4.2), or a second granted vote in a term (§5.2). The
sidecar then names the planted record, which validation must reject at exactly that record.
Python 3 standard library only.
"""

import argparse
import copy
import json
import sys
from collections import defaultdict

NONE = 0  # "no node" in the TLA+ module


class TraceError(Exception):
    pass


def load(path):
    records = []
    with open(path) as f:
        for line_no, line in enumerate(f):
            line = line.strip()
            if line:
                r = json.loads(line)
                r["_line"] = line_no
                records.append(r)
    return records


def pos(p):
    return (int(p[0]), int(p[1]))


class Shadow:
    """What the generator needs to know of one replica: enough to tell steps apart."""

    def __init__(self):
        self.role = "Follower"
        self.term = 0
        self.leader = NONE
        self.log = []  # [(idx, term)]
        self.base = (-1, -1)
        self.commit = -1
        self.last_ack = None


def last_pos(s):
    return s.log[-1] if s.log else s.base


def split_steps(events, node, shadow):
    """Cuts one block of contiguous events of one replica into core steps."""
    steps = []
    i, n = 0, len(events)

    def take(kind, *evs):
        steps.append((kind, list(evs)))

    while i < n:
        e = events[i]
        ev = e["event"]
        nxt = events[i + 1] if i + 1 < n else None
        if ev in ("Restart", "Vote", "Ack"):
            take(ev, e)
            i += 1
        elif ev == "Role" and e["role"] == "PreCandidate":
            take("Timeout", e)
            i += 1
        elif ev == "HardState" and e["voted_for"] == node:
            if not (nxt and nxt["event"] == "Role" and nxt["role"] == "Candidate"):
                raise TraceError(f"line {e['_line']}: a vote for itself not followed by Role(Candidate)")
            take("Candidate", e, nxt)
            i += 2
        elif ev == "Role" and e["role"] == "Leader":
            if not (nxt and nxt["event"] == "Append" and len(nxt["entries"]) == 1):
                raise TraceError(f"line {e['_line']}: Role(Leader) not followed by its no-op")
            take("Leader", e, nxt)
            i += 2
        elif ev == "Append" and shadow.role == "Leader":
            take("Propose", e)
            i += 1
        elif ev == "Commit" and shadow.role == "Leader":
            take("LeaderCommit", e)
            i += 1
        elif (ev == "Role" and e["leader"] is None and e["term"] == shadow.term
              and shadow.role in ("Leader", "PreCandidate", "Candidate")
              and e["role"] in ("Follower", "Learner")):
            take("StepDown", e)
            i += 1
        else:
            # A receive step: an optional term change, an optional role change, a body.
            evs = []
            if ev == "HardState" and e["voted_for"] is None:
                evs.append(e)
                i += 1
                if i < n and events[i]["event"] == "Role" and events[i]["role"] in ("Follower", "Learner") \
                        and events[i]["term"] == e["term"]:
                    evs.append(events[i])
                    i += 1
            elif ev == "Role" and e["role"] in ("Follower", "Learner"):
                evs.append(e)
                i += 1
            body = events[i]["event"] if i < n else None
            if body == "HardState" and events[i]["voted_for"] not in (None, node):
                evs.append(events[i])
                i += 1
            elif body == "ResetLog":
                evs.append(events[i])
                i += 1
                if i < n and events[i]["event"] == "Commit":
                    evs.append(events[i])
                    i += 1
            else:
                for kind in ("Truncate", "Append", "Commit"):
                    if i < n and events[i]["event"] == kind:
                        evs.append(events[i])
                        i += 1
            if not evs:
                raise TraceError(f"line {e['_line']}: event {ev} fits no step of node {node} (role {shadow.role})")
            take("Receive", *evs)
        # Keep the shadow's role current between steps of one block.
        kind, evs = steps[-1]
        apply_step(shadow, node, kind, evs)
    return steps


def apply_step(s, node, kind, evs):
    """The shadow replica after one step (enough for step boundaries and MoveStart)."""
    for e in evs:
        ev = e["event"]
        if ev == "Restart":
            last = pos(e["last"])
            s.log = [p for p in s.log if p[0] <= last[0]]
            if last[0] > e["committed"] and (not s.log or s.log[-1] != last):
                s.log.append(last)
            s.base = (e["committed"], s.base[1]) if e["committed"] > s.base[0] else s.base
            s.log = [p for p in s.log if p[0] > s.base[0]]
            s.term, s.role, s.leader, s.commit = e["term"], "Follower", NONE, e["committed"]
        elif ev == "Role":
            s.term, s.role = e["term"], e["role"]
            s.leader = e["leader"] if e["leader"] is not None else NONE
        elif ev == "HardState":
            s.term = e["term"]  # a leader change always comes with a Role event
        elif ev == "Append":
            s.log.extend(pos(p) for p in e["entries"])
        elif ev == "Truncate":
            s.log = [p for p in s.log if p[0] <= e["after"][0]]
        elif ev == "ResetLog":
            s.log, s.base = [], pos(e["before_start"])
            s.commit = max(s.commit, s.base[0])
        elif ev == "Commit":
            s.commit = max(s.commit, e["index"])


def tla_pos(p):
    return f"[idx |-> {p[0]}, term |-> {p[1]}]"


def tla_seq(ps):
    return "<<" + ", ".join(tla_pos(p) for p in ps) + ">>"


NOPOS = (-1, -1)
NOTRUNC = (-3, -3)  # "no truncation"/"no reset": not a position


def step_record(kind, evs, node, before, after):
    """The TLA+ record of one step (before/after: the shadow around it)."""
    e0 = evs[0]
    if kind == "Restart":
        return (f'[ev |-> "Restart", node |-> {node}, term |-> {e0["term"]}, '
                f'vote |-> {e0["voted_for"] or NONE}, last |-> {tla_pos(pos(e0["last"]))}, '
                f'committed |-> {e0["committed"]}]')
    if kind == "Timeout":
        return f'[ev |-> "Timeout", node |-> {node}, term |-> {e0["term"]}]'
    if kind == "Candidate":
        # transfer: filled in by group_steps (TRUE when a leader granted this candidacy).
        return f'[ev |-> "Candidate", node |-> {node}, term |-> {e0["term"]}, transfer |-> @TRANSFER@]'
    if kind == "Leader":
        return (f'[ev |-> "Leader", node |-> {node}, term |-> {e0["term"]}, '
                f'noop |-> {tla_pos(pos(evs[1]["entries"][0]))}]')
    if kind == "Propose":
        if len(e0["entries"]) != 1:
            raise TraceError(f"line {e0['_line']}: a leader appended {len(e0['entries'])} entries at once")
        return f'[ev |-> "Propose", node |-> {node}, pos |-> {tla_pos(pos(e0["entries"][0]))}]'
    if kind == "LeaderCommit":
        return f'[ev |-> "LeaderCommit", node |-> {node}, idx |-> {e0["index"]}, term |-> {e0["term"]}]'
    if kind == "StepDown":
        return f'[ev |-> "StepDown", node |-> {node}, term |-> {e0["term"]}]'
    if kind == "Vote":
        return f'[ev |-> "Vote", node |-> {node}, term |-> {e0["term"]}, cand |-> {e0["candidate"]}]'
    if kind == "Ack":
        return f'[ev |-> "Ack", node |-> {node}, matched |-> {tla_pos(pos(e0["matched"]))}]'
    if kind == "Receive":
        new_term = any(e["event"] == "HardState" and e["voted_for"] is None for e in evs)
        grant = next((e["voted_for"] for e in evs if e["event"] == "HardState" and e["voted_for"]), NONE)
        trunc = next((pos(e["after"]) for e in evs if e["event"] == "Truncate"), NOTRUNC)
        app = next((e["entries"] for e in evs if e["event"] == "Append"), [])
        reset = next((pos(e["before_start"]) for e in evs if e["event"] == "ResetLog"), NOTRUNC)
        commit = next((e for e in evs if e["event"] == "Commit"), None)
        return (f'[ev |-> "Receive", node |-> {node}, term |-> {after.term}, '
                f'newTerm |-> {"TRUE" if new_term else "FALSE"}, leader |-> {after.leader}, '
                f'role |-> "{after.role}", grant |-> {grant}, trunc |-> {tla_pos(trunc)}, '
                f'app |-> {tla_seq([pos(p) for p in app])}, reset |-> {tla_pos(reset)}, '
                f'commit |-> {commit["index"] if commit else -1}, '
                f'commitTerm |-> {commit["term"] if commit else -1}]')
    raise TraceError(f"unknown step kind {kind}")


def group_steps(records, group):
    """The steps of one group: [(kind, events, node, tla_record)] in trace order."""
    mine = [r for r in records if r["group"] == group]
    shadows = defaultdict(Shadow)
    out = []
    transfers = set()
    i = 0
    while i < len(mine):
        # A block: consecutive trace lines of one replica.
        j = i + 1
        while j < len(mine) and mine[j]["node"] == mine[i]["node"] and mine[j]["_line"] == mine[j - 1]["_line"] + 1:
            j += 1
        node = mine[i]["node"]
        # split_steps moves a scratch shadow along; the real one follows step by step below.
        steps = split_steps(mine[i:j], node, copy.deepcopy(shadows[node]))
        shadow = shadows[node]
        for kind, evs in steps:
            if kind == "Ack" and shadow.last_ack == tuple(evs[0]["matched"]):
                continue  # the same acknowledgement again: a stuttering step
            if kind == "Restart" and evs[0]["committed"] > shadow.base[0]:
                # Retention moved the log start before the crash (unlogged): make it a step.
                out.append(("MoveStart", [], node,
                            f'[ev |-> "MoveStart", node |-> {node}, idx |-> {evs[0]["committed"]}]'))
            if kind == "Candidate" and shadow.role == "PreCandidate":
                out.append(("PreVotes", [], node, f'[ev |-> "PreVotes", node |-> {node}]'))
            before = copy.deepcopy(shadow)
            if kind == "Receive" and before.role == "Leader":
                grant = next((e for e in evs if e["event"] == "HardState" and e["voted_for"]), None)
                if grant:
                    # A leader granted a vote of a later term: only a transfer's request
                    # (TimeoutNow -> campaign(true)) gets past a leader's stickiness.
                    transfers.add((grant["voted_for"], grant["term"]))
            apply_step(shadow, node, kind, evs)
            shadow.last_ack = tuple(evs[0]["matched"]) if kind == "Ack" else None
            out.append((kind, evs, node, step_record(kind, evs, node, before, shadow)))
            if kind == "Timeout":
                # Pre-vote answers are not logged: the voters answer at once (and again just
                # before the pre-candidate counts them, above).
                out.append(("PreVotes", [], node, f'[ev |-> "PreVotes", node |-> {node}]'))
        i = j
    for k, (kind, evs, node, rec) in enumerate(out):
        if kind == "Candidate":
            flag = "TRUE" if (node, evs[0]["term"]) in transfers else "FALSE"
            out[k] = (kind, evs, node, rec.replace("@TRANSFER@", flag))
    return out


def plant(steps, how):
    """Plants a defect for the self-test; returns (steps, index of the planted step)."""
    if how == "double-vote":
        for k, (kind, evs, node, rec) in enumerate(steps):
            if kind != "Vote":
                continue
            voters = sorted({n for (_, _, n, _) in steps})
            other = next((c for c in voters if c not in (node, evs[0]["candidate"])), None)
            if other is None:
                continue
            e = dict(evs[0], candidate=other, _line=-1)
            planted = ("Vote", [e], node, step_record("Vote", [e], node, None, None))
            return steps[:k + 1] + [planted] + steps[k + 1:], k + 1
        raise TraceError("no granted vote to double in this trace")
    if how == "old-term-commit":
        # A leader's first commit in its term, moved back onto an entry of an earlier term that
        # the same acknowledgements cover: only the current-term rule forbids it.
        logs, commits, roles, terms = defaultdict(list), defaultdict(lambda: -1), {}, {}
        for k, (kind, evs, node, rec) in enumerate(steps):
            if kind == "LeaderCommit":
                n_idx = evs[0]["index"]
                older = [p for p in logs[node] if commits[node] < p[0] < n_idx and p[1] < terms[node]]
                if older:
                    target = older[-1]
                    e = dict(evs[0], index=target[0], term=target[1], _line=-1)
                    planted = ("LeaderCommit", [e], node, step_record("LeaderCommit", [e], node, None, None))
                    return steps[:k] + [planted] + steps[k:], k
            for e in evs:
                ev = e["event"]
                if ev == "Append":
                    logs[node].extend(pos(p) for p in e["entries"])
                elif ev == "Truncate":
                    logs[node] = [p for p in logs[node] if p[0] <= e["after"][0]]
                elif ev == "ResetLog":
                    logs[node] = []
                elif ev == "Restart":
                    logs[node] = [p for p in logs[node] if p[0] <= e["last"][0]]
                    commits[node] = e["committed"]
                elif ev == "Commit":
                    commits[node] = max(commits[node], e["index"])
                if ev in ("Role", "HardState", "Restart"):
                    terms[node] = e["term"]
        raise TraceError("no leader commit with an uncommitted earlier-term entry below it in this trace")
    raise TraceError(f"unknown --break {how}")


def write_module(out_dir, groups_steps, all_nodes, planted=None):
    """groups_steps: [(group, voters, steps)]."""
    lines, sidecar = [], []
    max_term = 0
    for group, voters, steps in groups_steps:
        lines.append(f'[ev |-> "Group", voters |-> {{{", ".join(str(v) for v in sorted(voters))}}}]')
        sidecar.append({"group": group, "kind": "Group", "lines": []})
        for kind, evs, node, rec in steps:
            lines.append(rec)
            sidecar.append({"group": group, "kind": kind, "node": node,
                            "lines": [e["_line"] for e in evs]})
            for e in evs:
                if "term" in e:
                    max_term = max(max_term, e["term"])
    nodes = ", ".join(str(n) for n in sorted(all_nodes))
    with open(f"{out_dir}/TraceData.tla", "w") as f:
        f.write("---- MODULE TraceData ----\nEXTENDS Integers\n")
        f.write("\\* Generated by specs/tracegen.py from a simulator Raft trace; do not edit.\n")
        f.write(f"TraceNodes == {{{nodes}}}\n")
        f.write(f"TraceMaxTerm == {max_term}\n")
        f.write("Trace == <<\n")
        f.write(",\n".join(lines))
        f.write("\n>>\n====\n")
    with open(f"{out_dir}/TraceData.json", "w") as f:
        json.dump({"records": sidecar, "planted": planted}, f)
    return len(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace", help="a seed's trace (JSON lines from sim/run --trace-out)")
    ap.add_argument("--out", default=".", help="folder for TraceData.tla and TraceData.json")
    ap.add_argument("--group", action="append", help="only these groups (default: every group)")
    ap.add_argument("--max-steps", type=int, default=0,
                    help="validate only the first N steps of each group (a prefix of a behaviour is one)")
    ap.add_argument("--list", action="store_true", help="list the groups and their step counts")
    ap.add_argument("--break", dest="brk", choices=["old-term-commit", "double-vote"],
                    help="plant a defect (self-test) in the first group where it fits")
    args = ap.parse_args()
    records = load(args.trace)
    groups = sorted({r["group"] for r in records})
    if args.group:
        groups = [g for g in groups if g in set(args.group)]
    all_nodes = {r["node"] for r in records}
    out, planted = [], None
    for g in groups:
        steps = group_steps(records, g)
        if args.max_steps:
            steps = steps[: args.max_steps]
        voters = {r["node"] for r in records if r["group"] == g}
        if args.brk and planted is None:
            try:
                steps, k = plant(steps, args.brk)
            except TraceError:
                continue
            planted = {"group": g, "step": k, "kind": args.brk}
            out.append((g, voters, steps))
            break
        out.append((g, voters, steps))
    if args.brk and planted is None:
        sys.exit(f"tracegen: no group of {args.trace} fits --break {args.brk}")
    if args.list:
        for g, voters, steps in out:
            print(f"{g}\tvoters {sorted(voters)}\t{len(steps)} steps")
        return
    if planted:
        # The record number in the module: 1 per group header, then the steps.
        before = sum(1 + len(s) for (g, _, s) in out[:-1])
        planted["record"] = before + 1 + planted["step"] + 1
    n = write_module(args.out, out, all_nodes, planted)
    print(f"tracegen: {n} records for {len(out)} group(s) -> {args.out}/TraceData.tla", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except TraceError as e:
        sys.exit(f"tracegen: {e}")
