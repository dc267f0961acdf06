//! ConsumerGroupHeartbeat (KIP-848): joining, leaving, fencing and reconciling one member per
//! call, and the tick that expires members whose session ended or whose revocation took longer
//! than their rebalance timeout.
//!
//! A heartbeat that changes what is stored (membership, subscriptions, epochs, assignments) is
//! answered once the group's record is durable, as Kafka's new coordinator answers after its
//! records commit; one that changes nothing is answered at once.
//!
//! A subscription regex (v1) is compiled when a member sends a new one: one that does not
//! compile gets INVALID_REGULAR_EXPRESSION and changes nothing (Kafka's
//! `throwIfRegularExpressionIsInvalid`), checked where Kafka checks it: after the member's epoch.

use crate::api::{ConsumerGroupHeartbeat, ConsumerGroupHeartbeatResponse, Response, Token};
use crate::assignor::{ServerAssignor, TopicPartitions};
use crate::consumer_group::{ConsumerGroup, ConsumerMember, MemberState, compile_topic_regex};
use crate::coordinator::{Coordinator, PendingWrite};
use crate::error::{self, ErrorCode};
use crate::group::Group;
use crate::records::OffsetsRecord;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// KIP-848: `member_epoch` values with a meaning of their own.
const JOIN_EPOCH: i32 = 0;
const LEAVE_EPOCH: i32 = -1;
const STATIC_LEAVE_EPOCH: i32 = -2;
/// Topics one subscription may name (bounds the request, as `group.max.size` bounds members).
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;

