//! `sluice group list|describe|seek|delete`: consumer group administration over ListGroups,
//! ConsumerGroupDescribe, DescribeGroups, OffsetFetch, ListOffsets, OffsetCommit and
//! DeleteGroups, shaped like `kafka-consumer-groups` (whose `--reset-offsets` is `seek`,
//! KIP-122) and rpk's `group`.
//!
//! Groups are of two types (KIP-848): `classic` and `consumer`. `describe` and `seek` ask
//! ConsumerGroupDescribe first and DescribeGroups for a classic group, as Kafka 4's Admin does
//! (`Client::describe_any_group`); a consumer group shows its group and assignment epochs and
//! each member's epoch, assignment and target assignment.
//!
//! `seek` prints its plan and commits nothing unless given `--execute`; like Kafka's tool it
//! refuses a group that has members (the coordinator would refuse the commit anyway,
//! UNKNOWN_MEMBER_ID), because a live consumer would overwrite the new offsets.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::{
    Client, ClientError, CommitOutcome, CommittedOffset, ConsumerGroupDescription, DescribedGroup, GroupDescription,
    GroupMember, GroupOutcome, GroupType, KafkaError, NamedPartitions, Offset, OffsetSpec, PartitionId, PlannedSeek,
    SeekTarget,
};

use super::{OutputFormat, error_json, fail_on_errors, print_json, print_table, status, table};

/// Kafka protocol: GROUP_ID_NOT_FOUND, DescribeGroups v6's answer for an unknown group.
const GROUP_ID_NOT_FOUND: i16 = sluice_protocol::error_code::GROUP_ID_NOT_FOUND;
/// The states in which `seek` may move a group's offsets (Kafka's `ResetOffsetsCommand`); both
/// group types name them alike.
const SEEKABLE_STATES: [&str; 2] = ["Empty", "Dead"];
/// The narrowest label column of `group describe`'s header lines (a classic group's, as before
/// KIP-848); longer labels widen it.
const FIELD_LABEL_WIDTH_MIN: usize = 16;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the cluster's consumer groups.
    List,
    /// Show a group's state, members and, per partition, committed offset, log end and lag.
    Describe { group: String },
    /// Move a group's committed offsets (kafka-consumer-groups --reset-offsets).
    ///
    /// Prints the plan; --execute commits it. The group must have no members.
    Seek(SeekArgs),
    /// Delete groups and their committed offsets (they must have no members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct SeekArgs {
    group: String,
    /// Where to: start, end, timestamp:<ms since the epoch>, or an offset.
    #[arg(long, value_name = "start|end|timestamp:MS|OFFSET", value_parser = parse_seek_target)]
    to: SeekTarget,
    /// Move every partition of this topic (default: every partition the group has committed).
    #[arg(long)]
    topic: Option<String>,
    /// Commit the new offsets; without it only the plan is printed.
    #[arg(long)]
    execute: bool,
}

pub async fn run(client: &mut Client, command: GroupCommand, format: OutputFormat) -> anyhow::Result<()> {
    match command {
        GroupCommand::List => list(client, format).await,
        GroupCommand::Describe { group } => describe(client, &group, format).await,
        GroupCommand::Seek(args) => seek(client, args, format).await,
        GroupCommand::Delete { groups } => {
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            let outcomes = client.delete_groups(&groups).await?;
            report_deletions(&outcomes, format)
        }
    }
}

/// Parses `--to`: `start`, `end`, `timestamp:<ms>` or a non-negative offset.
fn parse_seek_target(text: &str) -> Result<SeekTarget, String> {
    match text {
        "start" => return Ok(SeekTarget::Start),
        "end" => return Ok(SeekTarget::End),
        _ => {}
    }
    if let Some(timestamp) = text.strip_prefix("timestamp:") {
        let timestamp_ms = timestamp.parse::<i64>().map_err(|_| format!("bad timestamp (ms) in {text:?}"))?;
        if timestamp_ms < 0 {
            return Err(format!("timestamp must not be negative: {text:?}"));
        }
        return Ok(SeekTarget::Timestamp(timestamp_ms));
    }
    match text.parse::<i64>() {
        Ok(offset) if offset >= 0 => Ok(SeekTarget::Offset(Offset(offset))),
        _ => Err(format!("expected start, end, timestamp:<ms> or an offset >= 0, got {text:?}")),
    }
}

