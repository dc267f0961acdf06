---------------------------- MODULE MCPartitionReplication ----------------------------
(***************************************************************************************)
(* Model-checking wrapper of PartitionReplication: small bounds so that TLC explores    *)
(* every behaviour within them in minutes (issue 7). Each .cfg looks at one concern:     *)
(* MCPartitionReplication.cfg (elections, step-downs, transfer), ...Crash.cfg,           *)
(* ...LogStart.cfg (acks=all, fetch, log start), ...Membership.cfg (learner promotion),  *)
(* ...Simulate.cfg (everything, for -simulate random walks), and the planted mutant      *)
(* ...CommitOldTerm.cfg (the current-term commit rule dropped: TLC must find a           *)
(* counterexample to CommittedNeverLost). specs/README.md has the table and timings.     *)
(***************************************************************************************)
EXTENDS PartitionReplication

CONSTANTS
    MaxTerm,        \* no replica goes past this term
    MaxOffset,      \* no log goes past this offset (log start movement frees room in a log)
    MaxMsgs,        \* no more than this many messages anyone can still act on
    MCBatchSizes,   \* offsets per producer batch
    MCFeatures      \* optional behaviours on (see PartitionReplication!NextWith)

\* Every single-server change (the "membership" feature turns proposing them on).
AllChanges == UNION {{[type |-> "add", node |-> n], [type |-> "promote", node |-> n],
                      [type |-> "remove", node |-> n]} : n \in Nodes}

MCNext == NextWith(MCBatchSizes, AllChanges, MCFeatures)
MCSpec == Init /\ [][MCNext]_vars

StateConstraint ==
    /\ \A i \in Nodes : currentTerm[i] <= MaxTerm /\ LastIdx(i) <= MaxOffset
    /\ \A m \in msgs : m.term <= MaxTerm     \* a pre-vote asks for the next term
    /\ Cardinality({m \in msgs : LiveMsg(m)}) <= MaxMsgs

Symmetry == Permutations(Nodes)
=========================================================================================
