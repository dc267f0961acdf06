------------------------- MODULE MCGroupCoordinator -------------------------
(* Model-checking wrapper of GroupCoordinator: bounds on what TLC explores. *)
EXTENDS GroupCoordinator

CONSTANTS
    MaxGen,   \* generations formed
    MaxLog    \* records in the log

MCConstraint == grp.gen <= MaxGen /\ Len(log) <= MaxLog

(* KIP-848 (ConsumerSpec): the log bounds the group epochs too. *)
MCConsumerConstraint == Len(log) <= MaxLog
=============================================================================