async fn list(client: &mut Client, format: OutputFormat) -> anyhow::Result<()> {
    let groups = client.list_groups().await?;
    match format {
        OutputFormat::Text => {
            let mut rows = table(&["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"]);
            for group in &groups {
                let state = optional(group.state.as_ref());
                // ListGroups v5+ names the type (KIP-848); older brokers only have classic groups.
                let group_type = optional(group.group_type.as_ref().filter(|name| !name.is_empty()));
                rows.add_row(vec![group.group_id.clone(), group_type, state, group.protocol_type.clone()]);
            }
            print_table(&rows);
        }
        OutputFormat::Json => {
            let items: Vec<_> = groups
                .iter()
                .map(|group| {
                    json!({
                        "group": group.group_id,
                        "group_type": group.group_type,
                        "state": group.state,
                        "protocol_type": group.protocol_type,
                    })
                })
                .collect();
            print_json(&json!(items));
        }
    }
    Ok(())
}

/// One partition of `group describe`: what the group committed, the log end, the lag and
/// the member it is assigned to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OffsetRow {
    topic: String,
    partition: PartitionId,
    committed: Option<Offset>,
    log_end: Option<Offset>,
    /// Log end minus committed (Kafka's `getLag`), `None` when either is unknown.
    lag: Option<i64>,
    member_id: Option<String>,
    error: Option<KafkaError>,
}

type OffsetRows = BTreeMap<(String, PartitionId), OffsetRow>;

/// The row of `topic`'s `partition`, added with its log end if absent.
fn row_of<'a>(
    rows: &'a mut OffsetRows,
    log_ends: &BTreeMap<(String, PartitionId), Offset>,
    topic: &str,
    partition: PartitionId,
) -> &'a mut OffsetRow {
    let key = (topic.to_owned(), partition);
    let log_end = log_ends.get(&key).copied();
    rows.entry(key).or_insert_with(|| OffsetRow {
        topic: topic.to_owned(),
        partition,
        committed: None,
        log_end,
        lag: None,
        member_id: None,
        error: None,
    })
}

/// The partitions a group committed or its members hold (`assigned`: member id, topic,
/// partition, as `DescribedGroup::assigned` lists them), each once, sorted.
fn offset_rows(
    committed: &[CommittedOffset],
    assigned: &[(&str, &str, PartitionId)],
    log_ends: &BTreeMap<(String, PartitionId), Offset>,
) -> Vec<OffsetRow> {
    let mut rows = OffsetRows::new();
    for entry in committed {
        let row = row_of(&mut rows, log_ends, &entry.topic, entry.partition);
        row.committed = entry.offset;
        row.error = entry.error.clone();
    }
    for (member_id, topic, partition) in assigned {
        row_of(&mut rows, log_ends, topic, *partition).member_id = Some((*member_id).to_owned());
    }
    let mut rows: Vec<OffsetRow> = rows.into_values().collect();
    for row in &mut rows {
        row.lag = match (row.committed, row.log_end) {
            (Some(committed), Some(log_end)) => Some(log_end.0 - committed.0),
            _ => None,
        };
    }
    rows
}

/// `orders[0,2] payments[1]`, or `-` for no topics.
fn topics_text<'a, P: ToString>(topics: impl IntoIterator<Item = (&'a String, impl IntoIterator<Item = P>)>) -> String {
    let topics: Vec<String> = topics
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions: Vec<String> = partitions.into_iter().map(|partition| partition.to_string()).collect();
            format!("{topic}[{}]", partitions.join(","))
        })
        .collect();
    if topics.is_empty() { "-".to_owned() } else { topics.join(" ") }
}

/// A classic member's decoded assignment as [`topics_text`], or `-` when it has none.
fn assignment_text(member: &GroupMember) -> String {
    let Some(assignment) = &member.assignment else { return "-".to_owned() };
    topics_text(assignment.partitions.iter().map(|(topic, partitions)| (topic, partitions)))
}

