---------------------------- MODULE TracePartitionReplication ----------------------------
(***************************************************************************************)
(* Trace validation (issue 7): checks that a simulator run's Raft trace is a behaviour  *)
(* of PartitionReplication, after Cirstea, Kuppe, Loillier and Merz (2024) and etcd      *)
(* raft's Traceetcdraft.tla, in the form TLC 2.15 allows (no Json module: the trace is   *)
(* the generated module TraceData, see tracegen.py and jepsen_tla.md §4.4).              *)
(*                                                                                     *)
(* Each record of `Trace` is one step of one replica's core (tracegen.py cuts the       *)
(* trace's effects into steps) and is explained by one spec action whose parameters the *)
(* record gives, so TLC's search is linear in the trace. The state after the action is  *)
(* compared with what the record says (term, vote, log end, commit index...). Messages  *)
(* the trace does not log are the spec's (msgs, and the leaders' histories).            *)
(*                                                                                     *)
(* Verdict: the trace is accepted iff TLC reports TraceNotFullyMatched violated (some    *)
(* behaviour consumed every record; it also prints "TRACE ACCEPTED", which is what      *)
(* validate_traces.py checks when it leaves that invariant out). Otherwise TLC finds    *)
(* no error and the depth it reports is d:                                              *)
(* records 1..d-1 matched and record d is the first no behaviour of the spec explains.   *)
(* A violated TraceSafety means the run drove the spec into an unsafe state.            *)
(*                                                                                     *)
(* A module may hold several groups (partitions) one after another: a "Group" record    *)
(* starts a fresh behaviour with that group's voters (the spec's Init with them).       *)
(***************************************************************************************)
EXTENDS TraceData, Naturals, Integers, Sequences, FiniteSets, TLC

VARIABLES currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
          msgs, heldVotes, heldAcks, undo, hist, elected, committed, acked, reads, termsSeen,
          l  \* the next record to explain

M == INSTANCE PartitionReplication
        WITH Nodes <- TraceNodes, None <- 0, InitVoters <- {}, InitLearners <- {},
             PreVote <- TRUE, CommitRuleCurrentTerm <- TRUE, CrashDetail <- TRUE

vars == <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
          msgs, heldVotes, heldAcks, undo, hist, elected, committed, acked, reads, termsSeen>>

E == Trace[l]
NoStep == [idx |-> -3, term |-> -3]     \* tracegen.py's "no truncation / no reset"
Positions(s) == [k \in DOMAIN s |-> M!Pos(s[k])]
\* The term of the entry at index x of a log s after position b (M!TermAt on values).
TermIn(s, b, x) ==
    IF x = b.idx THEN b.term
    ELSE LET ks == {k \in DOMAIN s : s[k].idx = x} IN IF ks = {} THEN -2 ELSE s[CHOOSE k \in ks : TRUE].term

\* The spec's Init, for the voters of a group (every other node never acts).
Reset(voters) ==
    LET cfg == [voters |-> voters, learners |-> {}] IN
    /\ currentTerm' = [i \in TraceNodes |-> 0]
    /\ votedFor' = [i \in TraceNodes |-> 0]
    /\ role' = [i \in TraceNodes |-> "Follower"]
    /\ leader' = [i \in TraceNodes |-> 0]
    /\ log' = [i \in TraceNodes |-> <<>>]
    /\ base' = [i \in TraceNodes |-> M!NoPos]
    /\ baseCfg' = [i \in TraceNodes |-> cfg]
    /\ commitIndex' = [i \in TraceNodes |-> -1]
    /\ synced' = [i \in TraceNodes |-> -1]
    /\ msgs' = {}
    /\ heldVotes' = [i \in TraceNodes |-> {}]
    /\ heldAcks' = [i \in TraceNodes |-> {}]
    /\ undo' = [i \in TraceNodes |-> M!NoUndo]
    /\ hist' = <<>>
    /\ elected' = {}
    /\ committed' = {}
    /\ acked' = {}
    /\ reads' = {}
    /\ termsSeen' = {0}

TraceInit == l = 1 /\ M!Init

\* ---- One disjunct per record kind. ----------------------------------------------------

DoRestart(i) ==
    /\ \/ \E len \in 0..Len(log[i]) : M!Restart(i, len)
       \/ undo[i] # M!NoUndo /\ \E len \in 0..Len(undo[i].log) : M!RestartUndone(i, len)
    /\ currentTerm'[i] = E.term
    /\ votedFor'[i] = E.vote
    /\ commitIndex'[i] = E.committed
    /\ (IF log'[i] = <<>> THEN base'[i] ELSE M!Pos(log'[i][Len(log'[i])])) = E.last