/// Why a heartbeat is refused: Kafka's error code and message.
type Refusal = (ErrorCode, Cow<'static, str>);

/// The heartbeat's regex: `None` unchanged, `Some(None)` none (KIP-848: an empty regex is
/// none), `Some(Some(_))` a regex that compiles.
fn checked_regex(regex: Option<&str>) -> Result<Option<Option<String>>, Refusal> {
    match regex {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(pattern) => match compile_topic_regex(pattern) {
            Ok(_) => Ok(Some(Some(pattern.to_owned()))),
            Err(message) => Err((error::INVALID_REGULAR_EXPRESSION, message.into())),
        },
    }
}

impl Coordinator {
    pub(crate) fn consumer_heartbeat(&mut self, token: Token, heartbeat: ConsumerGroupHeartbeat) {
        match self.try_consumer_heartbeat(heartbeat) {
            Ok((response, changed_group)) => match changed_group {
                Some(group_id) => {
                    let record = self.consumer_record(&group_id);
                    self.persist(vec![record], PendingWrite::ConsumerHeartbeat { token, response });
                }
                None => self.respond(token, Response::ConsumerHeartbeat(response)),
            },
            Err((code, message)) => {
                let response = ConsumerGroupHeartbeatResponse::error(code, &message);
                self.respond(token, Response::ConsumerHeartbeat(response));
            }
        }
    }

    /// The answer, and the group whose record must be written first (if anything changed).
    fn try_consumer_heartbeat(
        &mut self,
        hb: ConsumerGroupHeartbeat,
    ) -> Result<(ConsumerGroupHeartbeatResponse, Option<String>), Refusal> {
        if hb.group_id.is_empty() {
            return Err((error::INVALID_GROUP_ID, "the group id is empty".into()));
        }
        if hb.subscribed_topic_names.as_ref().is_some_and(|t| t.len() > SUBSCRIBED_TOPICS_MAX) {
            return Err((error::INVALID_REQUEST, "too many subscribed topics".into()));
        }
        if let Some(name) = &hb.server_assignor
            && ServerAssignor::parse(name).is_none()
        {
            return Err((error::UNSUPPORTED_ASSIGNOR, "the assignors are uniform and range".into()));
        }
        let joining = hb.member_epoch == JOIN_EPOCH;
        // Kafka 4.x: a joining member sends names or a regex (either may be empty: subscribed
        // to nothing, yet a member).
        let no_subscription = hb.subscribed_topic_names.is_none() && hb.subscribed_topic_regex.is_none();
        if joining && (no_subscription || hb.rebalance_timeout_ms <= 0) {
            return Err((
                error::INVALID_REQUEST,
                "a joining member sends its subscription and rebalance timeout".into(),
            ));
        }
        let regex = checked_regex(hb.subscribed_topic_regex.as_deref());
        if joining && let Err(refusal) = &regex {
            return Err(refusal.clone()); // before the group or the member exists
        }
        if !joining && hb.member_id.is_empty() {
            return Err((error::UNKNOWN_MEMBER_ID, "only a joining member has no id".into()));
        }
        let now_ms = self.now.monotonic_ms;
        if !self.groups.contains_key(&hb.group_id) {
            if !joining {
                return Err((error::UNKNOWN_MEMBER_ID, "no such group".into()));
            }
            if self.groups.len() >= self.config.groups_max {
                return Err((error::COORDINATOR_NOT_AVAILABLE, "this coordinator holds its most groups".into()));
            }
            self.groups.insert(hb.group_id.clone(), Group::new(&hb.group_id, self.now.wall_ms));
        }
        let group = self.groups.get_mut(&hb.group_id).expect("inserted above");
        if group.consumer.is_none() {
            if !group.is_empty() {
                return Err((error::GROUP_ID_NOT_FOUND, "the group is a classic group with members".into()));
            }
            if !joining {
                return Err((error::UNKNOWN_MEMBER_ID, "no such member".into()));
            }
            // An empty classic group becomes a consumer group (KIP-848), keeping its offsets.
            group.consumer = Some(ConsumerGroup::default());
            group.protocol_type = Some("consumer".to_owned());
            group.protocol_name = None;
            group.generation_id = 0;
        }
        let size_max = self.config.group_size_max;
        let session_ms = i64::from(self.config.consumer_session_timeout_ms);
        let interval_ms = self.config.consumer_heartbeat_interval_ms;
        let wall_ms = self.now.wall_ms;
        let group = self.groups.get_mut(&hb.group_id).expect("exists");
        let consumer = group.consumer.as_mut().expect("a consumer group");
        let member_id = if hb.member_id.is_empty() { hb.member_id_candidate.clone() } else { hb.member_id.clone() };
        assert!(!member_id.is_empty(), "the shell gives every joining member an id");

        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            if !consumer.remove_member(&member_id) {
                return Err((error::UNKNOWN_MEMBER_ID, "no such member".into()));
            }
            consumer.recompute(&hb.partition_counts);
            if consumer.members.is_empty() {
                group.state_timestamp_ms = wall_ms;
            }
            let response = ConsumerGroupHeartbeatResponse {
                error: error::NONE,
                error_message: None,
                member_id: Some(member_id),
                member_epoch: hb.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            };
            return Ok((response, Some(hb.group_id)));
        }

        let mut bump = false;
        if joining {
            if !consumer.members.contains_key(&member_id) && consumer.members.len() >= size_max {
                return Err((error::GROUP_MAX_SIZE_REACHED, "group.max.size".into()));
            }
            // A known member rejoining at epoch 0 starts over (it was fenced, or restarted).
            consumer.remove_member(&member_id);
            let member = ConsumerMember {
                member_id: member_id.clone(),
                instance_id: hb.instance_id.clone(),
                rack_id: hb.rack_id.clone(),
                client_id: hb.client_id.clone(),
                client_host: hb.client_host.clone(),
                member_epoch: 0,
                previous_member_epoch: -1,
                state: MemberState::Stable,
                subscribed_topics: BTreeSet::new(),
                subscribed_topic_regex: None,
                server_assignor: None,
                rebalance_timeout_ms: hb.rebalance_timeout_ms,
                assigned: TopicPartitions::new(),
                pending_revocation: TopicPartitions::new(),
                session_deadline_ms: 0,
                revocation_deadline_ms: None,
            };
            consumer.members.insert(member_id.clone(), member);
            bump = true;
        }
        let Some(member) = consumer.members.get_mut(&member_id) else {
            return Err((error::UNKNOWN_MEMBER_ID, "no such member".into()));
        };
        if !joining {
            // Kafka's `throwIfMemberEpochIsInvalid`: ahead is fenced; behind only as the
            // previous epoch of a member whose answer was lost, owning nothing it must not.
            let owned_ok = hb.owned.as_ref().is_some_and(|owned| {
                owned.iter().all(|(t, set)| set.iter().all(|p| member.assigned.get(t).is_some_and(|s| s.contains(p))))
            });
            let valid =
                hb.member_epoch == member.member_epoch || (hb.member_epoch == member.previous_member_epoch && owned_ok);
            if !valid {
                return Err((error::FENCED_MEMBER_EPOCH, "the member epoch is not the member's".into()));
            }
        }
        let regex = regex?;
        member.session_deadline_ms = now_ms + session_ms;
        if hb.rebalance_timeout_ms > 0 {
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if let Some(topics) = &hb.subscribed_topic_names {
            let topics: BTreeSet<String> = topics.iter().cloned().collect();
            if topics != member.subscribed_topics {
                member.subscribed_topics = topics;
                bump = true;
            }
        }
        if let Some(regex) = regex
            && regex != member.subscribed_topic_regex
        {
            member.subscribed_topic_regex = regex;
            bump = true;
        }
        if hb.server_assignor.is_some() && hb.server_assignor != member.server_assignor {
            member.server_assignor = hb.server_assignor.clone();
            bump = true;
        }
        // KIP-848: a subscribed topic's partition count changing bumps the group epoch too, and
        // so does a topic appearing or going away that a member's regex matches.
        if bump || consumer.subscribed_counts(&hb.partition_counts) != consumer.partition_counts {
            consumer.recompute(&hb.partition_counts);
            bump = true;
        }
        let assigned_before = consumer.members[&member_id].assigned.clone();
        let reconciled = consumer.reconcile(&member_id, hb.owned.as_ref(), now_ms);
        let member = &consumer.members[&member_id];
        let reported_differs = hb.owned.as_ref().is_some_and(|owned| *owned != member.assigned);
        let send_assignment = joining || member.assigned != assigned_before || reported_differs;
        let response = ConsumerGroupHeartbeatResponse {
            error: error::NONE,
            error_message: None,
            member_id: Some(member_id.clone()),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: interval_ms,
            assignment: send_assignment.then(|| member.assigned.clone()),
        };
        let changed = (bump || reconciled).then_some(hb.group_id);
        Ok((response, changed))
    }

    /// The consumer group's record as of now.
    pub(crate) fn consumer_record(&self, group_id: &str) -> OffsetsRecord {
        let value = self.groups.get(group_id).and_then(|g| g.consumer.clone());
        assert!(value.is_some(), "group {group_id} is a consumer group");
        OffsetsRecord::ConsumerGroup { group_id: group_id.to_owned(), value }
    }

    /// Members whose session ended, or whose revocation outlived their rebalance timeout, are
    /// removed and the group's target is recomputed (KIP-848). Returns the record to write.
    pub(crate) fn expire_consumer_members(&mut self, group_id: &str, now_ms: i64) -> Option<OffsetsRecord> {
        let wall_ms = self.now.wall_ms;
        let group = self.groups.get_mut(group_id)?;
        let consumer = group.consumer.as_mut()?;
        let expired: Vec<String> = consumer
            .members
            .values()
            .filter(|m| now_ms >= m.session_deadline_ms || m.revocation_deadline_ms.is_some_and(|d| now_ms >= d))
            .map(|m| m.member_id.clone())
            .collect();
        if expired.is_empty() {
            return None;
        }
        for member_id in &expired {
            consumer.remove_member(member_id);
        }
        let counts = consumer.partition_counts.clone();
        consumer.recompute(&counts);
        if consumer.members.is_empty() {
            group.state_timestamp_ms = wall_ms;
        }
        Some(self.consumer_record(group_id))
    }
}