/// The log end of every partition in `partitions`, where ListOffsets answers; a topic that
/// fails is left out (shown as `-`) rather than failing the describe.
async fn log_ends(
    client: &mut Client,
    partitions: &[(String, PartitionId)],
) -> BTreeMap<(String, PartitionId), Offset> {
    let mut by_topic: BTreeMap<&str, Vec<PartitionId>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let mut ends = BTreeMap::new();
    for (topic, partitions) in by_topic {
        let listed = client.list_offsets(topic, &partitions, OffsetSpec::Latest).await.unwrap_or_default();
        for answer in listed {
            if let Some(offset) = answer.offset.filter(|_| answer.error.is_none()) {
                ends.insert((topic.to_owned(), answer.partition), offset);
            }
        }
    }
    ends
}

async fn describe(client: &mut Client, group: &str, format: OutputFormat) -> anyhow::Result<()> {
    let description = client.describe_any_group(group).await?;
    let committed = client.fetch_committed_offsets(group, None).await?;
    let assigned = description.assigned();
    let mut partitions: Vec<(String, PartitionId)> = committed.iter().map(|c| (c.topic.clone(), c.partition)).collect();
    partitions.extend(assigned.iter().map(|(_, topic, partition)| ((*topic).to_owned(), *partition)));
    let ends = log_ends(client, &partitions).await;
    let rows = offset_rows(&committed, &assigned, &ends);
    match (format, &description) {
        (OutputFormat::Text, DescribedGroup::Classic(classic)) => print_description(classic, &rows),
        (OutputFormat::Text, DescribedGroup::Consumer(consumer)) => print_consumer_description(consumer, &rows),
        (OutputFormat::Json, DescribedGroup::Classic(classic)) => print_json(&describe_json(classic, &rows)),
        (OutputFormat::Json, DescribedGroup::Consumer(consumer)) => {
            print_json(&consumer_describe_json(consumer, &rows));
        }
    }
    Ok(())
}