DoMoveStart(i) == \E k \in DOMAIN log[i] : log[i][k].idx = E.idx /\ M!MoveLogStart(i, k)

DoTimeout(i) == currentTerm[i] = E.term /\ M!Timeout(i)

\* Pre-vote answers are not logged: tracegen.py puts a "PreVotes" record after each Timeout
\* and before each Candidate record of a pre-candidate. It is the HandlePreVote steps of
\* every voter that would grant at that moment (each adds one message and changes nothing
\* else, so their sequence is this one step).
DoPreVotes(i) ==
    /\ role[i] = "PreCandidate"
    /\ msgs' = msgs \cup {M!PreVoteGrant(j, i) :
                            j \in {j \in TraceNodes \ {i} :
                                     M!PreVoteGrantable(j, i, currentTerm[i] + 1, M!LastPos(i))}}
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
                   heldVotes, heldAcks, undo, hist, elected, committed, acked, reads, termsSeen>>

\* tracegen.py marks a candidacy a transfer when a leader granted it (only a transfer's vote
\* request gets past a leader). Otherwise a pre-candidate won its pre-vote, or (if it could
\* not have) the leader handed it leadership anyway.
DoCandidate(i) ==
    /\ \/ E.transfer /\ M!TransferCampaign(i)
       \/ /\ ~E.transfer
          /\ IF role[i] = "PreCandidate" /\ ENABLED M!BecomeCandidate(i)
             THEN M!BecomeCandidate(i)
             ELSE M!TransferCampaign(i)
    /\ currentTerm'[i] = E.term

DoLeader(i) ==
    /\ currentTerm[i] = E.term
    /\ M!BecomeLeader(i)
    /\ M!Pos(log'[i][Len(log'[i])]) = E.noop

DoPropose(i) ==
    /\ E.pos.term = currentTerm[i]
    /\ E.pos.idx > M!LastIdx(i)
    /\ M!Propose(i, E.pos.idx - M!LastIdx(i))

DoLeaderCommit(i) == M!TermAt(i, E.idx) = E.term /\ M!AdvanceCommit(i, E.idx)

DoStepDown(i) ==
    /\ currentTerm[i] = E.term
    /\ \/ M!CheckQuorumStepDown(i)
       \/ M!LoseElection(i)

DoVote(i) == M!SendVote(i, E.cand, E.term)

