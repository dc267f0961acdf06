-------------------------- MODULE GroupCoordinator --------------------------
(***************************************************************************)
(* Sluice's consumer group coordinator: the classic group protocol        *)
(* (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit), as the    *)
(* sans-IO core src/group/src/ implements it, with the durability of the  *)
(* group's records in its __consumer_offsets partition and coordinator    *)
(* failover as src/broker/src/consumer_groups/ (slot.rs, load.rs,         *)
(* upkeep.rs) drives it.                                                  *)
(*                                                                         *)
(* One group.  Its coordinator holds the group in memory (grp, offsets)    *)
(* and the writes it emitted that are not yet completed (queue, FIFO in   *)
(* log order: slot.rs complete_writes).  The partition's log holds every  *)
(* record written; its first hw records are durable (the high watermark). *)
(* Failover drops the coordinator's memory and its waiting requests       *)
(* (answered NOT_COORDINATOR), keeps a prefix of the log that contains    *)
(* every durable record (a write not yet durable may be lost or survive), *)
(* and loads a new coordinator from that log once all of it is durable    *)
(* (load.rs: the load waits until the high watermark covers the log end). *)
(*                                                                         *)
(* Clients behave as Kafka's Java consumer does (and as the simulator's   *)
(* sim/src/group_workload.rs member loop): one JoinGroup/SyncGroup/       *)
(* LeaveGroup in flight at a time, SyncGroup sent at once after a         *)
(* JoinGroup answer (the leader's carrying a range assignment of the      *)
(* member list it was given), commits only while Stable and only for     *)
(* partitions it owns, at most one commit in flight.  Requests wait in    *)
(* the network for any time (so they may be processed after the group,   *)
(* or the coordinator, moved on: zombies), and survive failover.  Answers *)
(* reach the client at once.                                              *)
(*                                                                         *)
(* Abstractions: time is not modelled, every timeout (session, rebalance, *)
(* pending-sync, KIP-394 pending member id) may fire at any moment it is  *)
(* enabled in the code; one protocol ("range"), so protocol checks always *)
(* pass; no group.max.size; no OffsetDelete, DeleteGroups (Dead) or       *)
(* offset retention; member ids are client-owned numbers: the k-th id     *)
(* handed to client c is (k-1)*NumClients + c (UUIDs in Sluice); the      *)
(* leader picked when a generation forms is the smallest joined id (Rust: *)
(* the earliest joined_seq; loading: the smallest id in the record when   *)
(* the stored leader is gone).  Commit k commits offset k, so each        *)
(* commit's value is unique, as the simulator makes commit metadata       *)
(* unique.                                                                 *)
(*                                                                         *)
(* KIP-848 consumer groups (member epochs, reconciliation) are a second    *)
(* specification in this module, ConsumerSpec, at the end.                *)
(*                                                                         *)
(* A "\* Code:" line above each action (and each operator the actions     *)
(* compose) names the Rust function that implements it (file::function).  *)
(*                                                                         *)
(* Invariants: GroupWellFormed (group.rs Group::check_invariants),        *)
(* GenerationMonotonic (+ the action property GenerationMonotonicStep),   *)
(* FencedCommitsRejected, CommittedOffsetDurable (the simulator's         *)
(* GroupOffsetsDurable), AckedCommitsDurable, AssignmentsOnlyToMembers,   *)
(* OneLeaderPerGeneration; KIP-848: ConsumerWellFormed,                    *)
(* NoPartitionTwoOwners, ConsumerEpochMonotonic.  Models and bounds:       *)
(* MCGroupCoordinator.tla and the MCGroupCoordinator*.cfg files.          *)
(***************************************************************************)
EXTENDS Naturals, Integers, Sequences, FiniteSets, TLC

CONSTANTS
    NumClients,        \* consumer processes 1..NumClients
    StaticClients,     \* those with a group.instance.id (KIP-345), a subset of 1..NumClients
    NumPartitions,     \* partitions 1..NumPartitions of the subscribed topic
    MaxIncarnations,   \* member ids one client may be handed (bounds KIP-394 fresh ids)
    MaxCommits,        \* OffsetCommit requests 1..MaxCommits
    MaxFailovers,      \* coordinator failovers
    MaxFaults,         \* disruptions: failovers, timeouts that remove members or end a
                       \* rebalance early, consumer restarts, leaves and rejoins
    InitialDelay,      \* group.initial.rebalance.delay.ms > 0 (KIP-134)
    AckBeforeDurable   \* MUTATION: a write completes before it is durable (a commit is
                       \* applied and answered OK, SyncGroups and heartbeats answered), as
                       \* slot.rs complete_writes does under the simulator's
                       \* Defect::GroupCommitBeforeDurable.  FALSE is Sluice.

Clients    == 1..NumClients
Partitions == 1..NumPartitions
Ids        == 1..(NumClients * MaxIncarnations)
CommitIds  == 1..MaxCommits
IdOf(c, k) == (k - 1) * NumClients + c
Owner(m)   == ((m - 1) % NumClients) + 1
IsStatic(m) == Owner(m) \in StaticClients

Min(S) == CHOOSE x \in S : \A y \in S : x <= y
Max(S) == CHOOSE x \in S : \A y \in S : x >= y

(* Kafka's RangeAssignor for one topic: members sorted, the first          *)
(* (NumPartitions % n) get one partition more.                             *)
RangeParts(view, m) ==
    LET n     == Cardinality(view)
        r     == Cardinality({x \in view : x < m})
        q     == NumPartitions \div n
        extra == NumPartitions % n
        start == r * q + (IF r < extra THEN r ELSE extra)
        len   == q + (IF r < extra THEN 1 ELSE 0)
    IN  {p \in Partitions : start < p /\ p <= start + len}

(* A member's assignment: the generation and the leader (with the member   *)
(* list it assigned) whose SyncGroup carried it, and the partitions.       *)
NoAsg == [gen |-> -1, ldr |-> 0, view |-> {}, parts |-> {}]
Asg(g, l, v, m) == [gen |-> g, ldr |-> l, view |-> v, parts |-> RangeParts(v, m)]

VARIABLES
    grp,        \* the coordinator's in-memory group (group.rs Group)
    offsets,    \* the coordinator's committed offsets: partition -> commit id (0: none)
    queue,      \* writes emitted and not completed, in log order (Coordinator.writes)
    log,        \* the group's records in __consumer_offsets
    hw,         \* high watermark: log[1..hw] is durable
    net,        \* requests sent and not yet processed
    cPhase,     \* client state: "idle" (no member id), "joining", "syncing", "stable", "dead"
    cId,        \* the member id the client knows (0: none)
    cTok,       \* a static client's fresh JoinGroup waits under this new id (0: none)
    cGen,       \* the generation the client is in (-1: none)
    cAsg,       \* the client's assignment (from its SyncGroup answer)
    cNext,      \* the client's next incarnation (member id to hand out)
    commits,    \* OffsetCommit k: who sent it, for what, and its outcome
    failovers,  \* failovers so far
    faults,     \* disruptions so far (bounds the model, see MaxFaults)
    handed,     \* ghost: [gen, ldr, view] of every assignment a SyncGroup handed out
    \* KIP-848 consumer groups (ConsumerSpec, at the end of the module):
    cg,         \* the coordinator's consumer group (consumer_group.rs ConsumerGroup)
    cEpoch,     \* the member epoch a consumer knows
    cOwned      \* the partitions a consumer owns

coordVars  == <<grp, offsets, queue>>
logVars    == <<log, hw>>
clientVars == <<cPhase, cId, cTok, cGen, cAsg, cNext>>
vars == <<grp, offsets, queue, log, hw, net, cPhase, cId, cTok, cGen, cAsg, cNext,
          commits, failovers, faults, handed, cg, cEpoch, cOwned>>
classicOnly  == <<grp, offsets, cTok, cGen, cAsg, commits, handed>>
consumerOnly == <<cg, cEpoch, cOwned>>

States == {"Empty", "PreparingRebalance", "CompletingRebalance", "Stable"}
AsgVals == {NoAsg} \cup [gen : Nat, ldr : Ids, view : SUBSET Ids, parts : SUBSET Partitions]
GroupVals == [st : States, gen : Nat, leader : Ids \cup {0}, members : SUBSET Ids,
              wJoin : SUBSET Ids, wSync : SUBSET Ids, pSync : SUBSET Ids, pIds : SUBSET Ids,
              asg : [Ids -> AsgVals], aWrite : BOOLEAN, delay : BOOLEAN]
NoRec == [type |-> "none", gen |-> 0, ldr |-> 0, members |-> {}, asg |-> [m \in Ids |-> NoAsg],
          p |-> 0, cid |-> 0]

(***************************************************************************)
(* The in-memory group (group.rs Group): st (state), gen (generation_id),  *)
(* leader (leader_id), members, wJoin (members whose JoinGroup waits:     *)
(* waiting_join), wSync (waiting_sync), pSync (pending_sync), pIds        *)
(* (pending_members, KIP-394), asg (each member's assignment), aWrite     *)
(* (assignment_write is Some), delay (initial_join_limit_ms is Some,      *)
(* KIP-134).                                                               *)
(***************************************************************************)
EmptyGroup == [st |-> "Empty", gen |-> 0, leader |-> 0, members |-> {}, wJoin |-> {},
               wSync |-> {}, pSync |-> {}, pIds |-> {}, asg |-> [m \in Ids |-> NoAsg],
               aWrite |-> FALSE, delay |-> FALSE]

(* consumer_group.rs ConsumerGroup (KIP-848): the group epoch (= the      *)
(* assignment epoch: targets are recomputed at once) and each member's     *)
(* member epoch, previous epoch, reconciliation state, assigned partitions *)
(* and partitions pending revocation.                                      *)
NoMember == [in |-> FALSE, epoch |-> -1, prev |-> -1, st |-> "none", assigned |-> {},
             pending |-> {}]
EmptyConsumerGroup == [epoch |-> 0, mem |-> [m \in Ids |-> NoMember]]

(* group.rs Group::is_fenced: a static member whose instance id now maps   *)
(* to another member id (KIP-345: FENCED_INSTANCE_ID).                     *)
\* Code: src/group/src/group.rs::Group::is_fenced
Fenced(g, m) == IsStatic(m) /\ \E m2 \in g.members : Owner(m2) = Owner(m) /\ m2 # m

Clear(a, ids) == [m \in Ids |-> IF m \in ids THEN NoAsg ELSE a[m]]

(* records.rs: the group's record (OffsetsRecord::Group) and an offset     *)
(* record (OffsetsRecord::Offset).                                         *)
GroupRec(g) == [type |-> "group", gen |-> g.gen, ldr |-> g.leader, members |-> g.members,
                asg |-> g.asg, p |-> 0, cid |-> 0]
OffsetRec(p, k) == [NoRec EXCEPT !.type = "offset", !.p = p, !.cid = k]

(* A write and what its completion does (coordinator.rs PendingWrite).     *)
Write(rec, kind, gen, id, ldr) == [rec |-> rec, kind |-> kind, gen |-> gen, id |-> id,
                                   ldr |-> ldr, cid |-> rec.cid, pos |-> 0]

(* Answers, addressed by member id (the coordinator's token of the member's *)
(* waiting request).                                                       *)
Answer(m, kind, code, g, l, v, a) ==
    [to |-> m, kind |-> kind, code |-> code, gen |-> g, ldr |-> l, view |-> v, asg |-> a]
JoinOK(m, g, l, v) == Answer(m, "join", "NONE", g, l, v, NoAsg)
JoinErr(m, e)      == Answer(m, "join", e, -1, 0, {}, NoAsg)
SyncOK(m, a)       == Answer(m, "sync", "NONE", a.gen, 0, {}, a)
SyncErr(m, e)      == Answer(m, "sync", e, -1, 0, {}, NoAsg)

(* Requests. *)
Req(t, c, m, g, v, ch, k) ==
    [type |-> t, client |-> c, id |-> m, gen |-> g, view |-> v, changed |-> ch, cid |-> k]
JoinReq(c, m, ch)    == Req("join", c, m, -1, {}, ch, 0)
SyncReq(c, m, g, v)  == Req("sync", c, m, g, v, FALSE, 0)
LeaveReq(c, m)       == Req("leave", c, m, -1, {}, FALSE, 0)
CommitReq(c, m, g, k) == Req("commit", c, m, g, {}, FALSE, k)
NoReq == Req("none", 0, 0, -1, {}, FALSE, 0)

(* A disruption, counted against MaxFaults. *)
Fault == faults < MaxFaults /\ faults' = faults + 1

(***************************************************************************)
(* The coordinator's steps compose (a leave removes a member, which starts *)
(* a rebalance, which may complete at once...), as the Rust methods call   *)
(* one another.  Each is an operator from a group to a result: the new     *)
(* group, the answers it sends, and the writes it emits.                   *)
(***************************************************************************)
Result(g, out, ws) == [g |-> g, out |-> out, writes |-> ws]
Nothing(g) == Result(g, {}, <<>>)
AddOut(r, out) == [r EXCEPT !.out = @ \cup out]

(* membership.rs Coordinator::complete_join (Kafka's onCompleteJoin):      *)
(* dynamic members that did not rejoin are removed, static ones stay; the  *)
(* next generation forms with a leader (the old one if it rejoined) and    *)
(* every waiting JoinGroup is answered, the leader's with the member list; *)
(* an emptied group writes its record.  Nothing is written otherwise: the  *)
(* generation becomes durable with the leader's assignment (SyncGroup).    *)
\* Code: src/group/src/membership.rs::Coordinator::complete_join
CompleteJoin(g) ==
    LET absent == {m \in g.members \ g.wJoin : ~IsStatic(m)}
        mem    == g.members \ absent
        joined == mem \cap g.wJoin
        g1     == [g EXCEPT !.members = mem, !.asg = Clear(g.asg, absent), !.delay = FALSE]
        ldr    == IF g.leader \in joined THEN g.leader ELSE Min(joined)
    IN  IF joined = {} /\ mem # {}
        THEN Nothing(g1)   \* only absent static members: wait another rebalance timeout
        ELSE IF mem = {}
        THEN LET g2 == [g1 EXCEPT !.gen = g.gen + 1, !.st = "Empty", !.leader = 0,
                                  !.pSync = {}, !.wJoin = {}]
             IN  Result(g2, {}, <<Write(GroupRec(g2), "none", g2.gen, 0, 0)>>)
        ELSE LET g2 == [g1 EXCEPT !.gen = g.gen + 1, !.st = "CompletingRebalance",
                                  !.leader = ldr, !.pSync = mem, !.wJoin = {}]
             IN  Result(g2, {JoinOK(m, g2.gen, ldr, IF m = ldr THEN mem ELSE {}) : m \in joined},
                        <<>>)

(* membership.rs Coordinator::try_complete_join (Group::all_members_joined) *)
\* Code: src/group/src/membership.rs::Coordinator::try_complete_join
TryCompleteJoin(g) ==
    IF g.st = "PreparingRebalance" /\ ~g.delay /\ g.pIds = {} /\ g.members \subseteq g.wJoin
    THEN CompleteJoin(g)
    ELSE Nothing(g)

(* membership.rs Coordinator::prepare_rebalance: waiting SyncGroups fail   *)
(* with REBALANCE_IN_PROGRESS, assignments are dropped, a pending          *)
(* assignment write is superseded; an empty group's first rebalance waits  *)
(* the initial delay (KIP-134).                                            *)
\* Code: src/group/src/membership.rs::Coordinator::prepare_rebalance
PrepareRebalance(g) ==
    LET ok == Assert(g.st # "PreparingRebalance", "prepare_rebalance: already rebalancing")
        failed == {SyncErr(m, "REBALANCE_IN_PROGRESS") : m \in g.wSync}
        g1 == [g EXCEPT !.wSync = {}, !.asg = [m \in Ids |-> NoAsg], !.aWrite = FALSE,
                        !.pSync = {}, !.delay = (g.st = "Empty" /\ InitialDelay),
                        !.st = "PreparingRebalance"]
    IN  IF ok THEN AddOut(TryCompleteJoin(g1), failed) ELSE Nothing(g)

(* membership.rs Coordinator::remove_members: their waiting requests are   *)
(* answered UNKNOWN_MEMBER_ID; a formed generation rebalances.             *)
\* Code: src/group/src/membership.rs::Coordinator::remove_members
RemoveMembers(g, ids) ==
    LET ok  == Assert(g.st # "Empty" /\ ids \subseteq g.members, "remove_members: not members")
        out == {JoinErr(m, "UNKNOWN_MEMBER_ID") : m \in ids \cap g.wJoin}
               \cup {SyncErr(m, "UNKNOWN_MEMBER_ID") : m \in ids \cap g.wSync}
        g1  == [g EXCEPT !.members = @ \ ids, !.pSync = @ \ ids, !.wJoin = @ \ ids,
                         !.wSync = @ \ ids, !.asg = Clear(@, ids)]
    IN  IF ~ok THEN Nothing(g)
        ELSE AddOut(IF g.st \in {"CompletingRebalance", "Stable"} THEN PrepareRebalance(g1)
                    ELSE TryCompleteJoin(g1), out)

(* membership.rs Coordinator::add_member                                   *)
\* Code: src/group/src/membership.rs::Coordinator::add_member
AddMember(g, m) ==
    LET g1 == [g EXCEPT !.members = @ \cup {m}, !.wJoin = @ \cup {m}, !.asg[m] = NoAsg]
    IN  IF g.st = "PreparingRebalance" THEN TryCompleteJoin(g1) ELSE PrepareRebalance(g1)

(* membership.rs Coordinator::replace_static_member (KIP-345): the new id  *)
(* takes over the instance, the old one's waiting request is fenced; in a  *)
(* Stable group the new id is written and the member answered (with the    *)
(* current generation, not as leader) once that is durable.                *)
\* Code: src/group/src/membership.rs::Coordinator::replace_static_member
ReplaceStatic(g, old, new) ==
    LET fenced == IF old \in g.wSync THEN {SyncErr(old, "FENCED_INSTANCE_ID")}
                  ELSE IF old \in g.wJoin THEN {JoinErr(old, "FENCED_INSTANCE_ID")} ELSE {}
        a1 == Clear(g.asg, {old})
        g1 == [g EXCEPT !.members = (@ \ {old}) \cup {new},
                        !.asg = [a1 EXCEPT ![new] = g.asg[old]],
                        !.leader = IF @ = old THEN new ELSE @,
                        !.pSync = IF old \in @ THEN (@ \ {old}) \cup {new} ELSE @,
                        !.wJoin = (@ \ {old}) \cup {new}, !.wSync = @ \ {old}]
    IN  CASE g.st = "Stable" ->
               Result(g1, fenced, <<Write(GroupRec(g1), "static", g1.gen, new, g.leader)>>)
          [] g.st = "PreparingRebalance" -> AddOut(TryCompleteJoin(g1), fenced)
          [] OTHER -> AddOut(PrepareRebalance(g1), fenced)

(* coordinator.rs Coordinator::replay + loaded (group_from_record): the    *)
(* last group record gives generation, members, leader and assignments; a  *)
(* group with members is Stable; the offsets are the last offset record of  *)
(* each partition.                                                          *)
LastGroupIndex(l) ==
    LET is == {i \in 1..Len(l) : l[i].type = "group"} IN IF is = {} THEN 0 ELSE Max(is)
\* Code: src/group/src/coordinator.rs::Coordinator::replay, ::loaded, group_from_record
Load(l) ==
    LET i == LastGroupIndex(l)
    IN  IF i = 0 THEN EmptyGroup
        ELSE LET rec == l[i]
             IN  [EmptyGroup EXCEPT
                    !.st = IF rec.members = {} THEN "Empty" ELSE "Stable",
                    !.gen = rec.gen, !.members = rec.members, !.asg = rec.asg,
                    !.leader = IF rec.members = {} THEN 0
                               ELSE IF rec.ldr \in rec.members THEN rec.ldr
                               ELSE Min(rec.members)]
LastOffset(l, p) ==
    LET is == {i \in 1..Len(l) : l[i].type = "offset" /\ l[i].p = p}
    IN  IF is = {} THEN 0 ELSE l[Max(is)].cid
LoadOffsets(l) == [p \in Partitions |-> LastOffset(l, p)]

(***************************************************************************)
(* Durable state, as a new coordinator would load it.                      *)
(***************************************************************************)
Durable == SubSeq(log, 1, hw)
DurableGen == LET i == LastGroupIndex(Durable) IN IF i = 0 THEN 0 ELSE Durable[i].gen
DurableMembers == LET i == LastGroupIndex(Durable) IN IF i = 0 THEN {} ELSE Durable[i].members
(* Position of commit k's record in the log (0: not there). *)
Pos(k) == LET is == {i \in 1..Len(log) : log[i].type = "offset" /\ log[i].cid = k}
          IN  IF is = {} THEN 0 ELSE Min(is)


(***************************************************************************)
(* Clients receive answers (Kafka's Java consumer, AbstractCoordinator's   *)
(* JoinGroup and SyncGroup response handlers; sim/src/group_workload.rs).  *)
(* ids0 and tok0 are the clients' ids after the step itself.               *)
(***************************************************************************)
Accepts(c, a, ids0, tok0) ==
    /\ \/ ids0[c] # 0 /\ a.to = ids0[c]
       \/ ids0[c] = 0 /\ tok0[c] # 0 /\ a.to = tok0[c]
    /\ \/ a.kind = "join" /\ cPhase[c] = "joining"
       \/ a.kind = "sync" /\ cPhase[c] = "syncing"

Reaction(ph, m, g, a, req) == [ph |-> ph, id |-> m, gen |-> g, asg |-> a, req |-> req]
React(c, a, ids0) ==
    CASE a.kind = "join" /\ a.code = "NONE" ->
            \* JoinGroup answered: SyncGroup at once, the leader's with its assignment
            \* of the member list it was given.
            Reaction("syncing", a.to, a.gen, NoAsg,
                     SyncReq(c, a.to, a.gen, IF a.ldr = a.to THEN a.view ELSE {}))
      [] a.kind = "sync" /\ a.code = "NONE" ->
            Reaction("stable", ids0[c], a.gen, a.asg, NoReq)
      [] a.code = "UNKNOWN_MEMBER_ID" ->
            Reaction("idle", 0, -1, NoAsg, NoReq)           \* rejoins as a new member
      [] a.code = "FENCED_INSTANCE_ID" ->
            Reaction("dead", 0, -1, NoAsg, NoReq)           \* fatal for the consumer
      [] OTHER ->  \* REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, NOT_COORDINATOR: rejoin
            Reaction("joining", ids0[c], -1, NoAsg, JoinReq(c, ids0[c], FALSE))

Deliver(out, net0, ids0, tok0) ==
    LET ans(c) == {a \in out : Accepts(c, a, ids0, tok0)}
        R(c)   == React(c, CHOOSE a \in ans(c) : TRUE, ids0)
        got    == {c \in Clients : ans(c) # {}}
    IN  /\ cPhase' = [c \in Clients |-> IF c \in got THEN R(c).ph ELSE cPhase[c]]
        /\ cId'    = [c \in Clients |-> IF c \in got THEN R(c).id ELSE ids0[c]]
        /\ cTok'   = [c \in Clients |-> IF c \in got THEN 0 ELSE tok0[c]]
        /\ cGen'   = [c \in Clients |-> IF c \in got THEN R(c).gen ELSE cGen[c]]
        /\ cAsg'   = [c \in Clients |-> IF c \in got THEN R(c).asg ELSE cAsg[c]]
        /\ net'    = net0 \cup {R(c).req : c \in {c2 \in got : R(c2).req # NoReq}}
        /\ handed' = handed \cup {[gen |-> a.asg.gen, ldr |-> a.asg.ldr, view |-> a.asg.view] :
                                  a \in {b \in out : b.kind = "sync" /\ b.code = "NONE"}}

(* Applies a coordinator step's result: the group, its writes appended to  *)
(* the log in order (slot.rs Shell::run appends a step's writes under the  *)
(* slot's lock) and queued for completion, its answers delivered.          *)
Apply(r, q0, net0, ids0, tok0) ==
    /\ grp' = r.g
    /\ log' = log \o [i \in 1..Len(r.writes) |-> r.writes[i].rec]
    /\ queue' = q0 \o [i \in 1..Len(r.writes) |-> [r.writes[i] EXCEPT !.pos = Len(log) + i]]
    /\ Deliver(r.out, net0, ids0, tok0)

InFlightCommit(c) ==
    \E k \in CommitIds : commits[k].client = c /\ commits[k].st \in {"sent", "written"}

(***************************************************************************)
(* What FencedCommitsRejected requires of a commit when it is accepted     *)
(* (validated and written):                                                *)
(* - it is not from a generation older than the durable one (no zombie of  *)
(*   an older generation; every generation a SyncGroup was answered in is  *)
(*   durable, see GenerationMonotonic);                                    *)
(* - if it is of the durable generation, its member is in that             *)
(*   generation's durable record (no unknown member);                      *)
(* - its member id was not replaced by a durable static takeover (KIP-345).*)
(***************************************************************************)
FenceOK(m, g) ==
    /\ g >= DurableGen
    /\ g = DurableGen => m \in DurableMembers
    /\ ~(IsStatic(m) /\ \E m2 \in DurableMembers : Owner(m2) = Owner(m) /\ m2 > m)

-----------------------------------------------------------------------------
Init ==
    /\ grp = EmptyGroup
    /\ offsets = [p \in Partitions |-> 0]
    /\ queue = <<>>
    /\ log = <<>>
    /\ hw = 0
    /\ net = {}
    /\ cPhase = [c \in Clients |-> "idle"]
    /\ cId = [c \in Clients |-> 0]
    /\ cTok = [c \in Clients |-> 0]
    /\ cGen = [c \in Clients |-> -1]
    /\ cAsg = [c \in Clients |-> NoAsg]
    /\ cNext = [c \in Clients |-> 1]
    /\ commits = [k \in CommitIds |-> [client |-> 0, id |-> 0, gen |-> -1, p |-> 0,
                                       st |-> "unsent", fenceOK |-> TRUE]]
    /\ failovers = 0
    /\ faults = 0
    /\ handed = {}
    /\ cg = EmptyConsumerGroup
    /\ cEpoch = [c \in Clients |-> -1]
    /\ cOwned = [c \in Clients |-> {}]

(***************************************************************************)
(* Coordinator: requests (coordinator.rs Coordinator::step with            *)
(* Input::Request; slot.rs GroupCoordinators::submit).                     *)
(***************************************************************************)

(* membership.rs Coordinator::join -> join_unknown_member: a dynamic       *)
(* member is handed an id with MEMBER_ID_REQUIRED and joins again with it  *)
(* (KIP-394); a static member (KIP-345) joins at once, taking over its     *)
(* instance id if the group has it (replace_static_member), else as a new  *)
(* member (add_member).                                                    *)
\* Code: src/group/src/membership.rs::Coordinator::join_unknown_member
HandleJoinNew(r) ==
    LET c       == r.client
        n       == IdOf(c, cNext[c])
        waiting == cPhase[c] = "joining" /\ cId[c] = 0   \* else its process restarted
    IN  /\ r.type = "join" /\ r.id = 0
        /\ cNext[c] <= MaxIncarnations
        /\ cNext' = [cNext EXCEPT ![c] = @ + 1]
        /\ IF c \in StaticClients
           THEN LET known == {m \in grp.members : Owner(m) = c}
                    res   == IF known # {} THEN ReplaceStatic(grp, CHOOSE m \in known : TRUE, n)
                             ELSE AddMember(grp, n)
                IN  Apply(res, queue, net \ {r}, cId,
                          IF waiting THEN [cTok EXCEPT ![c] = n] ELSE cTok)
           ELSE /\ grp' = [grp EXCEPT !.pIds = @ \cup {n}]
                /\ net' = (net \ {r}) \cup (IF waiting THEN {JoinReq(c, n, FALSE)} ELSE {})
                /\ cId' = IF waiting THEN [cId EXCEPT ![c] = n] ELSE cId
                /\ UNCHANGED <<log, queue, cPhase, cTok, cGen, cAsg, handed>>
        /\ UNCHANGED <<offsets, hw, commits, failovers, faults>>
        /\ UNCHANGED consumerOnly

(* membership.rs Coordinator::join -> join_known_member (update_member,    *)
(* join_answer, add_member for a handed-out id).                           *)
\* Code: src/group/src/membership.rs::Coordinator::join_known_member
HandleJoinKnown(r) ==
    LET m == r.id
        g == grp
        res ==
          IF Fenced(g, m) THEN Result(g, {JoinErr(m, "FENCED_INSTANCE_ID")}, <<>>)
          ELSE IF m \in g.pIds THEN AddMember([g EXCEPT !.pIds = @ \ {m}], m)
          ELSE IF m \notin g.members THEN Result(g, {JoinErr(m, "UNKNOWN_MEMBER_ID")}, <<>>)
          ELSE CASE g.st = "PreparingRebalance" ->
                      TryCompleteJoin([g EXCEPT !.wJoin = @ \cup {m}])
                 [] g.st = "CompletingRebalance" /\ ~r.changed ->
                      \* a retried JoinGroup: the same answer again
                      Result(g, {JoinOK(m, g.gen, g.leader,
                                        IF m = g.leader THEN g.members ELSE {})}, <<>>)
                 [] g.st = "Stable" /\ ~r.changed /\ m # g.leader ->
                      Result(g, {JoinOK(m, g.gen, g.leader, {})}, <<>>)
                 [] OTHER ->
                      \* new metadata, or the leader rejoining: rebalance
                      PrepareRebalance([g EXCEPT !.wJoin = @ \cup {m}])
    IN  /\ r.type = "join" /\ r.id # 0
        /\ Apply(res, queue, net \ {r}, cId, cTok)
        /\ UNCHANGED <<offsets, hw, cNext, commits, failovers, faults>>
        /\ UNCHANGED consumerOnly

(* membership.rs Coordinator::sync: the leader's assignment is written;    *)
(* SyncGroups wait until it is durable (assignment_persisted).             *)
\* Code: src/group/src/membership.rs::Coordinator::sync
HandleSync(r) ==
    LET m == r.id
        g == grp
        res ==
          IF Fenced(g, m) THEN Result(g, {SyncErr(m, "FENCED_INSTANCE_ID")}, <<>>)
          ELSE IF m \notin g.members THEN Result(g, {SyncErr(m, "UNKNOWN_MEMBER_ID")}, <<>>)
          ELSE IF r.gen # g.gen THEN Result(g, {SyncErr(m, "ILLEGAL_GENERATION")}, <<>>)
          ELSE CASE g.st = "PreparingRebalance" ->
                      Result(g, {SyncErr(m, "REBALANCE_IN_PROGRESS")}, <<>>)
                 [] g.st = "Stable" ->
                      Result([g EXCEPT !.pSync = @ \ {m}], {SyncOK(m, g.asg[m])}, <<>>)
                 [] g.st = "CompletingRebalance" ->
                      LET g1 == [g EXCEPT !.pSync = @ \ {m}, !.wSync = @ \cup {m}]
                          g2 == [g1 EXCEPT
                                   !.asg = [x \in Ids |->
                                              IF x \in g.members /\ x \in r.view
                                              THEN Asg(r.gen, m, r.view, x) ELSE g.asg[x]],
                                   !.aWrite = TRUE]
                      IN  IF m = g.leader /\ ~g.aWrite
                          THEN Result(g2, {}, <<Write(GroupRec(g2), "assign", g2.gen, 0, 0)>>)
                          ELSE Nothing(g1)
    IN  /\ r.type = "sync"
        /\ Apply(res, queue, net \ {r}, cId, cTok)
        /\ UNCHANGED <<offsets, hw, cNext, commits, failovers, faults>>
        /\ UNCHANGED consumerOnly

(* membership.rs Coordinator::leave -> remove_members; a handed-out id is  *)
(* dropped (KIP-394).  Answered at once; the client does not wait.         *)
\* Code: src/group/src/membership.rs::Coordinator::leave
HandleLeave(r) ==
    LET m == r.id
        g == grp
        res == IF Fenced(g, m) THEN TryCompleteJoin(g)
               ELSE IF m \in g.pIds THEN TryCompleteJoin([g EXCEPT !.pIds = @ \ {m}])
               ELSE IF m \in g.members THEN RemoveMembers(g, {m})
               ELSE TryCompleteJoin(g)
    IN  /\ r.type = "leave"
        /\ Apply(res, queue, net \ {r}, cId, cTok)
        /\ UNCHANGED <<offsets, hw, cNext, commits, failovers, faults>>
        /\ UNCHANGED consumerOnly

(* offsets.rs Coordinator::commit, validate_commit (Kafka's                *)
(* GroupCoordinator.handleCommitOffsets / validateOffsetCommit): fencing   *)
(* errors are answered before anything is written; an accepted commit is   *)
(* written and applied only when durable (commit_persisted).               *)
\* Code: src/group/src/offsets.rs::Coordinator::commit, ::validate_commit
HandleCommit(r) ==
    LET m == r.id
        k == r.cid
        err == CASE Fenced(grp, m)                   -> "FENCED_INSTANCE_ID"
                 [] m \notin grp.members             -> "UNKNOWN_MEMBER_ID"
                 [] r.gen # grp.gen                  -> "ILLEGAL_GENERATION"
                 [] grp.st = "CompletingRebalance"   -> "REBALANCE_IN_PROGRESS"
                 [] OTHER                            -> "NONE"
        rec == OffsetRec(commits[k].p, k)
    IN  /\ r.type = "commit"
        /\ net' = net \ {r}
        /\ IF err # "NONE"
           THEN /\ commits' = [commits EXCEPT ![k].st = "refused"]
                /\ UNCHANGED <<log, queue>>
           ELSE /\ commits' = [commits EXCEPT ![k].st = "written",
                                              ![k].fenceOK = FenceOK(m, r.gen)]
                /\ log' = Append(log, rec)
                /\ queue' = Append(queue, [Write(rec, "commit", r.gen, m, 0) EXCEPT
                                             !.pos = Len(log) + 1])
        /\ UNCHANGED <<grp, offsets, hw, clientVars, failovers, faults, handed>>
        /\ UNCHANGED consumerOnly

(***************************************************************************)
(* Coordinator: write completions (coordinator.rs Coordinator::persisted,  *)
(* driven by slot.rs complete_writes in log order once the high watermark  *)
(* covers the write).                                                      *)
(***************************************************************************)
\* Code: src/group/src/coordinator.rs::Coordinator::persisted (membership.rs::Coordinator::assignment_persisted, offsets.rs::Coordinator::commit_persisted), driven by src/broker/src/consumer_groups/slot.rs::complete_writes
Persisted ==
    LET w == Head(queue)
        g == grp
        res ==
          CASE w.kind = "assign" ->
                 \* membership.rs assignment_persisted: the generation is Stable and
                 \* its waiting SyncGroups get their assignments; a superseded
                 \* generation's write changes nothing.
                 IF g.gen = w.gen /\ g.aWrite
                 THEN Result([g EXCEPT !.st = "Stable", !.wSync = {}, !.aWrite = FALSE],
                             {SyncOK(m, g.asg[m]) : m \in g.wSync}, <<>>)
                 ELSE Nothing(g)
            [] w.kind = "static" ->
                 \* coordinator.rs persisted, PendingWrite::StaticRejoin
                 IF g.st = "Stable" /\ w.id \in g.members /\ w.id \in g.wJoin
                 THEN Result([g EXCEPT !.wJoin = @ \ {w.id}], {JoinOK(w.id, w.gen, w.ldr, {})},
                             <<>>)
                 ELSE Nothing(g)
            [] OTHER -> Nothing(g)
    IN  /\ queue # <<>>
        /\ w.pos <= hw \/ AckBeforeDurable
        /\ Apply(res, Tail(queue), net, cId, cTok)
        \* offsets.rs commit_persisted: applied, answered OK
        /\ IF w.kind = "commit"
           THEN /\ offsets' = [offsets EXCEPT ![commits[w.cid].p] = w.cid]
                /\ commits' = [commits EXCEPT ![w.cid].st = "acked"]
           ELSE UNCHANGED <<offsets, commits>>
        /\ UNCHANGED <<hw, cNext, failovers, faults>>
        /\ UNCHANGED consumerOnly

(***************************************************************************)
(* Coordinator: time (coordinator.rs Coordinator::tick).  Any timeout may  *)
(* fire whenever the code would let it.                                    *)
(***************************************************************************)

(* coordinator.rs expire_members: a member not waiting in a JoinGroup or   *)
(* SyncGroup whose session ended is removed (remove_members).              *)
\* Code: src/group/src/coordinator.rs::Coordinator::expire_members
ExpireSession(m) ==
    /\ m \in grp.members \ (grp.wJoin \cup grp.wSync)
    /\ Apply(RemoveMembers(grp, {m}), queue, net, cId, cTok)
    /\ UNCHANGED <<offsets, hw, cNext, commits, failovers>>
    /\ Fault
    /\ UNCHANGED consumerOnly

(* coordinator.rs expire_members: a handed-out member id not used in time  *)
(* is dropped (KIP-394), and the rebalance may complete (try_complete_join).*)
\* Code: src/group/src/coordinator.rs::Coordinator::expire_members
ExpirePendingId(m) ==
    /\ m \in grp.pIds
    /\ Apply(TryCompleteJoin([grp EXCEPT !.pIds = @ \ {m}]), queue, net, cId, cTok)
    /\ UNCHANGED <<offsets, hw, cNext, commits, failovers>>
    /\ Fault
    /\ UNCHANGED consumerOnly

(* coordinator.rs tick: the rebalance (or KIP-134 initial) deadline passed *)
(* -> membership.rs complete_join.                                         *)
\* Code: src/group/src/coordinator.rs::Coordinator::tick -> membership.rs::Coordinator::complete_join
JoinDeadline ==
    /\ grp.st = "PreparingRebalance"
    /\ Apply(CompleteJoin(grp), queue, net, cId, cTok)
    /\ UNCHANGED <<offsets, hw, cNext, commits, failovers>>
    /\ IF grp.members \subseteq grp.wJoin /\ grp.pIds = {} THEN UNCHANGED faults ELSE Fault
    /\ UNCHANGED consumerOnly

(* coordinator.rs expire_pending_sync: members of the generation that did  *)
(* not send SyncGroup in time are removed.                                 *)
\* Code: src/group/src/coordinator.rs::Coordinator::expire_pending_sync
SyncDeadline ==
    /\ grp.st \in {"CompletingRebalance", "Stable"}
    /\ grp.pSync # {}
    /\ Apply(RemoveMembers(grp, grp.pSync), queue, net, cId, cTok)
    /\ UNCHANGED <<offsets, hw, cNext, commits, failovers>>
    /\ Fault
    /\ UNCHANGED consumerOnly

(***************************************************************************)
(* The partition: replication and coordinator failover.                    *)
(***************************************************************************)

(* The high watermark moves (the Raft commit / single-node flush that      *)
(* produce.rs wait_for_high_watermark waits for).                          *)
\* Code: src/broker/src/handlers/produce.rs::wait_for_high_watermark (the high watermark a write waits for)
Replicate ==
    /\ hw < Len(log)
    /\ hw' = hw + 1
    /\ UNCHANGED <<coordVars, log, net, clientVars, commits, failovers, faults, handed>>
    /\ UNCHANGED consumerOnly

(* upkeep.rs pass/unload then load.rs load (Coordinator::replay, loaded):  *)
(* leadership of the partition moved, or a write failed (slot.rs marks the *)
(* shell failed and it is unloaded).  The coordinator's memory and pending *)
(* writes are dropped, its waiting requests answered NOT_COORDINATOR       *)
(* (slot.rs Submitted::answer); the log keeps its durable records and      *)
(* maybe some of the rest; the new coordinator loads once all of it is     *)
(* durable.  Requests still in the network reach the new coordinator.      *)
\* Code: src/broker/src/consumer_groups/upkeep.rs::pass/unload, src/broker/src/consumer_groups/load.rs::load (src/group/src/coordinator.rs::Coordinator::replay, ::loaded), src/broker/src/consumer_groups/slot.rs::Submitted::answer (NOT_COORDINATOR)
Failover(k) ==
    LET l   == SubSeq(log, 1, k)
        out == {JoinErr(m, "NOT_COORDINATOR") : m \in grp.wJoin}
               \cup {SyncErr(m, "NOT_COORDINATOR") : m \in grp.wSync}
    IN  /\ failovers < MaxFailovers
        /\ k \in hw..Len(log)
        /\ failovers' = failovers + 1
        /\ log' = l
        /\ hw' = k
        /\ grp' = Load(l)
        /\ offsets' = LoadOffsets(l)
        /\ queue' = <<>>
        /\ Deliver(out, net, cId, cTok)
        \* commits written and not completed: no answer (NOT_COORDINATOR), indeterminate
        /\ commits' = [j \in CommitIds |->
                         IF commits[j].st = "written" THEN [commits[j] EXCEPT !.st = "indet"]
                         ELSE commits[j]]
        /\ Fault
        /\ UNCHANGED <<cNext>>
        /\ UNCHANGED consumerOnly

(***************************************************************************)
(* Clients (Kafka's Java consumer; sim/src/group_workload.rs).             *)
(***************************************************************************)

(* A consumer starts (or restarts after UNKNOWN_MEMBER_ID or a leave):     *)
(* JoinGroup with no member id.                                            *)
\* Code: client: sim/src/group_workload.rs (JoinGroup round, KIP-394)
ClientStart(c) ==
    /\ cPhase[c] = "idle"
    /\ cNext[c] <= MaxIncarnations
    /\ cPhase' = [cPhase EXCEPT ![c] = "joining"]
    /\ net' = net \cup {JoinReq(c, 0, FALSE)}
    /\ UNCHANGED <<coordVars, logVars, cId, cTok, cGen, cAsg, cNext, commits, failovers, faults, handed>>
    /\ UNCHANGED consumerOnly

(* A Stable consumer rejoins: a heartbeat is not needed to learn of a     *)
(* rebalance it starts itself (new subscription metadata: changed), nor   *)
(* for a leader that wants to reassign.                                    *)
\* Code: client: sim/src/group_workload.rs (JoinGroup again)
ClientRejoin(c, changed) ==
    /\ cPhase[c] = "stable"
    /\ cPhase' = [cPhase EXCEPT ![c] = "joining"]
    /\ cGen' = [cGen EXCEPT ![c] = -1]
    /\ cAsg' = [cAsg EXCEPT ![c] = NoAsg]
    /\ net' = net \cup {JoinReq(c, cId[c], changed)}
    /\ UNCHANGED <<coordVars, logVars, cId, cTok, cNext, commits, failovers, handed>>
    /\ Fault
    /\ UNCHANGED consumerOnly

(* A dynamic consumer closes: LeaveGroup, without waiting for the answer;  *)
(* it may start again as a new member.  (Static members do not leave on    *)
(* close, KIP-345.)                                                        *)
\* Code: client: sim/src/group_workload.rs (LeaveGroup)
ClientLeave(c) ==
    /\ cPhase[c] = "stable"
    /\ c \notin StaticClients
    /\ net' = net \cup {LeaveReq(c, cId[c])}
    /\ cPhase' = [cPhase EXCEPT ![c] = "idle"]
    /\ cId' = [cId EXCEPT ![c] = 0]
    /\ cGen' = [cGen EXCEPT ![c] = -1]
    /\ cAsg' = [cAsg EXCEPT ![c] = NoAsg]
    /\ UNCHANGED <<coordVars, logVars, cTok, cNext, commits, failovers, handed>>
    /\ Fault
    /\ UNCHANGED consumerOnly

(* A consumer process crashes and restarts: it forgets its member id; its  *)
(* requests still in the network become zombies.  A static one rejoins     *)
(* with its instance id and takes its old member's place (KIP-345).       *)
\* Code: client: sim/src/group_workload.rs (a member crashes)
ClientRestart(c) ==
    /\ cPhase[c] \in {"joining", "syncing", "stable"}
    /\ cPhase' = [cPhase EXCEPT ![c] = "idle"]
    /\ cId' = [cId EXCEPT ![c] = 0]
    /\ cTok' = [cTok EXCEPT ![c] = 0]
    /\ cGen' = [cGen EXCEPT ![c] = -1]
    /\ cAsg' = [cAsg EXCEPT ![c] = NoAsg]
    /\ UNCHANGED <<coordVars, logVars, net, cNext, commits, failovers, handed>>
    /\ Fault
    /\ UNCHANGED consumerOnly

(* A Stable consumer commits the position of a partition it owns, with its *)
(* generation and member id (OffsetCommit; commit k commits offset k).     *)
\* Code: client: sim/src/group_workload.rs (OffsetCommit)
ClientCommit(c, p) ==
    LET unsent == {k \in CommitIds : commits[k].st = "unsent"}
        k == Min(unsent)
    IN  /\ cPhase[c] = "stable"
        /\ p \in cAsg[c].parts
        /\ ~InFlightCommit(c)
        /\ unsent # {}
        /\ commits' = [commits EXCEPT ![k] = [client |-> c, id |-> cId[c], gen |-> cGen[c],
                                              p |-> p, st |-> "sent", fenceOK |-> TRUE]]
        /\ net' = net \cup {CommitReq(c, cId[c], cGen[c], k)}
        /\ UNCHANGED <<coordVars, logVars, clientVars, failovers, faults, handed>>
        /\ UNCHANGED consumerOnly

(* A Stable consumer's Heartbeat (membership.rs Coordinator::heartbeat),   *)
(* request and answer in one step; only an error changes anything: the    *)
(* consumer rejoins (or starts over, or stops).                            *)
\* Code: src/group/src/membership.rs::Coordinator::heartbeat (client: sim/src/group_workload.rs)
ClientHeartbeat(c) ==
    LET m == cId[c]
        code == CASE Fenced(grp, m)                 -> "FENCED_INSTANCE_ID"
                  [] m \notin grp.members           -> "UNKNOWN_MEMBER_ID"
                  [] cGen[c] # grp.gen              -> "ILLEGAL_GENERATION"
                  [] grp.st = "PreparingRebalance"  -> "REBALANCE_IN_PROGRESS"
                  [] OTHER                          -> "NONE"
        R == React(c, Answer(m, "heartbeat", code, -1, 0, {}, NoAsg), cId)
    IN  /\ cPhase[c] = "stable"
        /\ code # "NONE"
        /\ cPhase' = [cPhase EXCEPT ![c] = R.ph]
        /\ cId' = [cId EXCEPT ![c] = R.id]
        /\ cGen' = [cGen EXCEPT ![c] = R.gen]
        /\ cAsg' = [cAsg EXCEPT ![c] = R.asg]
        /\ net' = IF R.req # NoReq THEN net \cup {R.req} ELSE net
        /\ UNCHANGED <<coordVars, logVars, cTok, cNext, commits, failovers, faults, handed>>
        /\ UNCHANGED consumerOnly

-----------------------------------------------------------------------------
(* The request-handling actions, for any request in the network. *)
RecvJoinNew   == \E r \in net : HandleJoinNew(r)
RecvJoinKnown == \E r \in net : HandleJoinKnown(r)
RecvSync      == \E r \in net : HandleSync(r)
RecvLeave     == \E r \in net : HandleLeave(r)
RecvCommit    == \E r \in net : HandleCommit(r)
CoordinatorFailover == \E k \in hw..Len(log) : Failover(k)

Next ==
    \/ RecvJoinNew
    \/ RecvJoinKnown
    \/ RecvSync
    \/ RecvLeave
    \/ RecvCommit
    \/ Persisted
    \/ \E m \in Ids : ExpireSession(m)
    \/ \E m \in Ids : ExpirePendingId(m)
    \/ JoinDeadline
    \/ SyncDeadline
    \/ Replicate
    \/ CoordinatorFailover
    \/ \E c \in Clients : ClientStart(c)
    \/ \E c \in Clients : ClientLeave(c)
    \/ \E c \in Clients : ClientRestart(c)
    \/ \E c \in Clients : ClientHeartbeat(c)
    \/ \E c \in Clients, ch \in BOOLEAN : ClientRejoin(c, ch)
    \/ \E c \in Clients, p \in Partitions : ClientCommit(c, p)

(* The classic protocol. *)
Spec == Init /\ [][Next]_vars

-----------------------------------------------------------------------------
(***************************************************************************)
(* Invariants                                                              *)
(***************************************************************************)
Phases == {"idle", "joining", "syncing", "stable", "dead"}
CommitStates == {"unsent", "sent", "refused", "written", "acked", "indet"}

TypeOK ==
    /\ grp \in GroupVals
    /\ offsets \in [Partitions -> CommitIds \cup {0}]
    /\ hw \in 0..Len(log)
    /\ \A i \in 1..Len(queue) : queue[i].pos \in 1..Len(log)
    /\ cPhase \in [Clients -> Phases]
    /\ cId \in [Clients -> Ids \cup {0}]
    /\ cTok \in [Clients -> Ids \cup {0}]
    /\ cGen \in [Clients -> Int]
    /\ cAsg \in [Clients -> AsgVals]
    /\ \A k \in CommitIds : commits[k].st \in CommitStates

(* group.rs Group::check_invariants and coordinator.rs check_group: the     *)
(* assertions the Rust core crashes on, as far as the model has them.       *)
GroupWellFormed ==
    /\ grp.st = "Empty" => grp.members = {} /\ grp.pSync = {}
    /\ grp.st \in {"CompletingRebalance", "Stable"} =>
          grp.members # {} /\ grp.leader \in grp.members
    /\ grp.wSync # {} => grp.st = "CompletingRebalance"
    /\ grp.wJoin # {} => grp.st \in {"PreparingRebalance", "Stable"}
    \* a JoinGroup waits in a Stable group only while its static takeover is written
    /\ grp.st = "Stable" =>
          \A m \in grp.wJoin : \E i \in 1..Len(queue) : queue[i].kind = "static" /\ queue[i].id = m
    \* the assignment write is pending (and the group CompletingRebalance)
    /\ grp.aWrite => /\ grp.st = "CompletingRebalance"
                     /\ \E i \in 1..Len(queue) : queue[i].kind = "assign" /\ queue[i].gen = grp.gen
    /\ grp.wJoin \cup grp.wSync \cup grp.pSync \subseteq grp.members
    /\ grp.pIds \cap grp.members = {}

(* GenerationMonotonic: the generation never goes back, across failover     *)
(* too, in what is durable and in what a client was told it is Stable in:   *)
(* the coordinator's generation is at least the durable one, the group      *)
(* records are in generation order in the log (so the durable generation,   *)
(* which a new coordinator loads, only grows), and every generation a       *)
(* SyncGroup was answered in is durable (Kafka: GroupCoordinator.           *)
(* handleSyncGroup answers after storeGroup's callback).  See also          *)
(* GenerationMonotonicStep.                                                  *)
GenerationMonotonic ==
    /\ grp.gen >= DurableGen
    /\ \A i, j \in 1..Len(log) :
          (i < j /\ log[i].type = "group" /\ log[j].type = "group") => log[i].gen <= log[j].gen
    /\ \A c \in Clients : cPhase[c] = "stable" => cGen[c] <= DurableGen
    /\ \A h \in handed : h.gen <= DurableGen

(* FencedCommitsRejected (Kafka GroupCoordinator.handleCommitOffsets:       *)
(* UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID (KIP-345)):    *)
(* every commit accepted, and every commit applied (in memory or in the     *)
(* log), was made by a member of the generation it was sent in, checked     *)
(* against what is durable when it was accepted (FenceOK).                  *)
FencedCommitsRejected ==
    /\ \A k \in CommitIds : commits[k].st \in {"written", "acked", "indet"} => commits[k].fenceOK
    /\ \A i \in 1..Len(log) :
          log[i].type = "offset" => commits[log[i].cid].st \in {"written", "acked", "indet"}
    /\ \A p \in Partitions : offsets[p] # 0 => commits[offsets[p]].st \in {"written", "acked", "indet"}

(* CommittedOffsetDurable: an OffsetCommit answered OK is never lost, also  *)
(* across failover, and OffsetFetch (offsets.rs fetch_offsets_stable, the   *)
(* loaded coordinator's offsets) returns the latest acknowledged commit of  *)
(* the partition or one written after it, whose answer is still to come or  *)
(* was an error (indeterminate): the register rule of the simulator's       *)
(* GroupOffsetsDurable (src/checker/src/group_offsets.rs), with the log     *)
(* order as the order of commits.                                           *)
CommittedOffsetDurable ==
    \A p \in Partitions :
        LET v == offsets[p] IN
        \A k \in CommitIds :
            commits[k].p = p /\ commits[k].st = "acked" =>
                /\ Pos(k) # 0                    \* not lost
                /\ v # 0 /\ Pos(v) >= Pos(k)     \* a fetch sees it or a later commit

(* Stronger, and what makes the above hold: an acknowledged commit is       *)
(* durable, and a fetch returns only durable commits (applied when          *)
(* durable, offsets.rs commit_persisted).                                   *)
AckedCommitsDurable ==
    /\ \A k \in CommitIds : commits[k].st = "acked" => Pos(k) \in 1..hw
    /\ \A p \in Partitions : offsets[p] # 0 => Pos(offsets[p]) \in 1..hw

(* AssignmentsOnlyToMembers: only members hold assignments; in a Stable     *)
(* generation (and once its assignment is being written) every member      *)
(* holds that generation's assignment, all from one leader's SyncGroup,     *)
(* and together they cover the partitions, none twice (Kafka                 *)
(* GroupCoordinator.handleSyncGroup: the leader's assignment, set           *)
(* for the members that are in the group).                                  *)
AssignmentsOnlyToMembers ==
    /\ \A m \in Ids \ grp.members : grp.asg[m] = NoAsg
    /\ (grp.st = "Stable" \/ grp.aWrite) =>
          /\ \A m \in grp.members : grp.asg[m].gen = grp.gen
          /\ \A m1, m2 \in grp.members :
                /\ grp.asg[m1].ldr = grp.asg[m2].ldr
                /\ grp.asg[m1].view = grp.asg[m2].view
                /\ m1 # m2 => grp.asg[m1].parts \cap grp.asg[m2].parts = {}
          /\ UNION {grp.asg[m].parts : m \in grp.members} = Partitions

(* OneLeaderPerGeneration: every SyncGroup answered OK for a generation,    *)
(* ever, handed out the assignment of one leader (with one member list),    *)
(* also across failover, where a generation id can be formed twice (a       *)
(* JoinGroup answer's generation is not durable); so consumers Stable in    *)
(* the same generation own disjoint partitions.                              *)
OneLeaderPerGeneration ==
    /\ \A h1, h2 \in handed : h1.gen = h2.gen => h1 = h2
    /\ \A h \in handed : h.gen >= 1 /\ h.ldr \in h.view
    /\ \A c \in Clients : cPhase[c] = "stable" => cAsg[c].gen = cGen[c]
    /\ \A c1, c2 \in Clients :
          (c1 # c2 /\ cPhase[c1] = "stable" /\ cPhase[c2] = "stable" /\ cGen[c1] = cGen[c2])
              => cAsg[c1].parts \cap cAsg[c2].parts = {}

(***************************************************************************)
(* Action properties                                                       *)
(***************************************************************************)
(* GenerationMonotonic, step by step: the durable generation never          *)
(* decreases, and the coordinator's only goes back at a failover.           *)
GenerationMonotonicStep ==
    [][/\ DurableGen' >= DurableGen
       /\ failovers' = failovers => grp'.gen >= grp.gen]_vars

(* Not a property of Sluice, nor of Kafka: the generation a coordinator     *)
(* forms (and tells members in JoinGroup answers) is not durable until the  *)
(* leader's assignment is, so a failover can take the generation back and   *)
(* the same id be formed again (with other members and leader).  Checked   *)
(* only to show it (MCGroupCoordinatorGenBack.cfg: TLC finds a violation).  *)
CoordinatorGenerationNeverDecreases == [][grp'.gen >= grp.gen]_vars

-----------------------------------------------------------------------------
(***************************************************************************)
(* KIP-848 consumer groups (group.protocol=consumer): ConsumerSpec.        *)
(*                                                                         *)
(* One consumer group, its coordinator (consumer_group.rs ConsumerGroup,   *)
(* consumer_heartbeat.rs) and the same partition log and failover as the   *)
(* classic part above.  Every ConsumerGroupHeartbeat that changes the      *)
(* group writes the group's record (key version 3) and is answered once    *)
(* it is durable; one that changes nothing is answered at once.  The group *)
(* epoch moves on every membership change and the target assignment is    *)
(* recomputed at once (assignment epoch = group epoch); a member behind it  *)
(* first revokes what is not in its target (UnrevokedPartitions, its epoch *)
(* unchanged) and only then takes partitions no other member holds, its   *)
(* epoch moving to the assignment epoch (UnreleasedPartitions while some   *)
(* are still held elsewhere).                                              *)
(*                                                                         *)
(* Abstractions: every member subscribes to the one topic; the target is a *)
(* range assignment of the members (Sluice's default is the sticky uniform *)
(* assignor: any assignor does for the properties here); a consumer always *)
(* reports what it owns, and applies an assignment at once (it revokes,    *)
(* then heartbeats); one heartbeat in flight per consumer; member ids are  *)
(* made by the client (KIP-1082) and kept across fencing, a new one per    *)
(* process.                                                                *)
(***************************************************************************)
CMembers(g) == {m \in Ids : g.mem[m].in}
CTarget(g, m) == RangeParts(CMembers(g), m)
Holds(M) == M.assigned \cup M.pending
HeldElsewhere(g, m, p) == \E x \in CMembers(g) \ {m} : p \in Holds(g.mem[x])

(* consumer_group.rs ConsumerGroup::reconcile (Kafka's                     *)
(* CurrentAssignmentBuilder): one step of a member towards its target,     *)
(* given what it reports owning.                                           *)
\* Code: src/group/src/consumer_group.rs::ConsumerGroup::reconcile
Reconcile(g, m, owned) ==
    LET M       == g.mem[m]
        revoked == M.st = "unrevoked" /\ owned \cap M.pending = {}
        M1      == IF revoked THEN [M EXCEPT !.pending = {}, !.st = "stable"] ELSE M
        T       == CTarget(g, m)
        revoke  == M1.assigned \ T
        wanted  == T \ M1.assigned
        free    == {p \in wanted : ~HeldElsewhere(g, m, p)}
    IN  IF M.st = "unrevoked" /\ ~revoked THEN g
        ELSE IF M1.epoch = g.epoch /\ M1.st = "stable" THEN [g EXCEPT !.mem[m] = M1]
        ELSE IF revoke # {}
        THEN [g EXCEPT !.mem[m] = [M1 EXCEPT !.assigned = @ \cap T, !.pending = revoke,
                                             !.st = "unrevoked"]]
        ELSE [g EXCEPT !.mem[m] = [M1 EXCEPT !.assigned = @ \cup free,
                                             !.prev = IF M1.epoch # g.epoch THEN M1.epoch ELSE @,
                                             !.epoch = g.epoch,
                                             !.st = IF free # wanted THEN "unreleased" ELSE "stable"]]

(* consumer_group.rs ConsumerGroup::remove_member and recompute (the group  *)
(* epoch moves; the target, a function of the members here, follows).      *)
CRemove(g, m) == [g EXCEPT !.mem[m] = NoMember]
CBump(g) == [g EXCEPT !.epoch = @ + 1]
CInsert(g, m) == [g EXCEPT !.mem[m] = [in |-> TRUE, epoch |-> 0, prev |-> -1, st |-> "stable",
                                       assigned |-> {}, pending |-> {}]]

(* records.rs OffsetsRecord::ConsumerGroup (consumer_records.rs) *)
ConsumerRec(g) == [type |-> "consumer", epoch |-> g.epoch, mem |-> g.mem]
CAnswer(m, code, e, a) == [to |-> m, code |-> code, epoch |-> e, assigned |-> a]
NoCAnswer == CAnswer(0, "NONE", -1, {})
(* ConsumerGroupHeartbeat: member id, member epoch (0 join, -1 leave), owned *)
HbReq(c, m, e, owned) == Req("heartbeat", c, m, e, owned, FALSE, 0)
CWrite(g, kind, ans, r) ==
    [rec |-> ConsumerRec(g), kind |-> kind, ans |-> ans, req |-> r, pos |-> Len(log) + 1]

CLoad(l) ==
    LET is == {i \in 1..Len(l) : l[i].type = "consumer"}
    IN  IF is = {} THEN EmptyConsumerGroup
        ELSE [epoch |-> l[Max(is)].epoch, mem |-> l[Max(is)].mem]
DurableConsumerEpoch == LET l == Durable IN CLoad(l).epoch

(* A consumer receives heartbeat answers (Kafka's ConsumerMembershipManager: *)
(* an assignment is applied, revoked partitions dropped; UNKNOWN_MEMBER_ID   *)
(* and FENCED_MEMBER_EPOCH release everything and rejoin at epoch 0).       *)
CDeliver(out, net0) ==
    LET ans(c) == {a \in out : cId[c] # 0 /\ a.to = cId[c] /\ cPhase[c] = "joining"}
        A(c)   == CHOOSE a \in ans(c) : TRUE
        got    == {c \in Clients : ans(c) # {}}
        ok(c)  == A(c).code = "NONE"
    IN  /\ cPhase' = [c \in Clients |-> IF c \in got /\ ok(c) THEN "stable" ELSE cPhase[c]]
        /\ cEpoch' = [c \in Clients |-> IF c \in got THEN (IF ok(c) THEN A(c).epoch ELSE 0)
                                          ELSE cEpoch[c]]
        /\ cOwned' = [c \in Clients |-> IF c \in got THEN (IF ok(c) THEN A(c).assigned ELSE {})
                                          ELSE cOwned[c]]
        /\ net' = net0 \cup {HbReq(c, cId[c], 0, {}) : c \in {x \in got : ~ok(x)}}

(* consumer_heartbeat.rs Coordinator::consumer_heartbeat ->                 *)
(* try_consumer_heartbeat: join (epoch 0: a known member starts over),     *)
(* leave (epoch -1), or a heartbeat checked against the member's epoch     *)
(* (Kafka's throwIfMemberEpochIsInvalid: its epoch, or its previous one    *)
(* owning nothing it must not); then a reconciliation step.                *)
\* Code: src/group/src/consumer_heartbeat.rs::Coordinator::try_consumer_heartbeat
HandleConsumerHeartbeat(r) ==
    LET m     == r.id
        e     == r.gen
        owned == r.view
        g     == cg
        M     == g.mem[m]
        valid == e = M.epoch \/ (e = M.prev /\ owned \subseteq M.assigned)
        err   == CASE e = -1 /\ ~M.in          -> "UNKNOWN_MEMBER_ID"
                   [] e = 0                    -> "NONE"
                   [] ~M.in                    -> "UNKNOWN_MEMBER_ID"
                   [] e # -1 /\ ~valid         -> "FENCED_MEMBER_EPOCH"
                   [] OTHER                    -> "NONE"
        g2    == CASE err # "NONE" -> g
                   [] e = -1       -> CBump(CRemove(g, m))
                   [] e = 0        -> Reconcile(CBump(CInsert(CRemove(g, m), m)), m, owned)
                   [] OTHER        -> Reconcile(g, m, owned)
        ans   == CASE err # "NONE" -> CAnswer(m, err, -1, {})
                   [] e = -1       -> CAnswer(m, "NONE", -1, {})
                   [] OTHER        -> CAnswer(m, "NONE", g2.mem[m].epoch, g2.mem[m].assigned)
    IN  /\ r.type = "heartbeat"
        /\ cg' = g2
        /\ IF g2 # g
           THEN /\ log' = Append(log, ConsumerRec(g2))
                /\ queue' = Append(queue, CWrite(g2, "heartbeat", ans, r))
                /\ CDeliver({}, net \ {r})
           ELSE /\ UNCHANGED <<log, queue>>
                /\ CDeliver({ans}, net \ {r})
        /\ UNCHANGED <<hw, cId, cNext, failovers, faults>>
        /\ UNCHANGED classicOnly
RecvConsumerHeartbeat == \E r \in net : HandleConsumerHeartbeat(r)

(* coordinator.rs Coordinator::persisted, PendingWrite::ConsumerHeartbeat:  *)
(* the record is durable, the heartbeat is answered.                       *)
\* Code: src/group/src/coordinator.rs::Coordinator::persisted (PendingWrite::ConsumerHeartbeat), driven by src/broker/src/consumer_groups/slot.rs::complete_writes
ConsumerPersisted ==
    LET w == Head(queue)
    IN  /\ queue # <<>>
        /\ w.pos <= hw \/ AckBeforeDurable
        /\ queue' = Tail(queue)
        /\ CDeliver(IF w.kind = "heartbeat" THEN {w.ans} ELSE {}, net)
        /\ UNCHANGED <<log, hw, cg, cId, cNext, failovers, faults>>
        /\ UNCHANGED classicOnly

(* consumer_heartbeat.rs Coordinator::expire_consumer_members (from         *)
(* coordinator.rs tick): a member whose session ended, or whose revocation *)
(* outlived its rebalance timeout, is removed; the record is written.      *)
\* Code: src/group/src/consumer_heartbeat.rs::Coordinator::expire_consumer_members
ConsumerExpire(m) ==
    LET g2 == CBump(CRemove(cg, m))
    IN  /\ cg.mem[m].in
        /\ Fault
        /\ cg' = g2
        /\ log' = Append(log, ConsumerRec(g2))
        /\ queue' = Append(queue, CWrite(g2, "none", NoCAnswer, NoReq))
        /\ UNCHANGED <<hw, net, cPhase, cId, cNext, cEpoch, cOwned, failovers>>
        /\ UNCHANGED classicOnly

(* As Failover above, for a consumer group: the new coordinator loads the   *)
(* last consumer group record (coordinator.rs replay, loaded); heartbeats   *)
(* waiting for a write get NOT_COORDINATOR and the consumer sends them      *)
(* again.                                                                   *)
\* Code: src/broker/src/consumer_groups/upkeep.rs::pass/unload, src/broker/src/consumer_groups/load.rs::load (src/group/src/coordinator.rs::Coordinator::replay, ::loaded)
ConsumerFailover(k) ==
    LET l == SubSeq(log, 1, k)
        waiting == {queue[i].req : i \in {j \in 1..Len(queue) :
                        /\ queue[j].kind = "heartbeat"
                        /\ cId[queue[j].req.client] = queue[j].req.id
                        /\ cPhase[queue[j].req.client] = "joining"}}
    IN  /\ failovers < MaxFailovers
        /\ k \in hw..Len(log)
        /\ Fault
        /\ failovers' = failovers + 1
        /\ log' = l
        /\ hw' = k
        /\ cg' = CLoad(l)
        /\ queue' = <<>>
        /\ net' = net \cup waiting
        /\ UNCHANGED <<cPhase, cId, cNext, cEpoch, cOwned>>
        /\ UNCHANGED classicOnly
ConsumerCoordinatorFailover == \E k \in hw..Len(log) : ConsumerFailover(k)

(* A consumer starts (KIP-1082: it makes its member id) and joins at epoch 0. *)
\* Code: client: a KIP-848 consumer joins (epoch 0)
ConsumerStart(c) ==
    /\ cPhase[c] = "idle"
    /\ cNext[c] <= MaxIncarnations
    /\ cPhase' = [cPhase EXCEPT ![c] = "joining"]
    /\ cId' = [cId EXCEPT ![c] = IdOf(c, cNext[c])]
    /\ cNext' = [cNext EXCEPT ![c] = @ + 1]
    /\ cEpoch' = [cEpoch EXCEPT ![c] = 0]
    /\ cOwned' = [cOwned EXCEPT ![c] = {}]
    /\ net' = net \cup {HbReq(c, IdOf(c, cNext[c]), 0, {})}
    /\ UNCHANGED <<cg, log, hw, queue, failovers, faults>>
    /\ UNCHANGED classicOnly

(* A consumer heartbeats with its epoch and what it owns. *)
\* Code: client: a KIP-848 consumer heartbeats
ConsumerBeat(c) ==
    /\ cPhase[c] = "stable"
    /\ cPhase' = [cPhase EXCEPT ![c] = "joining"]
    /\ net' = net \cup {HbReq(c, cId[c], cEpoch[c], cOwned[c])}
    /\ UNCHANGED <<cg, log, hw, queue, cId, cNext, cEpoch, cOwned, failovers, faults>>
    /\ UNCHANGED classicOnly

(* A consumer leaves (epoch -1), releasing everything; it may start again.  *)
\* Code: client: a KIP-848 consumer leaves (epoch -1)
ConsumerLeave(c) ==
    /\ cPhase[c] = "stable"
    /\ Fault
    /\ net' = net \cup {HbReq(c, cId[c], -1, {})}
    /\ cPhase' = [cPhase EXCEPT ![c] = "idle"]
    /\ cId' = [cId EXCEPT ![c] = 0]
    /\ cEpoch' = [cEpoch EXCEPT ![c] = -1]
    /\ cOwned' = [cOwned EXCEPT ![c] = {}]
    /\ UNCHANGED <<cg, log, hw, queue, cNext, failovers>>
    /\ UNCHANGED classicOnly

(* A consumer process crashes: its member stays until its session ends; its *)
(* heartbeat in flight is a zombie.                                          *)
\* Code: client: a KIP-848 consumer crashes
ConsumerRestart(c) ==
    /\ cPhase[c] \in {"joining", "stable"}
    /\ Fault
    /\ cPhase' = [cPhase EXCEPT ![c] = "idle"]
    /\ cId' = [cId EXCEPT ![c] = 0]
    /\ cEpoch' = [cEpoch EXCEPT ![c] = -1]
    /\ cOwned' = [cOwned EXCEPT ![c] = {}]
    /\ UNCHANGED <<cg, log, hw, queue, net, cNext, failovers>>
    /\ UNCHANGED classicOnly

ConsumerNext ==
    \/ RecvConsumerHeartbeat
    \/ ConsumerPersisted
    \/ \E m \in Ids : ConsumerExpire(m)
    \/ Replicate
    \/ ConsumerCoordinatorFailover
    \/ \E c \in Clients : ConsumerStart(c)
    \/ \E c \in Clients : ConsumerBeat(c)
    \/ \E c \in Clients : ConsumerLeave(c)
    \/ \E c \in Clients : ConsumerRestart(c)

(* KIP-848 consumer groups. *)
ConsumerSpec == Init /\ [][ConsumerNext]_vars

(***************************************************************************)
(* KIP-848 invariants                                                      *)
(***************************************************************************)
(* consumer_group.rs ConsumerGroup::check_invariants *)
ConsumerWellFormed ==
    /\ \A m \in Ids : ~cg.mem[m].in => cg.mem[m] = NoMember
    /\ \A m \in CMembers(cg) :
          /\ cg.mem[m].epoch <= cg.epoch
          /\ (cg.mem[m].st = "unrevoked") = (cg.mem[m].pending # {})
    /\ \A c \in Clients : cOwned[c] \subseteq Partitions

(* A consumer whose member is in the group (not a zombie whose session      *)
(* ended: that one is fenced on its next heartbeat or commit).              *)
Live(c) == cPhase[c] \in {"joining", "stable"} /\ cId[c] # 0 /\ cg.mem[cId[c]].in

(* NoPartitionTwoOwners (KIP-848; consumer_group.rs check_invariants): no    *)
(* partition is held (assigned or pending revocation) by two members, in    *)
(* the coordinator nor in any record a new coordinator may load; a live     *)
(* consumer owns only what its member holds, so no two live consumers own   *)
(* a partition at once, across failover too.                                 *)
NoPartitionTwoOwners ==
    /\ \A m1, m2 \in CMembers(cg) : m1 # m2 => Holds(cg.mem[m1]) \cap Holds(cg.mem[m2]) = {}
    /\ \A i \in 1..Len(log) :
          LET g == [epoch |-> log[i].epoch, mem |-> log[i].mem]
          IN  \A m1, m2 \in CMembers(g) : m1 # m2 => Holds(g.mem[m1]) \cap Holds(g.mem[m2]) = {}
    /\ \A c \in Clients : Live(c) => cOwned[c] \subseteq Holds(cg.mem[cId[c]])
    /\ \A c1, c2 \in Clients :
          (c1 # c2 /\ Live(c1) /\ Live(c2)) => cOwned[c1] \cap cOwned[c2] = {}

(* Epochs never go back, across failover too: the group epoch is at least   *)
(* the durable one, records are in epoch order, and a consumer was told     *)
(* only durable epochs.                                                      *)
ConsumerEpochMonotonic ==
    /\ cg.epoch >= DurableConsumerEpoch
    /\ \A i, j \in 1..Len(log) : i < j => log[i].epoch <= log[j].epoch
    /\ \A c \in Clients : cEpoch[c] <= DurableConsumerEpoch
=============================================================================
