------------------------------ MODULE PartitionReplication ------------------------------
(***************************************************************************************)
(* Sluice's partition replication as implemented: one partition is one Raft group      *)
(* (src/raft, driven by src/broker/src/replication/replica.rs), and its Kafka meaning:  *)
(* entries are record batches named by their last offset, the commit index is the high  *)
(* watermark, acks=all is answered when the high watermark passes the batch in the same *)
(* leader epoch, and fetch serves only below the high watermark.                        *)
(*                                                                                     *)
(* Why: issue 7. This spec is model-checked on small constants                         *)
(* (MCPartitionReplication.tla) and every simulator run's Raft trace is checked to be a *)
(* behaviour of it (TracePartitionReplication.tla). So the actions are written at the  *)
(* granularity of the code's steps, each naming the Rust function that implements it,  *)
(* and what the code does differently from textbook Raft is modelled, not idealised:   *)
(*   - pre-vote (Raft thesis §9.6) and check-quorum (§6.2) with leader stickiness       *)
(*     (§4.2.3): a leader ignores vote requests of later terms unless they come from a  *)
(*     leadership transfer (§3.10);                                                    *)
(*   - Kafka offsets are log positions: an entry's index is its batch's last offset, so *)
(*     indexes increase but are not consecutive; a new leader's no-op is a one-offset   *)
(*     control batch;                                                                  *)
(*   - a leader counts itself toward a majority only for what it has fsynced; followers *)
(*     acknowledge only fsynced entries (group commit, effect.rs rule 2);              *)
(*   - the log start moves (retention, DeleteRecords) over the committed prefix only,   *)
(*     and a follower behind the leader's log start restarts its log there (LogStart /  *)
(*     ResetLog, the partition log's form of a snapshot);                              *)
(*   - membership changes one server at a time by learner promotion (thesis §4.1,       *)
(*     §4.2.1), each taking effect when appended, with the thesis' fix that a leader    *)
(*     first commits an entry of its own term;                                         *)
(*   - crashes keep the hard state (term, vote) and the fsynced log prefix, perhaps more *)
(*     (unsynced batches may survive), and may interrupt the durable writes of the      *)
(*     replica's last step;                                                            *)
(*   - the network loses, duplicates and reorders messages.                            *)
(*                                                                                     *)
(* The network. `msgs` is the set of every message sent so far; a receive never removes *)
(* its message, so any message may be delivered never, once or many times, in any      *)
(* order. A vote request to every voter is one message whose `to` is a set; a            *)
(* pre-candidate's request is read from its state while it asks (HandlePreVote). A       *)
(* leader's AppendEntries, LogStart and TimeoutNow are not stored one by one:            *)
(* a leader may send any slice of its log at any time it leads, so the set of those     *)
(* messages of term t is determined by the leader's history `hist[t]` (its log as it    *)
(* led: it only grows while it leads, and its highest commit index). The receive        *)
(* actions quantify over that set. Vote and pre-vote denials and the rejections a stale *)
(* sender gets back carry no safety obligation and are abstracted: a candidate may lose *)
(* its election at any time (LoseElection), and a node may learn a term some node has   *)
(* from a reply (LearnTerm).                                                           *)
(*                                                                                     *)
(* Invariants, named as in the simulator's checkers (src/checker/src/raft.rs):         *)
(* ElectionSafety, LogMatching, LeaderCompleteness, CommittedNeverLost,                 *)
(* HighWatermarkMonotonic (an action property), ReadsBelowHighWatermark, AckedNeverLost. *)
(***************************************************************************************)
EXTENDS Naturals, Integers, Sequences, FiniteSets, TLC

CONSTANTS
    Nodes,                  \* replica ids
    None,                   \* "no node": not in Nodes
    InitVoters,             \* the group's initial configuration (used by Init only)
    InitLearners,
    PreVote,                \* config.rs::Config::pre_vote (TRUE in the broker)
    CommitRuleCurrentTerm,  \* TRUE as implemented (Raft §5.4.2); FALSE is the planted mutant
    CrashDetail             \* TRUE: answers wait for fsync, and a crash may interrupt the
                            \* writes of a replica's last step (see Wrote, SendVote, SendAck)

ASSUME None \notin Nodes /\ InitVoters \subseteq Nodes /\ InitLearners \subseteq Nodes
ASSUME PreVote \in BOOLEAN /\ CommitRuleCurrentTerm \in BOOLEAN /\ CrashDetail \in BOOLEAN

VARIABLES
    \* Per replica, persistent (raft.hard_state, Raft Figure 2).
    currentTerm, votedFor,
    \* Per replica, volatile.
    role,          \* "Follower", "PreCandidate", "Candidate", "Leader" or "Learner"
    leader,        \* the known leader, or None
    \* Per replica, the log (raft_log.rs::RaftLog): entries after `base`, the position
    \* before the log start (raft.start.json), the configuration as of `base`, the commit
    \* index (the high watermark minus one) and the fsynced offset.
    log, base, baseCfg, commitIndex, synced,
    msgs,          \* every vote request, granted (pre-)vote and successful AppendResponse sent
    heldVotes,     \* granted votes whose answer waits for the log to be fsynced (replica.rs `held`)
    heldAcks,      \* successful AppendResponses created and not lost: [term, matched] (ditto)
    undo,          \* per replica: its durable state before its last step's writes, or NoUndo
    \* Ghost state, for the derived network and the invariants.
    hist,          \* term -> the leader's history: [leader, base, baseCfg, entries, commit]
    elected,       \* every [term, node] that became leader
    committed,     \* every entry some replica committed: [idx, term, kind, at] (at: its term then)
    acked,         \* entries acknowledged to acks=all producers
    reads,         \* entries served to consumers by Fetch
    termsSeen      \* every term some replica entered

vars == <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
          msgs, heldVotes, heldAcks, undo, hist, elected, committed, acked, reads, termsSeen>>

-----------------------------------------------------------------------------------------
(* Positions, entries and logs. A position is [idx, term]; an entry adds its kind:       *)
(* [type |-> "data" | "noop" | "add" | "promote" | "remove", node |-> the member or None]. *)

NoPos == [idx |-> -1, term |-> -1]          \* LogPosition::EMPTY
Absent == -2                                \* "no entry at this index"
NoUndo == [none |-> TRUE]
Data == [type |-> "data", node |-> None]
Noop == [type |-> "noop", node |-> None]

Max(a, b) == IF a >= b THEN a ELSE b
Min(a, b) == IF a <= b THEN a ELSE b
Pos(e) == [idx |-> e.idx, term |-> e.term]
Range(s) == {s[k] : k \in DOMAIN s}

LastPos(i) == IF log[i] = <<>> THEN base[i] ELSE Pos(log[i][Len(log[i])])
LastIdx(i) == LastPos(i).idx

\* raft_log.rs::RaftLog::term_at: the term of the entry at index x, or of the position
\* before the log start.
TermAt(i, x) ==
    IF x = base[i].idx THEN base[i].term
    ELSE LET ks == {k \in DOMAIN log[i] : log[i][k].idx = x}
         IN IF ks = {} THEN Absent ELSE log[i][CHOOSE k \in ks : TRUE].term

\* raft_log.rs::RaftLog::matches: Raft §5.3's consistency check.
Matches(i, p) == TermAt(i, p.idx) = p.term

\* LogPosition's order: by term, then index (message.rs derives Ord in that field order).
MaxPos(a, b) == IF a.term > b.term \/ (a.term = b.term /\ a.idx >= b.idx) THEN a ELSE b

\* election.rs::Raft::up_to_date: Raft §5.4.1 (LogPosition orders by term, then index).
UpToDate(last, i) ==
    \/ last.term > LastPos(i).term
    \/ last.term = LastPos(i).term /\ last.idx >= LastPos(i).idx

-----------------------------------------------------------------------------------------
(* Membership (membership.rs): the configuration of a replica is the one as of its log   *)
(* start, changed by every membership entry in its log, committed or not (thesis §4.1).  *)

IsMembership(e) == e.kind.type \in {"add", "promote", "remove"}

\* membership.rs::Membership::apply
ApplyChange(cfg, k) ==
    CASE k.type = "add"     -> [voters |-> cfg.voters, learners |-> cfg.learners \cup {k.node}]
      [] k.type = "promote" -> [voters |-> cfg.voters \cup {k.node}, learners |-> cfg.learners \ {k.node}]
      [] k.type = "remove"  -> [voters |-> cfg.voters \ {k.node}, learners |-> cfg.learners \ {k.node}]
      [] OTHER              -> cfg

ValidChange(cfg, k) ==
    CASE k.type = "add"     -> k.node \notin cfg.voters \cup cfg.learners
      [] k.type = "promote" -> k.node \in cfg.learners
      [] k.type = "remove"  -> \/ k.node \in cfg.voters /\ cfg.voters # {k.node}
                               \/ k.node \in cfg.learners
      [] OTHER              -> FALSE

RECURSIVE ApplyAll(_, _, _)
ApplyAll(cfg, s, k) == IF k > Len(s) THEN cfg ELSE ApplyAll(ApplyChange(cfg, s[k].kind), s, k + 1)

\* The configuration after the entries of s, starting from cfg.
ConfigAfter(cfg, s) == ApplyAll(cfg, SelectSeq(s, IsMembership), 1)

Config(i) == ConfigAfter(baseCfg[i], log[i])
Voters(i) == Config(i).voters

\* A follower's role under a configuration (membership.rs::Raft::set_membership).
FollowerRole(i, cfg) == IF i \in cfg.learners THEN "Learner" ELSE "Follower"

\* raft.rs::Raft::quorum: voters.len() / 2 + 1 of the voters.
IsQuorum(S, voters) == 2 * Cardinality(S \cap voters) > Cardinality(voters)

\* The index of the newest membership entry in i's log (membership_changed_at), or -1.
LastChangeIdx(i) ==
    LET ks == {k \in DOMAIN log[i] : IsMembership(log[i][k])}
    IN IF ks = {} THEN -1 ELSE log[i][CHOOSE k \in ks : \A k2 \in ks : k2 <= k].idx

-----------------------------------------------------------------------------------------
(* The derived part of the network: what the leader of term t can have sent.            *)

\* p is the position before the leader's log start, or one of its entries.
HistIndex(t, p) ==
    IF p = hist[t].base THEN 0
    ELSE LET ks == {k \in DOMAIN hist[t].entries : Pos(hist[t].entries[k]) = p}
         IN IF ks = {} THEN -1 ELSE CHOOSE k \in ks : TRUE
InHist(t, p) == HistIndex(t, p) >= 0

\* The leader's configuration as of its k-th entry.
HistConfig(t, k) == ConfigAfter(hist[t].baseCfg, SubSeq(hist[t].entries, 1, k))

\* The durable state a crash recovers from (see Restart), taken before a step writes.
Snapshot(i) == [term |-> currentTerm[i], vote |-> votedFor[i], log |-> log[i], base |-> base[i],
                baseCfg |-> baseCfg[i], synced |-> synced[i]]
\* A step that writes durable state (hard state, truncation, log reset) records what a
\* crash during those writes may leave; any later step of the replica proves them done
\* (the shell executes one step's effects before it takes the next input).
Wrote(i) == undo' = [undo EXCEPT ![i] = IF CrashDetail THEN Snapshot(i) ELSE NoUndo]
Settled(i) == undo' = [undo EXCEPT ![i] = NoUndo]

\* The entries of i's log in (lo, hi], recorded as committed in i's current term.
NewlyCommitted(i, lo, hi) ==
    LET new == {[idx |-> e.idx, term |-> e.term, kind |-> e.kind, at |-> currentTerm[i],
                 voters |-> Voters(i)] :
                    e \in {e \in Range(log[i]) : lo < e.idx /\ e.idx <= hi}}
    IN {c \in new : ~\E d \in committed : d.idx = c.idx /\ d.term = c.term}

-----------------------------------------------------------------------------------------
InitCfg == [voters |-> InitVoters, learners |-> InitLearners]

Init ==
    /\ currentTerm = [i \in Nodes |-> 0]
    /\ votedFor = [i \in Nodes |-> None]
    /\ role = [i \in Nodes |-> FollowerRole(i, InitCfg)]
    /\ leader = [i \in Nodes |-> None]
    /\ log = [i \in Nodes |-> <<>>]
    /\ base = [i \in Nodes |-> NoPos]
    /\ baseCfg = [i \in Nodes |-> InitCfg]
    /\ commitIndex = [i \in Nodes |-> -1]
    /\ synced = [i \in Nodes |-> -1]
    /\ msgs = {}
    /\ heldVotes = [i \in Nodes |-> {}]
    /\ heldAcks = [i \in Nodes |-> {}]
    /\ undo = [i \in Nodes |-> NoUndo]
    /\ hist = <<>>
    /\ elected = {}
    /\ committed = {}
    /\ acked = {}
    /\ reads = {}
    /\ termsSeen = {0}

-----------------------------------------------------------------------------------------
(* Elections.                                                                           *)

\* raft.rs::Raft::tick (the election timeout) and Input::Campaign -> election.rs::Raft::campaign
\* with pre-vote (thesis §9.6): ask the voters whether they would vote at term + 1, changing
\* no term. While i is a pre-candidate its request is (term + 1, its last position): the
\* request is not stored, HandlePreVote reads it from i's state.
Timeout(i) ==
    /\ PreVote
    /\ role[i] \in {"Follower", "PreCandidate", "Candidate"}
    /\ i \in Voters(i)
    /\ role' = [role EXCEPT ![i] = "PreCandidate"]
    /\ leader' = [leader EXCEPT ![i] = None]
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, log, base, baseCfg, commitIndex, synced, msgs, heldVotes, heldAcks,
                   hist, elected, committed, acked, reads, termsSeen>>

\* election.rs::Raft::handle_pre_vote: whether j grants a pre-vote from i for term t with
\* last log position last. A pre-vote for a later term is ignored while a leader is heard
\* from (stickiness, thesis §4.2.3): always by a leader; by a follower that knows a leader,
\* depending on time, which the spec leaves open (it may not take the action). A pre-vote
\* of an earlier term, or one j cannot grant, is denied (denials are not modelled).
PreVoteGrantable(j, i, t, last) ==
    /\ t >= currentTerm[j]
    /\ ~(t > currentTerm[j] /\ role[j] = "Leader")
    /\ i \in Voters(j)
    /\ \/ votedFor[j] = i
       \/ votedFor[j] = None /\ leader[j] = None
       \/ t > currentTerm[j]
    /\ UpToDate(last, j)

\* A granted answer carries the asked term, so the asker can count it.
PreVoteGrant(j, i) == [type |-> "PreVoteResp", from |-> j, to |-> i, term |-> currentTerm[i] + 1]

\* (Answering changes nothing durable, so it leaves `undo` alone.)
HandlePreVote(j, i) ==
    /\ role[i] = "PreCandidate" /\ j # i
    /\ PreVoteGrantable(j, i, currentTerm[i] + 1, LastPos(i))
    /\ msgs' = msgs \cup {PreVoteGrant(j, i)}
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
                   heldVotes, heldAcks, undo, hist, elected, committed, acked, reads, termsSeen>>

\* election.rs::Raft::become_candidate: term + 1, vote for itself (durable before any
\* request goes out, §5.2), ask every other voter.
BecomeCandidateSteps(i, transfer) ==
    LET t == currentTerm[i] + 1 IN
    /\ currentTerm' = [currentTerm EXCEPT ![i] = t]
    /\ votedFor' = [votedFor EXCEPT ![i] = i]
    /\ role' = [role EXCEPT ![i] = "Candidate"]
    /\ leader' = [leader EXCEPT ![i] = None]
    /\ msgs' = msgs \cup {[type |-> "Vote", from |-> i, to |-> Voters(i) \ {i}, term |-> t,
                           last |-> LastPos(i), transfer |-> transfer]}
    /\ termsSeen' = termsSeen \cup {t}
    /\ Wrote(i)
    /\ UNCHANGED <<log, base, baseCfg, commitIndex, synced, heldVotes, heldAcks, hist, elected, committed,
                   acked, reads>>

\* The voters whose granted pre-vote answers i can count: election.rs::handle_vote_response
\* counts any granted answer whose term is not below i's (a late grant from an earlier round
\* of the same term included, as the code does).
PreVotesFor(i) == {m.from : m \in {m \in msgs : m.type = "PreVoteResp" /\ m.to = i /\ m.term >= currentTerm[i]}}

\* election.rs::Raft::record_vote (pre_vote): a majority of the voters granted i's pre-vote.
BecomeCandidate(i) ==
    /\ role[i] = "PreCandidate"
    /\ IsQuorum({i} \cup PreVotesFor(i), Voters(i))
    /\ BecomeCandidateSteps(i, FALSE)

\* election.rs::Raft::campaign without pre-vote (Config::pre_vote false): the election
\* timeout starts an election at once.
TimeoutNoPreVote(i) ==
    /\ ~PreVote
    /\ role[i] \in {"Follower", "Candidate"}
    /\ i \in Voters(i)
    /\ BecomeCandidateSteps(i, FALSE)

\* raft.rs::Raft::receive (TimeoutNow) -> election.rs::Raft::campaign(true): the leader of
\* i's term hands leadership over (replication.rs::Raft::maybe_finish_transfer sends
\* TimeoutNow once i has acknowledged its log; the spec asks for an acknowledgement of
\* that term). No pre-vote; the vote requests bypass stickiness. A TimeoutNow of a later
\* term first makes i a follower of that term (HandleAppendEntries models that step).
TransferCampaign(i) ==
    LET t == currentTerm[i] IN
    /\ t \in DOMAIN hist
    /\ hist[t].leader # i
    /\ role[i] # "Leader" /\ i \in Voters(i)
    /\ \E m \in msgs : m.type = "Ack" /\ m.from = i /\ m.term = t
    /\ BecomeCandidateSteps(i, TRUE)

\* raft.rs::Raft::handle_higher_term (Vote) + election.rs::Raft::handle_vote. A request of a
\* later term is ignored by a leader unless it comes from a transfer (stickiness); by a
\* follower that knows a leader depending on time (left open). Otherwise j moves to that
\* term (raft.rs::Raft::become_follower) and grants if it can: a vote is durable before it
\* is answered, so the answer is held (SendVote). A request of an earlier term is ignored.
\* Without CrashDetail a held answer is indistinguishable from one sent at once and
\* delayed by the network, so the model sends it at once (fewer states).
HandleVoteRequest(j, m) ==
    LET t == m.term
        later == t > currentTerm[j]
        vote1 == IF later THEN None ELSE votedFor[j]
        leader1 == IF later THEN None ELSE leader[j]
        grant == /\ m.from \in Voters(j)
                 /\ vote1 = m.from \/ (vote1 = None /\ leader1 = None)
                 /\ UpToDate(m.last, j)
        vote2 == IF grant THEN m.from ELSE vote1
    IN
    /\ m \in msgs /\ m.type = "Vote" /\ j \in m.to
    /\ t >= currentTerm[j]
    /\ later /\ ~m.transfer => role[j] # "Leader"
    /\ later \/ grant
    /\ currentTerm' = [currentTerm EXCEPT ![j] = t]
    /\ votedFor' = [votedFor EXCEPT ![j] = vote2]
    /\ leader' = [leader EXCEPT ![j] = leader1]
    /\ role' = [role EXCEPT ![j] = IF later THEN FollowerRole(j, Config(j)) ELSE role[j]]
    /\ IF grant /\ ~CrashDetail
       THEN /\ msgs' = msgs \cup {[type |-> "VoteResp", from |-> j, to |-> m.from, term |-> t]}
            /\ UNCHANGED heldVotes
       ELSE /\ heldVotes' = [heldVotes EXCEPT ![j] = IF grant THEN @ \cup {[term |-> t, cand |-> m.from]} ELSE @]
            /\ UNCHANGED msgs
    /\ IF later \/ vote2 # votedFor[j] THEN Wrote(j) ELSE Settled(j)
    /\ UNCHANGED <<log, base, baseCfg, commitIndex, synced, heldAcks, hist, elected, committed,
                   acked, reads, termsSeen>>

\* replica.rs::Replica::send (a held VoteResponse released once the log is fsynced,
\* Replica::flushed; trace.rs::TraceEvent::sent records it). A duplicate request from the
\* candidate j already voted for is granted again (election.rs::Raft::handle_vote).
SendVote(j, c, t) ==
    /\ \/ [term |-> t, cand |-> c] \in heldVotes[j]
       \/ /\ currentTerm[j] = t /\ votedFor[j] = c /\ c \in Voters(j)
          /\ \E m \in msgs : m.type = "Vote" /\ m.from = c /\ j \in m.to /\ m.term = t /\ UpToDate(m.last, j)
    /\ msgs' = msgs \cup {[type |-> "VoteResp", from |-> j, to |-> c, term |-> t]}
    /\ heldVotes' = [heldVotes EXCEPT ![j] = @ \ {[term |-> t, cand |-> c]}]
    /\ Settled(j)
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
                   heldAcks, hist, elected, committed, acked, reads, termsSeen>>

\* election.rs::Raft::record_vote -> become_leader: a majority granted i its term; i
\* appends its no-op, a one-offset Kafka control batch (LEADER_CHANGE), so that entries of
\* earlier terms can commit (Raft §8, §5.4.2).
BecomeLeader(i) ==
    LET t == currentTerm[i]
        noop == [idx |-> LastIdx(i) + 1, term |-> t, kind |-> Noop]
        granted == {m.from : m \in {m \in msgs : m.type = "VoteResp" /\ m.to = i /\ m.term = t}}
    IN
    /\ role[i] = "Candidate"
    /\ IsQuorum({i} \cup granted, Voters(i))
    /\ role' = [role EXCEPT ![i] = "Leader"]
    /\ leader' = [leader EXCEPT ![i] = i]
    /\ log' = [log EXCEPT ![i] = Append(@, noop)]
    /\ hist' = (t :> [leader |-> i, base |-> base[i], baseCfg |-> baseCfg[i],
                      entries |-> Append(log[i], noop), commit |-> commitIndex[i]]) @@ hist
    /\ elected' = elected \cup {[term |-> t, node |-> i]}
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, base, baseCfg, commitIndex, synced, msgs, heldVotes, heldAcks,
                   committed, acked, reads, termsSeen>>

\* election.rs::Raft::record_vote (a majority said no) -> raft.rs::Raft::become_follower.
\* Denials are not modelled (no safety depends on them): a (pre-)candidate may give up
\* at any time.
LoseElection(i) ==
    /\ role[i] \in {"PreCandidate", "Candidate"}
    /\ role' = [role EXCEPT ![i] = FollowerRole(i, Config(i))]
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, leader, log, base, baseCfg, commitIndex, synced, msgs,
                   heldVotes, heldAcks, hist, elected, committed, acked, reads, termsSeen>>

\* replication.rs::Raft::tick_leader: check-quorum (thesis §6.2). A leader that has not
\* heard from a majority within an election timeout steps down (timing is left open).
CheckQuorumStepDown(i) ==
    /\ role[i] = "Leader"
    /\ role' = [role EXCEPT ![i] = FollowerRole(i, Config(i))]
    /\ leader' = [leader EXCEPT ![i] = None]
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, log, base, baseCfg, commitIndex, synced, msgs,
                   heldVotes, heldAcks, hist, elected, committed, acked, reads, termsSeen>>

\* raft.rs::Raft::handle_higher_term for a reply of a later term: the rejection a stale
\* leader gets (raft.rs::Raft::handle_stale) or a pre-vote denial. The replier had term t.
LearnTerm(i, t) ==
    /\ t > currentTerm[i]
    /\ t \in termsSeen
    /\ \E j \in Nodes \ {i} : currentTerm[j] >= t
    /\ currentTerm' = [currentTerm EXCEPT ![i] = t]
    /\ votedFor' = [votedFor EXCEPT ![i] = None]
    /\ role' = [role EXCEPT ![i] = FollowerRole(i, Config(i))]
    /\ leader' = [leader EXCEPT ![i] = None]
    /\ Wrote(i)
    /\ UNCHANGED <<log, base, baseCfg, commitIndex, synced, msgs, heldVotes, heldAcks, hist, elected,
                   committed, acked, reads, termsSeen>>

-----------------------------------------------------------------------------------------
(* Replication.                                                                         *)

\* raft.rs::Raft::propose (replica.rs::Replica::propose stamps the batch): the leader
\* appends a producer batch of n offsets; its index is its last offset.
Propose(i, n) ==
    LET t == currentTerm[i]
        e == [idx |-> LastIdx(i) + n, term |-> t, kind |-> Data]
    IN
    /\ role[i] = "Leader"
    /\ log' = [log EXCEPT ![i] = Append(@, e)]
    /\ hist' = [hist EXCEPT ![t].entries = Append(@, e)]
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, base, baseCfg, commitIndex, synced, msgs,
                   heldVotes, heldAcks, elected, committed, acked, reads, termsSeen>>

\* membership.rs::Raft::propose_membership: one change at a time (the previous one is
\* committed), only after an entry of the leader's term is committed, a learner promoted
\* only once it has acknowledged everything committed, never removing the leader itself.
ProposeMembership(i, k) ==
    LET t == currentTerm[i]
        e == [idx |-> LastIdx(i) + 1, term |-> t, kind |-> k]
    IN
    /\ role[i] = "Leader"
    /\ LastChangeIdx(i) <= commitIndex[i]
    /\ TermAt(i, commitIndex[i]) = t
    /\ ValidChange(Config(i), k)
    /\ ~(k.type = "remove" /\ k.node = i)
    /\ k.type = "promote" =>
           \E m \in msgs : m.type = "Ack" /\ m.from = k.node /\ m.to = i /\ m.term = t
                           /\ m.matched.idx >= commitIndex[i]
    /\ log' = [log EXCEPT ![i] = Append(@, e)]
    /\ hist' = [hist EXCEPT ![t].entries = Append(@, e)]
    /\ role' = [role EXCEPT ![i] = "Leader"]
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, leader, base, baseCfg, commitIndex, synced, msgs,
                   heldVotes, heldAcks, elected, committed, acked, reads, termsSeen>>

\* The successful AppendResponse of i in term t, claiming i holds the leader's log through p.
AckMsg(i, t, p) == [type |-> "Ack", from |-> i, to |-> hist[t].leader, term |-> t, matched |-> p]

\* msgs with acknowledgement a sent. Only an acknowledgement's index matters to the leader,
\* so i's earlier ones to the same leader in the same term say less than the furthest: the
\* model lets the network lose them (fewer states).
WithAck(S, a) ==
    LET mine == {m \in S : m.type = "Ack" /\ m.from = a.from /\ m.to = a.to /\ m.term = a.term}
    IN IF \E m \in mine : m.matched.idx >= a.matched.idx THEN S ELSE (S \ mine) \cup {a}

\* A receive step's successful answer (replication.rs::handle_append, handle_log_start): with
\* CrashDetail it is held until the log is fsynced (SendAck); without, it goes at once and
\* the flush that released it is folded in. s: i's fsynced offset after the step's writes.
Answer(i, t, p, s) ==
    IF CrashDetail
    THEN /\ heldAcks' = [heldAcks EXCEPT ![i] = @ \cup {[term |-> t, matched |-> p]}]
         /\ synced' = [synced EXCEPT ![i] = s]
         /\ UNCHANGED msgs
    ELSE /\ msgs' = WithAck(msgs, AckMsg(i, t, p))
         /\ synced' = [synced EXCEPT ![i] = Max(s, p.idx)]
         /\ UNCHANGED heldAcks

\* replication.rs::Raft::handle_append (Raft §5.3's receiver), with raft.rs::handle_higher_term
\* and become_follower. The message is the leader of term t's AppendEntries whose `prev` is
\* its k-th position (0: the one before its log start), carrying its next n entries and
\* commit index c (any value it had: it only grows). Entries at or below i's log start are
\* skipped (committed, hence identical). On a mismatch i rejects (no change but term and
\* leader). Otherwise it skips the entries it holds, truncates a conflicting suffix (durable
\* at once: storage syncs the cut) and appends the rest, then commits up to min(c, the
\* message's last entry). The acknowledgement is held until the log is fsynced (SendAck).
\* (What a follower commits the leader of t committed first, c <= hist[t].commit, so the
\* ghost `committed` already has it.)
HandleAppendEntries(i, t, k, n, c) ==
    LET H == hist[t]
        prev0 == IF k = 0 THEN H.base ELSE Pos(H.entries[k])
        skip == prev0.idx < base[i].idx
        prev == IF skip THEN base[i] ELSE prev0
        ents == SelectSeq(SubSeq(H.entries, k + 1, k + n), LAMBDA e : e.idx > base[i].idx)
        ok == Matches(i, prev)
        \* the leading entries i already holds
        held == {j \in 0..Len(ents) : \A j2 \in 1..j : Matches(i, Pos(ents[j2]))}
        k0 == CHOOSE j \in held : \A j2 \in held : j2 <= j
        lastNew == IF Len(ents) = 0 THEN prev ELSE Pos(ents[Len(ents)])
        keepUpTo == IF k0 = 0 THEN prev.idx ELSE ents[k0].idx
        appends == k0 < Len(ents)
        truncates == appends /\ LastIdx(i) > keepUpTo
        newLog == IF appends
                  THEN SelectSeq(log[i], LAMBDA e : e.idx <= keepUpTo) \o SubSeq(ents, k0 + 1, Len(ents))
                  ELSE log[i]
        newCommit == Max(commitIndex[i], Min(c, lastNew.idx))
        later == t > currentTerm[i]
    IN
    /\ t \in DOMAIN hist
    /\ t >= currentTerm[i]
    /\ H.leader # i
    /\ k \in 0..Len(H.entries) /\ n \in 0..(Len(H.entries) - k)
    /\ c <= H.commit
    /\ currentTerm' = [currentTerm EXCEPT ![i] = t]
    /\ votedFor' = [votedFor EXCEPT ![i] = IF later THEN None ELSE @]
    /\ leader' = [leader EXCEPT ![i] = H.leader]
    /\ IF ok
       THEN /\ log' = [log EXCEPT ![i] = newLog]
            /\ commitIndex' = [commitIndex EXCEPT ![i] = newCommit]
            /\ role' = [role EXCEPT ![i] = FollowerRole(i, ConfigAfter(baseCfg[i], newLog))]
            /\ IF later \/ truncates THEN Wrote(i) ELSE Settled(i)
            /\ Answer(i, t, lastNew, IF truncates THEN Min(synced[i], keepUpTo) ELSE synced[i])
       ELSE /\ role' = [role EXCEPT ![i] = FollowerRole(i, Config(i))]
            /\ IF later THEN Wrote(i) ELSE Settled(i)
            /\ UNCHANGED <<log, synced, commitIndex, msgs, heldAcks>>
    /\ UNCHANGED <<base, baseCfg, heldVotes, hist, elected, committed, acked, reads, termsSeen>>

\* replication.rs::Raft::handle_log_start: the leader of term t (replication.rs::send_append,
\* when i needs entries below its log start) names its log start p, with the configuration
\* as of p. Its log start can be any committed position it held (retention and DeleteRecords
\* move it over the committed prefix only). If i does not hold p and has committed no
\* further, it drops its log and starts it after p (durable at once: storage reset and
\* raft.start.json); everything up to p is committed.
HandleLogStart(i, t, p) ==
    LET H == hist[t]
        hk == HistIndex(t, p)
        later == t > currentTerm[i]
        reset == ~Matches(i, p) /\ p.idx >= commitIndex[i]
        cfg == HistConfig(t, hk)
        \* what i acknowledges: p if it holds it, or its commit position, the later of them
        commitPos == [idx |-> commitIndex[i], term |-> TermAt(i, commitIndex[i])]
        matched == IF reset THEN p
                   ELSE IF Matches(i, p) THEN MaxPos(p, commitPos) ELSE commitPos
    IN
    /\ t \in DOMAIN hist
    /\ t >= currentTerm[i]
    /\ H.leader # i
    /\ hk >= 0
    /\ p.idx <= H.commit \/ hk = 0
    /\ currentTerm' = [currentTerm EXCEPT ![i] = t]
    /\ votedFor' = [votedFor EXCEPT ![i] = IF later THEN None ELSE @]
    /\ leader' = [leader EXCEPT ![i] = H.leader]
    /\ IF reset
       THEN /\ log' = [log EXCEPT ![i] = <<>>]
            /\ base' = [base EXCEPT ![i] = p]
            /\ baseCfg' = [baseCfg EXCEPT ![i] = cfg]
            /\ commitIndex' = [commitIndex EXCEPT ![i] = p.idx]
            /\ role' = [role EXCEPT ![i] = FollowerRole(i, cfg)]
            /\ Wrote(i)
            /\ Answer(i, t, matched, p.idx)
       ELSE /\ role' = [role EXCEPT ![i] = FollowerRole(i, Config(i))]
            /\ IF later THEN Wrote(i) ELSE Settled(i)
            /\ Answer(i, t, matched, synced[i])
            /\ UNCHANGED <<log, base, baseCfg, commitIndex>>
    /\ UNCHANGED <<heldVotes, hist, elected, committed, acked, reads, termsSeen>>

\* replica.rs::Replica::flushed releasing a held successful AppendResponse h
\* (trace.rs::TraceEvent::sent records it): the flush that released it made the log durable
\* at least through h.matched, which i must still hold (replica.rs::drop_held_beyond drops
\* answers a truncation made stale). It may go after i moved to a later term (the answer
\* keeps the term it was made in), and more than once (the network may duplicate it).
SendAck(i, h) ==
    /\ h \in heldAcks[i]
    /\ hist[h.term].leader # i
    /\ Matches(i, h.matched)
    /\ msgs' = WithAck(msgs, AckMsg(i, h.term, h.matched))
    /\ synced' = [synced EXCEPT ![i] = Max(@, h.matched.idx)]
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, heldVotes,
                   heldAcks, hist, elected, committed, acked, reads, termsSeen>>

\* replication.rs::Raft::maybe_commit (on an AppendResponse, replication.rs::handle_append_response,
\* or on Input::Persisted): the leader commits index N when a majority of the voters hold it,
\* counting itself only for what it has fsynced, and (Raft §5.4.2, Figure 8) only if N's
\* entry is of its own term: earlier entries commit with it. Acknowledgements count from the
\* moment they are sent (the leader may receive them at once). When the leader needs itself
\* to make the majority, the flush that reported Input::Persisted made it durable through N.
AdvanceCommit(i, N) ==
    LET t == currentTerm[i]
        ackers == {j \in Voters(i) \ {i} :
                      \E m \in msgs : m.type = "Ack" /\ m.to = i /\ m.from = j /\ m.term = t
                                      /\ m.matched.idx >= N}
        selfNeeded == ~IsQuorum(ackers, Voters(i))
    IN
    /\ role[i] = "Leader"
    /\ N > commitIndex[i]
    /\ N # base[i].idx /\ TermAt(i, N) # Absent
    /\ CommitRuleCurrentTerm => TermAt(i, N) = t
    /\ IsQuorum(ackers \cup {i}, Voters(i))
    /\ synced' = [synced EXCEPT ![i] = IF selfNeeded THEN Max(@, N) ELSE @]
    /\ commitIndex' = [commitIndex EXCEPT ![i] = N]
    /\ hist' = [hist EXCEPT ![t].commit = N]
    /\ committed' = committed \cup NewlyCommitted(i, commitIndex[i], N)
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, msgs, heldVotes, heldAcks,
                   elected, acked, reads, termsSeen>>

\* replica.rs::Replica::flushed -> Input::Persisted -> raft_log.rs::RaftLog::mark_persisted:
\* the flusher made the log durable through its end.
Persist(i) ==
    /\ synced[i] < LastIdx(i)
    /\ synced' = [synced EXCEPT ![i] = LastIdx(i)]
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, msgs,
                   heldVotes, heldAcks, hist, elected, committed, acked, reads, termsSeen>>

\* replica.rs::Replica::log_start_moved -> raft_log.rs::RaftLog::move_start: retention or
\* DeleteRecords removes the prefix through the k-th entry, which must be committed; the new
\* start and the configuration as of it go to raft.start.json.
MoveLogStart(i, k) ==
    /\ k \in DOMAIN log[i]
    /\ log[i][k].idx <= commitIndex[i]
    /\ base' = [base EXCEPT ![i] = Pos(log[i][k])]
    /\ baseCfg' = [baseCfg EXCEPT ![i] = ConfigAfter(@, SubSeq(log[i], 1, k))]
    /\ log' = [log EXCEPT ![i] = SubSeq(@, k + 1, Len(@))]
    /\ synced' = [synced EXCEPT ![i] = Max(@, log[i][k].idx)]
    /\ Settled(i)
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, commitIndex, msgs, heldVotes, heldAcks, hist,
                   elected, committed, acked, reads, termsSeen>>

\* replica.rs::Replica::open -> raft.rs::Raft::new with raft_log.rs::RaftLog::recovered: a crash
\* and restart. The hard state and log start are what was written; the log keeps its fsynced
\* prefix and perhaps some unsynced batches after it (a prefix of length len). With
\* CrashDetail, the crash may have interrupted the writes of the replica's last step
\* (`undo`). Recovery knows no commit beyond the log start, no leader, and sends nothing held.
RestartFrom(i, d, len) ==
    LET rlog == SubSeq(d.log, 1, len)
        cfg == ConfigAfter(d.baseCfg, rlog)
    IN
    /\ len \in 0..Len(d.log)
    /\ \A k \in 1..Len(d.log) : d.log[k].idx <= d.synced => k <= len
    /\ currentTerm' = [currentTerm EXCEPT ![i] = d.term]
    /\ votedFor' = [votedFor EXCEPT ![i] = d.vote]
    /\ log' = [log EXCEPT ![i] = rlog]
    /\ base' = [base EXCEPT ![i] = d.base]
    /\ baseCfg' = [baseCfg EXCEPT ![i] = d.baseCfg]
    /\ synced' = [synced EXCEPT ![i] = IF len = 0 THEN d.base.idx ELSE rlog[len].idx]
    /\ commitIndex' = [commitIndex EXCEPT ![i] = d.base.idx]
    /\ role' = [role EXCEPT ![i] = FollowerRole(i, cfg)]
    /\ leader' = [leader EXCEPT ![i] = None]
    /\ heldVotes' = [heldVotes EXCEPT ![i] = {}]
    /\ heldAcks' = [heldAcks EXCEPT ![i] = {}]
    /\ undo' = [undo EXCEPT ![i] = NoUndo]
    /\ UNCHANGED <<msgs, hist, elected, committed, acked, reads, termsSeen>>

Restart(i, len) == RestartFrom(i, Snapshot(i), len)
RestartUndone(i, len) == undo[i] # NoUndo /\ RestartFrom(i, undo[i], len)

-----------------------------------------------------------------------------------------
(* Kafka semantics (ghost observations; the broker's shell over the replica).           *)

\* handlers/produce.rs::wait_for_high_watermark: acks=all is answered when the high
\* watermark (commit index + 1, partition.rs::Partition::publish) passes the batch while
\* the leader epoch is still the one the batch was appended in.
AckProduce(i, k) ==
    /\ k \in DOMAIN log[i]
    /\ log[i][k].kind = Data
    /\ log[i][k].term = currentTerm[i]
    /\ log[i][k].idx <= commitIndex[i]
    /\ acked' = acked \cup {Pos(log[i][k])}
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
                   msgs, heldVotes, heldAcks, undo, hist, elected, committed, reads, termsSeen>>

\* handlers/fetch.rs::read_partition: the leader serves records only below its high watermark.
Fetch(i, k) ==
    /\ role[i] = "Leader"
    /\ k \in DOMAIN log[i]
    /\ log[i][k].kind = Data
    /\ log[i][k].idx <= commitIndex[i]
    /\ reads' = reads \cup {Pos(log[i][k])}
    /\ UNCHANGED <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
                   msgs, heldVotes, heldAcks, undo, hist, elected, committed, acked, termsSeen>>

-----------------------------------------------------------------------------------------
(* The next-state relation. BatchSizes (offsets per producer batch), Changes (the         *)
(* membership changes leaders may propose) and Features (which optional behaviours are   *)
(* on: "stepdown", "learnterm", "crash", "logstart", "kafka", "transfer", "membership")   *)
(* are parameters                                                                          *)
(* of a model,                                                                            *)
(* so small models can look at one concern at a time (MCPartitionReplication.tla).       *)

NextWith(BatchSizes, Changes, Features) ==
    \/ \E i \in Nodes : Timeout(i)
    \/ \E i, j \in Nodes : HandlePreVote(j, i)
    \/ \E i \in Nodes : BecomeCandidate(i)
    \/ \E i \in Nodes : TimeoutNoPreVote(i)
    \/ \E j \in Nodes, m \in msgs : HandleVoteRequest(j, m)
    \/ \E j \in Nodes : \E h \in heldVotes[j] : SendVote(j, h.cand, h.term)
    \/ \E i \in Nodes : BecomeLeader(i)
    \/ \E i \in Nodes, n \in BatchSizes : Propose(i, n)
    \/ \E i \in Nodes, t \in DOMAIN hist :
          \E k \in 0..Len(hist[t].entries) :
             \E n \in 0..(Len(hist[t].entries) - k) : HandleAppendEntries(i, t, k, n, hist[t].commit)
    \/ \E i \in Nodes : \E h \in heldAcks[i] : SendAck(i, h)
    \/ \E i \in Nodes : \E e \in Range(log[i]) : AdvanceCommit(i, e.idx)
    \/ "stepdown" \in Features /\
          \/ \E i \in Nodes : LoseElection(i)
          \/ \E i \in Nodes : CheckQuorumStepDown(i)
    \/ "learnterm" \in Features /\ \E i \in Nodes, t \in termsSeen : LearnTerm(i, t)
    \/ "transfer" \in Features /\ \E i \in Nodes : TransferCampaign(i)
    \/ "membership" \in Features /\ \E i \in Nodes, k \in Changes : ProposeMembership(i, k)
    \/ "logstart" \in Features /\
          \/ \E i \in Nodes : \E k \in DOMAIN log[i] : MoveLogStart(i, k)
          \/ \E i \in Nodes, t \in DOMAIN hist :
                \E p \in {hist[t].base} \cup {Pos(e) : e \in Range(hist[t].entries)} : HandleLogStart(i, t, p)
    \/ "crash" \in Features /\
          \/ \E i \in Nodes : Persist(i)
          \/ \E i \in Nodes : \E len \in 0..Len(log[i]) : Restart(i, len)
          \/ \E i \in Nodes : undo[i] # NoUndo /\ \E len \in 0..Len(undo[i].log) : RestartUndone(i, len)
    \/ "kafka" \in Features /\
          \/ \E i \in Nodes : \E k \in DOMAIN log[i] : AckProduce(i, k)
          \/ \E i \in Nodes : \E k \in DOMAIN log[i] : Fetch(i, k)

AllFeatures == {"stepdown", "learnterm", "crash", "logstart", "kafka", "transfer", "membership"}
Next == NextWith({1, 2}, {}, AllFeatures \ {"membership"})
Spec == Init /\ [][Next]_vars

-----------------------------------------------------------------------------------------
(* Invariants.                                                                          *)

\* i holds c: in its log, or below its log start (removed from the prefix only once committed).
Holds(i, c) == c.idx <= base[i].idx \/ Matches(i, c)
DurablyHolds(i, c) == c.idx <= base[i].idx \/ (Matches(i, c) /\ c.idx <= synced[i])

\* Raft §5.2, Figure 3: at most one leader per term.
ElectionSafety == \A a, b \in elected : a.term = b.term => a.node = b.node

\* Raft §5.3, Figure 3: if two logs hold an entry with the same index and term, they hold the
\* same entries up to it (above both log starts).
LogMatching ==
    \A i, j \in Nodes :
        LET common == {Pos(e) : e \in Range(log[i])} \cap {Pos(e) : e \in Range(log[j])}
        IN common # {} =>
           LET top == CHOOSE p \in common : \A q \in common : q.idx <= p.idx
               floor == Max(base[i].idx, base[j].idx)
               below(s) == SelectSeq(s, LAMBDA e : floor < e.idx /\ e.idx <= top.idx)
           IN below(log[i]) = below(log[j])

\* Raft §5.4, Figure 3: a leader of a term after the one an entry was committed in holds it.
LeaderCompleteness ==
    \A c \in committed : \A i \in Nodes :
        (role[i] = "Leader" /\ currentTerm[i] > c.at) => Holds(i, c)

\* No committed entry is ever lost: a majority of the voters it was committed by (the
\* leader's configuration then, which single-server changes make overlap every later one,
\* thesis §4.1) hold it durably ever after: a crash cannot take it, and no truncation or log
\* reset removes it. (The simulator's CommittedNeverLost, src/checker/src/raft.rs, checks
\* the same from the other side: no replica removes a committed entry from its log.)
CommittedNeverLost ==
    \A c \in committed : IsQuorum({i \in Nodes : DurablyHolds(i, c)}, c.voters)

\* Kafka: consumers only ever read committed records.
ReadsBelowHighWatermark == \A r \in reads : \E c \in committed : Pos(c) = r

\* Kafka acks=all: an acknowledged batch is committed and held by every leader of its epoch
\* or a later one.
AckedNeverLost ==
    \A a \in acked :
        /\ \E c \in committed : Pos(c) = a
        /\ \A i \in Nodes : (role[i] = "Leader" /\ currentTerm[i] >= a.term) => Holds(i, a)

\* Within one incarnation a replica's commit index (high watermark) never decreases
\* (an action property: checked on every step).
RestartStep(i) == \/ \E len \in 0..Len(log[i]) : Restart(i, len)
                  \/ undo[i] # NoUndo /\ \E len \in 0..Len(undo[i].log) : RestartUndone(i, len)
HighWatermarkMonotonic ==
    [][\A i \in Nodes : commitIndex'[i] >= commitIndex[i] \/ RestartStep(i)]_vars

\* States that differ only in messages nobody can act on any more behave alike: the view
\* TLC fingerprints forgets them (requests to replicas all past their term, answers and
\* acknowledgements to replicas past their term, leaders' histories of terms all replicas
\* left), so model checking does not count them apart.
LiveMsg(m) ==
    IF m.type = "Vote" THEN \E j \in m.to : currentTerm[j] <= m.term
    ELSE IF m.type = "Ack" THEN m.term >= currentTerm[m.to] \/ m.term >= currentTerm[m.from]
    ELSE m.term >= currentTerm[m.to]
LiveHist == [t \in {t \in DOMAIN hist : \E i \in Nodes : currentTerm[i] <= t} |-> hist[t]]
View == <<currentTerm, votedFor, role, leader, log, base, baseCfg, commitIndex, synced,
          {m \in msgs : LiveMsg(m)}, heldVotes, heldAcks, undo, LiveHist, elected,
          committed, acked, reads, termsSeen>>

\* Type sanity, useful when editing the spec.
TypeOK ==
    /\ \A i \in Nodes : role[i] \in {"Follower", "PreCandidate", "Candidate", "Leader", "Learner"}
    /\ \A i \in Nodes : commitIndex[i] <= LastIdx(i) /\ base[i].idx <= commitIndex[i]
    /\ \A i \in Nodes : base[i].idx <= synced[i] /\ synced[i] <= LastIdx(i)
    /\ \A i \in Nodes : \A k \in 1..Len(log[i]) :
          log[i][k].idx > (IF k = 1 THEN base[i].idx ELSE log[i][k - 1].idx)
          /\ log[i][k].term >= (IF k = 1 THEN base[i].term ELSE log[i][k - 1].term)

=========================================================================================