\* A held answer with this index (the latest term's if several: deterministic). If none: an
\* AppendEntries that changed nothing (a heartbeat, or a late duplicate of entries i holds)
\* logs no event but is answered: then this record is that M!HandleAppendEntries step (i is
\* already a follower of the leader of its term, holds p, and nothing but the held answer
\* changes) followed by M!SendAck, written out as one step.
DoAck(i) ==
    LET hs == {h \in heldAcks[i] : h.matched = E.matched}
        t == currentTerm[i]
        p == E.matched
    IN
    \/ hs # {} /\ M!SendAck(i, CHOOSE h \in hs : \A h2 \in hs : h2.term <= h.term)
    \/ /\ hs = {}
       /\ t \in DOMAIN hist /\ hist[t].leader = leader[i] /\ leader[i] \notin {0, i}
       /\ role[i] \in {"Follower", "Learner"}
       /\ M!Matches(i, p) /\ M!InHist(t, p)
       /\ heldAcks' = [heldAcks EXCEPT ![i] = @ \cup {[term |-> t, matched |-> p]}]
       /\ msgs' = M!WithAck(msgs, M!AckMsg(i, t, p))
       /\ synced' = [synced EXCEPT ![i] = M!Max(@, p.idx)]
       /\ undo' = [undo EXCEPT ![i] = M!NoUndo]
       /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex,
                      heldVotes, hist, elected, committed, acked, reads, termsSeen>>

\* A receive step. What the replica did says which message it handled.
ReceiveChecks(i) ==
    /\ currentTerm'[i] = E.term
    /\ leader'[i] = E.leader
    /\ role'[i] = E.role
    /\ E.commit # -1 => /\ commitIndex'[i] = E.commit
                        /\ TermIn(log'[i], base'[i], E.commit) = E.commitTerm

\* The AppendEntries that explains a truncation, appends and a commit: its prev is the
\* truncation point, or the log end, or (commit only) the entry at the new commit index.
AEPrev(i) ==
    IF E.trunc # NoStep THEN E.trunc
    ELSE IF E.app # <<>> THEN M!LastPos(i)
    ELSE [idx |-> E.commit, term |-> M!TermAt(i, E.commit)]

\* The log the record describes: the entries up to the truncation point, then the appended
\* ones (compared by length and last position: the entries come from the leader's history).
ExpectedLog(i) ==
    LET cut == IF E.trunc # NoStep THEN E.trunc.idx ELSE M!LastIdx(i) IN
    Positions(SelectSeq(log[i], LAMBDA e : e.idx <= cut)) \o E.app

DoReceive(i) ==
    /\ \/ /\ E.grant # 0
          /\ \E m \in msgs : /\ m.type = "Vote" /\ m.from = E.grant /\ m.term = E.term /\ i \in m.to
                             /\ M!HandleVoteRequest(i, m)
          /\ votedFor'[i] = E.grant
       \/ /\ E.reset # NoStep
          /\ M!HandleLogStart(i, E.term, E.reset)
          /\ base'[i] = E.reset
       \/ /\ E.grant = 0 /\ E.reset = NoStep
          /\ E.trunc # NoStep \/ E.app # <<>> \/ E.commit # -1
          /\ E.term \in DOMAIN hist
          /\ LET k == M!HistIndex(E.term, AEPrev(i)) IN
             /\ k >= 0
             /\ M!HandleAppendEntries(i, E.term, k, Len(E.app), E.commit)
          /\ LET x == ExpectedLog(i) IN
             /\ Len(log'[i]) = Len(x)
             /\ Len(x) > 0 => M!Pos(log'[i][Len(x)]) = x[Len(x)]
       \/ /\ E.grant = 0 /\ E.reset = NoStep
          /\ E.trunc = NoStep /\ E.app = <<>> /\ E.commit = -1
          /\ \/ /\ E.leader # 0
                \* an AppendEntries that changed no entry (a rejection or a heartbeat)
                /\ E.term \in DOMAIN hist /\ hist[E.term].leader = E.leader
                /\ M!HandleAppendEntries(i, E.term, 0, 0, -1)
                /\ UNCHANGED log
             \/ /\ E.leader = 0
                /\ \/ \E m \in msgs : /\ m.type = "Vote" /\ m.term = E.term /\ i \in m.to
                                      /\ M!HandleVoteRequest(i, m)
                   \/ M!LearnTerm(i, E.term)
                /\ votedFor'[i] = 0
    /\ ReceiveChecks(i)

\* The last record consumed: say so (validate_traces.py's verdict without printing the
\* whole accepted behaviour, which TraceNotFullyMatched makes TLC do).
Consume(A) ==
    /\ l <= Len(Trace)
    /\ A
    /\ l' = l + 1
    /\ l = Len(Trace) => PrintT("TRACE ACCEPTED")

TraceNext ==
    \/ Consume(E.ev = "Group" /\ Reset(E.voters))
    \/ Consume(E.ev = "Restart" /\ DoRestart(E.node))
    \/ Consume(E.ev = "MoveStart" /\ DoMoveStart(E.node))
    \/ Consume(E.ev = "Timeout" /\ DoTimeout(E.node))
    \/ Consume(E.ev = "PreVotes" /\ DoPreVotes(E.node))
    \/ Consume(E.ev = "Candidate" /\ DoCandidate(E.node))
    \/ Consume(E.ev = "Leader" /\ DoLeader(E.node))
    \/ Consume(E.ev = "Propose" /\ DoPropose(E.node))
    \/ Consume(E.ev = "LeaderCommit" /\ DoLeaderCommit(E.node))
    \/ Consume(E.ev = "StepDown" /\ DoStepDown(E.node))
    \/ Consume(E.ev = "Vote" /\ DoVote(E.node))
    \/ Consume(E.ev = "Ack" /\ DoAck(E.node))
    \/ Consume(E.ev = "Receive" /\ DoReceive(E.node))

TraceSpec == TraceInit /\ [][TraceNext]_<<vars, l>>

\* INVARIANT: violated <=> the whole trace was explained (the verdict PASS).
TraceNotFullyMatched == l <= Len(Trace)

\* The spec's safety invariants in per-step form: each is checked after the steps that can
\* break it, and only for what the step touched, given that it held before (checking the
\* whole invariants in every state of a long trace would cost more than the validation).
Last == Trace[l - 1]
\* ElectionSafety as it is.
\* LeaderCompleteness after an election: the new leader holds the newest entry committed in
\* an earlier term (by Log Matching it then holds every earlier committed entry too).
NewLeaderComplete(i) ==
    LET older == {c \in committed : c.at < currentTerm[i]}
    IN older # {} => M!Holds(i, CHOOSE c \in older : \A d \in older : d.idx <= c.idx)
\* LogMatching (committed entries agree, the simulator's form) after a leader's commit.
CommitAgrees(x) == \A c, d \in {c \in committed : c.idx = x} : c.term = d.term
\* CommittedNeverLost after a step that can remove entries of node i above index cut
\* (truncation, log reset, crash): the committed entries above it are still held durably by
\* a majority.
StillDurable(cut) ==
    \A c \in {c \in committed : c.idx > cut} :
        M!IsQuorum({j \in TraceNodes : M!DurablyHolds(j, c)}, c.voters)
RemovedAbove ==
    CASE Last.ev = "Restart" -> Last.last.idx
      [] Last.ev = "Receive" /\ Last.trunc # NoStep -> Last.trunc.idx
      [] Last.ev = "Receive" /\ Last.reset # NoStep -> -1
      [] OTHER -> 1000000000
TraceSafety ==
    l > 1 =>
      /\ M!ElectionSafety
      /\ Last.ev = "Leader" => NewLeaderComplete(Last.node)
      /\ Last.ev = "LeaderCommit" => CommitAgrees(Last.idx)
      /\ StillDurable(RemovedAbove)

\* HighWatermarkMonotonic: within an incarnation no replica's commit index goes back (a
\* restart, or the next group's fresh start, begins anew).
TraceHighWatermarkMonotonic ==
    [][Trace[l].ev \notin {"Restart", "Group"} => \A i \in TraceNodes : commitIndex'[i] >= commitIndex[i]]_<<vars, l>>

\* The whole invariants, for short traces (a .cfg may list them instead of TraceSafety).
FullSafety ==
    /\ M!ElectionSafety /\ M!LogMatching /\ M!LeaderCompleteness /\ M!CommittedNeverLost
    /\ M!ReadsBelowHighWatermark /\ M!AckedNeverLost
=========================================================================================