fn optional(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// `LABEL  value` lines, the values aligned past the longest label (at least
/// `FIELD_LABEL_WIDTH_MIN` wide).
fn fields_text(fields: &[(&str, String)]) -> String {
    let longest = fields.iter().map(|(label, _)| label.len() + 2).max().unwrap_or(0);
    let width = longest.max(FIELD_LABEL_WIDTH_MIN);
    fields.iter().map(|(label, value)| format!("{label:<width$}{value}\n")).collect()
}

fn classic_fields(description: &GroupDescription) -> String {
    fields_text(&[
        ("GROUP", description.group_id.clone()),
        ("TYPE", GroupType::Classic.name().to_owned()),
        ("STATE", description.state.clone()),
        ("PROTOCOL-TYPE", description.protocol_type.clone()),
        ("PROTOCOL", description.protocol.clone()),
        ("MEMBERS", description.members.len().to_string()),
    ])
}

fn print_description(description: &GroupDescription, rows: &[OffsetRow]) {
    print!("{}", classic_fields(description));
    println!();
    let mut members = table(&["MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
    for member in &description.members {
        members.add_row(vec![
            member.member_id.clone(),
            optional(member.group_instance_id.as_ref()),
            member.client_id.clone(),
            member.client_host.clone(),
            assignment_text(member),
        ]);
    }
    print_table(&members);
    println!();
    print_offsets(rows);
}

/// KIP-848: the group and assignment epochs, and per member its epoch, what it holds now and
/// what it is moving towards.
fn consumer_fields(description: &ConsumerGroupDescription) -> String {
    fields_text(&[
        ("GROUP", description.group_id.clone()),
        ("TYPE", GroupType::Consumer.name().to_owned()),
        ("STATE", description.state.clone()),
        ("GROUP-EPOCH", description.group_epoch.to_string()),
        ("ASSIGNMENT-EPOCH", description.assignment_epoch.to_string()),
        ("ASSIGNOR", description.assignor_name.clone()),
        ("MEMBERS", description.members.len().to_string()),
    ])
}

fn print_consumer_description(description: &ConsumerGroupDescription, rows: &[OffsetRow]) {
    print!("{}", consumer_fields(description));
    println!();
    let header = ["MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "MEMBER-EPOCH", "ASSIGNMENT", "TARGET-ASSIGNMENT"];
    let mut members = table(&header);
    for member in &description.members {
        members.add_row(vec![
            member.member_id.clone(),
            optional(member.instance_id.as_ref()),
            member.client_id.clone(),
            member.client_host.clone(),
            member.member_epoch.to_string(),
            topics_text(&member.assignment),
            topics_text(&member.target_assignment),
        ]);
    }
    print_table(&members);
    println!();
    print_offsets(rows);
}

fn print_offsets(rows: &[OffsetRow]) {
    let header = ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID", "STATUS"];
    let mut offsets = table(&header);
    for row in rows {
        offsets.add_row(vec![
            row.topic.clone(),
            row.partition.to_string(),
            optional(row.committed),
            optional(row.log_end),
            optional(row.lag),
            optional(row.member_id.as_ref()),
            status(row.error.as_ref()),
        ]);
    }
    print_table(&offsets);
}

fn describe_json(description: &GroupDescription, rows: &[OffsetRow]) -> serde_json::Value {
    let members: Vec<_> = description
        .members
        .iter()
        .map(|member| {
            let assignment = member.assignment.as_ref().map(|assignment| {
                let topics: Vec<_> = assignment
                    .partitions
                    .iter()
                    .map(|(topic, partitions)| {
                        json!({"topic": topic, "partitions": partitions.iter().map(|p| p.0).collect::<Vec<_>>()})
                    })
                    .collect();
                json!({"version": assignment.version, "topics": topics})
            });
            json!({
                "member_id": member.member_id,
                "group_instance_id": member.group_instance_id,
                "client_id": member.client_id,
                "client_host": member.client_host,
                "assignment": assignment,
            })
        })
        .collect();
    json!({
        "group": description.group_id,
        "group_type": GroupType::Classic.name(),
        "state": description.state,
        "protocol_type": description.protocol_type,
        "protocol": description.protocol,
        "members": members,
        "offsets": offsets_json(rows),
    })
}

/// `{"topics": [{"topic", "partitions"}]}`, shaped as a classic member's decoded assignment.
fn partitions_json(partitions: &NamedPartitions) -> serde_json::Value {
    let topics: Vec<_> =
        partitions.iter().map(|(topic, partitions)| json!({"topic": topic, "partitions": partitions})).collect();
    json!({"topics": topics})
}

fn consumer_describe_json(description: &ConsumerGroupDescription, rows: &[OffsetRow]) -> serde_json::Value {
    let members: Vec<_> = description
        .members
        .iter()
        .map(|member| {
            json!({
                "member_id": member.member_id,
                "group_instance_id": member.instance_id,
                "rack_id": member.rack_id,
                "member_epoch": member.member_epoch,
                "client_id": member.client_id,
                "client_host": member.client_host,
                "subscribed_topics": member.subscribed_topic_names,
                "subscribed_topic_regex": member.subscribed_topic_regex,
                "assignment": partitions_json(&member.assignment),
                "target_assignment": partitions_json(&member.target_assignment),
            })
        })
        .collect();
    json!({
        "group": description.group_id,
        "group_type": GroupType::Consumer.name(),
        "state": description.state,
        "group_epoch": description.group_epoch,
        "assignment_epoch": description.assignment_epoch,
        "assignor": description.assignor_name,
        "members": members,
        "offsets": offsets_json(rows),
    })
}

fn offsets_json(rows: &[OffsetRow]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|row| {
            json!({
                "topic": row.topic,
                "partition": row.partition.0,
                "committed_offset": row.committed.map(|offset| offset.0),
                "log_end_offset": row.log_end.map(|offset| offset.0),
                "lag": row.lag,
                "member_id": row.member_id,
                "error": error_json(row.error.as_ref()),
            })
        })
        .collect()
}

/// The group's state, of either type (KIP-848); an unknown group is `Dead` (DescribeGroups v6
/// answers GROUP_ID_NOT_FOUND where older versions answer Dead).
async fn group_state(client: &mut Client, group: &str) -> anyhow::Result<String> {
    match client.describe_any_group(group).await {
        Ok(description) => Ok(description.state().to_owned()),
        Err(ClientError::Kafka { error, .. }) if error.code == GROUP_ID_NOT_FOUND => Ok("Dead".to_owned()),
        Err(error) => Err(error.into()),
    }
}

async fn seek(client: &mut Client, args: SeekArgs, format: OutputFormat) -> anyhow::Result<()> {
    let state = group_state(client, &args.group).await?;
    if !SEEKABLE_STATES.contains(&state.as_str()) {
        anyhow::bail!("offsets can only be moved while group {} has no members, but its state is {state}", args.group);
    }
    let plan = client.plan_seek(&args.group, args.to, args.topic.as_deref()).await?;
    if plan.is_empty() {
        match &args.topic {
            Some(topic) => anyhow::bail!("topic {topic} has no partitions"),
            None => anyhow::bail!("group {} has no committed offsets to move: name one with --topic", args.group),
        }
    }
    let outcomes = if args.execute {
        let offsets: Vec<_> = plan.iter().map(|seek| (seek.topic.clone(), seek.partition, seek.new)).collect();
        Some(client.commit_offsets(&args.group, &offsets).await?)
    } else {
        None
    };
    print_plan(&args.group, &plan, outcomes.as_deref(), format);
    let Some(outcomes) = &outcomes else {
        eprintln!("dry run: nothing committed; add --execute to move group {}", args.group);
        return Ok(());
    };
    let names: Vec<String> =
        outcomes.iter().map(|outcome| format!("{}-{}", outcome.topic, outcome.partition)).collect();
    fail_on_errors("seek", names.iter().map(String::as_str).zip(outcomes.iter().map(|outcome| outcome.error.as_ref())))
}

/// The commit outcome of `seek`'s partition, when the plan was executed.
fn outcome_of<'a>(outcomes: &'a [CommitOutcome], seek: &PlannedSeek) -> Option<&'a CommitOutcome> {
    outcomes.iter().find(|outcome| outcome.topic == seek.topic && outcome.partition == seek.partition)
}

fn print_plan(group: &str, plan: &[PlannedSeek], outcomes: Option<&[CommitOutcome]>, format: OutputFormat) {
    let error_of = |seek: &PlannedSeek| {
        let outcome = outcomes.and_then(|outcomes| outcome_of(outcomes, seek));
        outcome.and_then(|outcome| outcome.error.clone())
    };
    match format {
        OutputFormat::Text => {
            let mut header = vec!["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"];
            if outcomes.is_some() {
                header.push("STATUS");
            }
            let mut rows = table(&header);
            for seek in plan {
                let mut row =
                    vec![seek.topic.clone(), seek.partition.to_string(), optional(seek.current), seek.new.to_string()];
                if outcomes.is_some() {
                    row.push(status(error_of(seek).as_ref()));
                }
                rows.add_row(row);
            }
            print_table(&rows);
        }
        OutputFormat::Json => {
            let partitions: Vec<_> = plan
                .iter()
                .map(|seek| {
                    json!({
                        "topic": seek.topic,
                        "partition": seek.partition.0,
                        "current_offset": seek.current.map(|offset| offset.0),
                        "new_offset": seek.new.0,
                        "error": error_json(error_of(seek).as_ref()),
                    })
                })
                .collect();
            print_json(&json!({"group": group, "executed": outcomes.is_some(), "partitions": partitions}));
        }
    }
}

/// Prints a GROUP / STATUS table (or JSON) and fails if any group failed.
fn report_deletions(outcomes: &[GroupOutcome], format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Text => {
            let mut rows = table(&["GROUP", "STATUS"]);
            for (group, result) in outcomes {
                rows.add_row(vec![group.clone(), status(result.as_ref().err())]);
            }
            print_table(&rows);
        }
        OutputFormat::Json => {
            let items: Vec<_> = outcomes
                .iter()
                .map(|(group, result)| json!({"group": group, "error": error_json(result.as_ref().err())}))
                .collect();
            print_json(&json!(items));
        }
    }
    fail_on_errors("delete groups", outcomes.iter().map(|(group, result)| (group.as_str(), result.as_ref().err())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_client::{ConsumerAssignment, ConsumerGroupMember};

    #[test]
    fn seek_targets_parse_as_kafka_consumer_groups_names_them() {
        assert_eq!(parse_seek_target("start"), Ok(SeekTarget::Start));
        assert_eq!(parse_seek_target("end"), Ok(SeekTarget::End));
        assert_eq!(parse_seek_target("timestamp:1700000000000"), Ok(SeekTarget::Timestamp(1_700_000_000_000)));
        assert_eq!(parse_seek_target("42"), Ok(SeekTarget::Offset(Offset(42))));
        for bad in ["-1", "timestamp:", "timestamp:-5", "earliest", "", "1.5"] {
            assert!(parse_seek_target(bad).is_err(), "{bad:?} parsed");
        }
    }

    fn member(id: &str, partitions: Vec<(String, Vec<PartitionId>)>) -> GroupMember {
        GroupMember {
            member_id: id.to_owned(),
            group_instance_id: None,
            client_id: "c".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            assignment_bytes: Default::default(),
            assignment: Some(ConsumerAssignment { version: 0, partitions, user_data: None }),
        }
    }

    fn committed(topic: &str, partition: i32, offset: Option<i64>) -> CommittedOffset {
        CommittedOffset {
            topic: topic.to_owned(),
            partition: PartitionId(partition),
            offset: offset.map(Offset),
            leader_epoch: None,
            metadata: None,
            error: None,
        }
    }

    fn classic_group(members: Vec<GroupMember>) -> GroupDescription {
        GroupDescription {
            group_id: "billing".to_owned(),
            state: "Stable".to_owned(),
            protocol_type: "consumer".to_owned(),
            protocol: "range".to_owned(),
            members,
        }
    }

    fn named(topics: &[(&str, &[i32])]) -> NamedPartitions {
        topics.iter().map(|(topic, partitions)| ((*topic).to_owned(), partitions.iter().copied().collect())).collect()
    }

    /// A KIP-848 group mid-rebalance: m1 still holds t-2, which m2's target wants.
    fn consumer_group() -> ConsumerGroupDescription {
        let member = |id: &str, epoch: i32, assignment: NamedPartitions, target: NamedPartitions| ConsumerGroupMember {
            member_id: id.to_owned(),
            instance_id: None,
            rack_id: Some("r1".to_owned()),
            member_epoch: epoch,
            client_id: "c".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            subscribed_topic_names: vec!["t".to_owned()],
            subscribed_topic_regex: None,
            assignment,
            target_assignment: target,
        };
        ConsumerGroupDescription {
            group_id: "orders".to_owned(),
            state: "Reconciling".to_owned(),
            group_epoch: 3,
            assignment_epoch: 3,
            assignor_name: "uniform".to_owned(),
            members: vec![
                member("m1", 2, named(&[("t", &[1, 2])]), named(&[("t", &[1])])),
                member("m2", 3, named(&[]), named(&[("t", &[2])])),
            ],
        }
    }

    fn ends() -> BTreeMap<(String, PartitionId), Offset> {
        [
            (("t".to_owned(), PartitionId(0)), Offset(10)),
            (("t".to_owned(), PartitionId(1)), Offset(4)),
            (("t".to_owned(), PartitionId(2)), Offset(0)),
        ]
        .into()
    }

    type RowSummary<'a> = (i32, Option<Offset>, Option<Offset>, Option<i64>, Option<&'a str>);

    fn summary(rows: &[OffsetRow]) -> Vec<RowSummary<'_>> {
        rows.iter().map(|r| (r.partition.0, r.committed, r.log_end, r.lag, r.member_id.as_deref())).collect()
    }

    #[test]
    fn rows_join_commits_assignments_and_log_ends_with_lag() {
        let commits = [committed("t", 0, Some(7)), committed("t", 1, None)];
        let members = vec![member("m1", vec![("t".to_owned(), vec![PartitionId(1), PartitionId(2)])])];
        let group = DescribedGroup::Classic(classic_group(members));
        let rows = offset_rows(&commits, &group.assigned(), &ends());
        assert_eq!(
            summary(&rows),
            vec![
                (0, Some(Offset(7)), Some(Offset(10)), Some(3), None),
                (1, None, Some(Offset(4)), None, Some("m1")),
                (2, None, Some(Offset(0)), None, Some("m1")),
            ]
        );
    }

    #[test]
    fn a_consumer_groups_rows_name_who_holds_each_partition_now() {
        let commits = [committed("t", 0, Some(7)), committed("t", 1, Some(1))];
        let group = DescribedGroup::Consumer(consumer_group());
        let rows = offset_rows(&commits, &group.assigned(), &ends());
        assert_eq!(
            summary(&rows),
            vec![
                (0, Some(Offset(7)), Some(Offset(10)), Some(3), None),
                (1, Some(Offset(1)), Some(Offset(4)), Some(3), Some("m1")),
                (2, None, Some(Offset(0)), None, Some("m1")),
            ],
            "t-2 is m1's until it revokes it, though m2's target has it"
        );
    }

    #[test]
    fn a_classic_group_prints_as_before_plus_its_type() {
        let fields = classic_fields(&classic_group(vec![member("m", vec![])]));
        let expected = "GROUP           billing\n\
                        TYPE            classic\n\
                        STATE           Stable\n\
                        PROTOCOL-TYPE   consumer\n\
                        PROTOCOL        range\n\
                        MEMBERS         1\n";
        assert_eq!(fields, expected);
        let json = describe_json(&classic_group(Vec::new()), &[]);
        assert_eq!((json["group_type"].as_str(), json["protocol"].as_str()), (Some("classic"), Some("range")));
    }

    #[test]
    fn a_consumer_group_prints_its_epochs_assignor_and_both_assignments() {
        let group = consumer_group();
        let expected = "GROUP             orders\n\
                        TYPE              consumer\n\
                        STATE             Reconciling\n\
                        GROUP-EPOCH       3\n\
                        ASSIGNMENT-EPOCH  3\n\
                        ASSIGNOR          uniform\n\
                        MEMBERS           2\n";
        assert_eq!(consumer_fields(&group), expected);
        let m1 = &group.members[0];
        assert_eq!((topics_text(&m1.assignment), topics_text(&m1.target_assignment)), ("t[1,2]".into(), "t[1]".into()));
        assert_eq!(topics_text(&group.members[1].assignment), "-");

        let json = consumer_describe_json(&group, &[]);
        assert_eq!(json["group_type"], "consumer");
        assert_eq!((json["group_epoch"].as_i64(), json["assignment_epoch"].as_i64()), (Some(3), Some(3)));
        assert_eq!(json["assignor"], "uniform");
        let m1 = &json["members"][0];
        assert_eq!((m1["member_epoch"].as_i64(), m1["rack_id"].as_str()), (Some(2), Some("r1")));
        assert_eq!(m1["assignment"], json!({"topics": [{"topic": "t", "partitions": [1, 2]}]}));
        assert_eq!(m1["target_assignment"], json!({"topics": [{"topic": "t", "partitions": [1]}]}));
        assert_eq!(m1["subscribed_topics"], json!(["t"]));
        assert_eq!(json["members"][1]["assignment"], json!({"topics": []}));
    }

    #[test]
    fn an_unknown_log_end_leaves_the_lag_unknown() {
        let rows = offset_rows(&[committed("t", 0, Some(3))], &[], &BTreeMap::new());
        assert_eq!((rows[0].log_end, rows[0].lag), (None, None));
    }

    #[test]
    fn assignments_print_per_topic() {
        let both = member("m", vec![("a".to_owned(), vec![PartitionId(0), PartitionId(2)]), ("b".to_owned(), vec![])]);
        assert_eq!(assignment_text(&both), "a[0,2] b[]");
        assert_eq!(assignment_text(&member("m", vec![])), "-");
        let undecoded = GroupMember { assignment: None, ..member("m", vec![]) };
        assert_eq!(assignment_text(&undecoded), "-");
    }
}
