//! `MetaState::apply` as a specification: what each command does, and the Kafka error code of
//! every refusal. Each refusal is also checked to change nothing but the applied index.

use sluice_meta::{Applied, MetaCommand, MetaState, TopicId, code, place_replicas};
use sluice_types::{NodeId, Offset, PartitionId};
use std::collections::BTreeMap;

struct Controller {
    state: MetaState,
    next_index: i64,
}

impl Controller {
    /// A cluster with brokers 1, 2 and 3 registered.
    fn new() -> Controller {
        let mut controller = Controller { state: MetaState::new(), next_index: 0 };
        for id in 1..=3 {
            controller.apply(register(id, "host")).expect("valid");
        }
        controller
    }

    fn apply(&mut self, command: MetaCommand) -> Result<Applied, i16> {
        let index = Offset(self.next_index);
        self.next_index += 2; // Entry indexes increase but need not be consecutive.
        let result = self.state.apply(index, &command).map_err(|error| error.kafka_error_code());
        assert_eq!(self.state.applied_index(), index);
        self.state.validate().expect("invariants hold after every command");
        result
    }

    /// Applies a command that must be refused; returns the code after checking that only the
    /// applied index moved.
    fn refused(&mut self, command: MetaCommand) -> i16 {
        let before = self.state.clone();
        let code = self.apply(command).expect_err("refused");
        assert_eq!(self.state.brokers(), before.brokers());
        assert_eq!(self.state.topics(), before.topics());
        assert_eq!(self.state.partitions_total(), before.partitions_total());
        code
    }
}

fn register(id: i32, host: &str) -> MetaCommand {
    MetaCommand::RegisterBroker {
        node_id: NodeId(id),
        kafka_host: host.to_string(),
        kafka_port: 9092,
        rpc_addr: format!("{host}:9093"),
        rack: None,
    }
}

fn replicas(ids: &[i32]) -> Vec<NodeId> {
    ids.iter().copied().map(NodeId).collect()
}

fn create(name: &str, id: u8, assignment: &[&[i32]]) -> MetaCommand {
    MetaCommand::CreateTopic {
        name: name.to_string(),
        topic_id: TopicId([id; 16]),
        assignment: assignment.iter().map(|ids| replicas(ids)).collect(),
        configs: BTreeMap::new(),
    }
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
}

#[test]
fn registering_again_updates_the_address_and_the_broker_epoch() {
    let mut controller = Controller::new();
    let applied = controller.apply(register(2, "moved")).expect("valid");
    assert_eq!(
        applied,
        Applied::BrokerRegistered { node_id: NodeId(2), broker_epoch: Offset(6), first_registration: false }
    );
    let broker = controller.state.broker(NodeId(2)).expect("registered");
    assert_eq!(
        (broker.kafka_host.as_str(), broker.rpc_addr.as_str(), broker.broker_epoch),
        ("moved", "moved:9093", Offset(6))
    );
    assert_eq!(controller.state.brokers().len(), 3);
}

#[test]
fn a_bad_registration_is_an_invalid_request() {
    let mut controller = Controller::new();
    assert_eq!(controller.refused(register(-1, "h")), code::INVALID_REQUEST);
    assert_eq!(controller.refused(register(4, "")), code::INVALID_REQUEST);
}

#[test]
fn a_created_topic_is_found_by_name_and_by_id() {
    let mut controller = Controller::new();
    let command = MetaCommand::CreateTopic {
        name: "orders".to_string(),
        topic_id: TopicId([4; 16]),
        assignment: vec![replicas(&[1, 2]), replicas(&[2, 3]), replicas(&[3, 1])],
        configs: configs(&[("retention.ms", "1000")]),
    };
    let applied = controller.apply(command).expect("valid");
    assert_eq!(applied, Applied::TopicCreated { topic_id: TopicId([4; 16]), partitions: 3 });
    let topic = controller.state.topic("orders").expect("created");
    assert_eq!(controller.state.topic_by_id(TopicId([4; 16])), Some(topic));
    assert_eq!(topic.partition(2).expect("exists").replicas, replicas(&[3, 1]));
    assert_eq!(topic.configs, configs(&[("retention.ms", "1000")]));
    assert_eq!(controller.state.partitions_total(), 3);
}

#[test]
fn the_second_of_two_racing_creates_is_refused() {
    let mut controller = Controller::new();
    controller.apply(create("orders", 1, &[&[1]])).expect("first wins");
    assert_eq!(controller.refused(create("orders", 2, &[&[2]])), code::TOPIC_ALREADY_EXISTS);
    assert_eq!(controller.state.topic("orders").expect("kept").topic_id, TopicId([1; 16]));
}

#[test]
fn create_topic_refusals() {
    let mut controller = Controller::new();
    controller.apply(create("a.b", 1, &[&[1]])).expect("valid");
    let cases: Vec<(MetaCommand, i16)> = vec![
        (create("bad name", 2, &[&[1]]), code::INVALID_TOPIC_EXCEPTION),
        (create("", 2, &[&[1]]), code::INVALID_TOPIC_EXCEPTION),
        (create("a_b", 2, &[&[1]]), code::INVALID_TOPIC_EXCEPTION), // Collides with "a.b".
        (create("t", 1, &[&[1]]), code::UNKNOWN_SERVER_ERROR),      // Topic id in use.
        (create("t", 0, &[&[1]]), code::UNKNOWN_SERVER_ERROR),      // Reserved id.
        (create("t", 2, &[]), code::INVALID_PARTITIONS),
        (create("t", 2, &[&[]]), code::INVALID_REPLICATION_FACTOR),
        (create("t", 2, &[&[1], &[]]), code::INVALID_REPLICA_ASSIGNMENT),
        (create("t", 2, &[&[1, 2], &[3]]), code::INVALID_REPLICA_ASSIGNMENT),
        (create("t", 2, &[&[1, 1]]), code::INVALID_REPLICA_ASSIGNMENT),
        (create("t", 2, &[&[1, 9]]), code::INVALID_REPLICA_ASSIGNMENT), // Unregistered.
        (create("t", 2, &[&[1; 17]]), code::INVALID_REPLICATION_FACTOR),
    ];
    for (command, expected) in cases {
        assert_eq!(controller.refused(command.clone()), expected, "{command:?}");
    }
    let too_many = vec![replicas(&[1]); sluice_meta::limits::PARTITIONS_PER_TOPIC_MAX as usize + 1];
    let command = MetaCommand::CreateTopic {
        name: "t".to_string(),
        topic_id: TopicId([2; 16]),
        assignment: too_many,
        configs: BTreeMap::new(),
    };
    assert_eq!(controller.refused(command), code::INVALID_PARTITIONS);
    let command = MetaCommand::CreateTopic {
        name: "t".to_string(),
        topic_id: TopicId([2; 16]),
        assignment: vec![replicas(&[1])],
        configs: configs(&[("", "x")]),
    };
    assert_eq!(controller.refused(command), code::INVALID_CONFIG);
}

#[test]
fn a_deleted_topic_frees_its_name_and_id() {
    let mut controller = Controller::new();
    controller.apply(create("t", 1, &[&[1], &[2]])).expect("valid");
    let applied = controller.apply(MetaCommand::DeleteTopic { name: "t".to_string() }).expect("valid");
    assert_eq!(applied, Applied::TopicDeleted { topic_id: TopicId([1; 16]), partitions: 2 });
    assert_eq!(controller.state.topic_by_id(TopicId([1; 16])), None);
    assert_eq!(controller.state.partitions_total(), 0);
    assert_eq!(
        controller.refused(MetaCommand::DeleteTopic { name: "t".to_string() }),
        code::UNKNOWN_TOPIC_OR_PARTITION
    );
    controller.apply(create("t", 1, &[&[3]])).expect("the name is free again");
}

#[test]
fn partitions_are_appended_with_the_topics_replication_factor() {
    let mut controller = Controller::new();
    controller.apply(create("t", 1, &[&[1, 2]])).expect("valid");
    let add = |assignment: &[&[i32]]| MetaCommand::CreatePartitions {
        name: "t".to_string(),
        new_assignment: assignment.iter().map(|ids| replicas(ids)).collect(),
    };
    let applied = controller.apply(add(&[&[2, 3], &[3, 1]])).expect("valid");
    assert_eq!(
        applied,
        Applied::PartitionsCreated { topic_id: TopicId([1; 16]), first_new: PartitionId(1), partitions: 3 }
    );
    assert_eq!(controller.state.partitions_total(), 3);
    assert_eq!(controller.refused(add(&[])), code::INVALID_PARTITIONS);
    assert_eq!(controller.refused(add(&[&[1]])), code::INVALID_REPLICA_ASSIGNMENT);
    assert_eq!(controller.refused(add(&[&[1, 1]])), code::INVALID_REPLICA_ASSIGNMENT);
    assert_eq!(controller.refused(add(&[&[1, 8]])), code::INVALID_REPLICA_ASSIGNMENT);
    let unknown = MetaCommand::CreatePartitions { name: "u".to_string(), new_assignment: vec![replicas(&[1])] };
    assert_eq!(controller.refused(unknown), code::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn configs_are_set_and_deleted_incrementally() {
    let mut controller = Controller::new();
    controller.apply(create("t", 1, &[&[1]])).expect("valid");
    let alter = |set: &[(&str, &str)], delete: &[&str]| MetaCommand::AlterTopicConfigs {
        name: "t".to_string(),
        set: configs(set),
        delete: delete.iter().map(|key| key.to_string()).collect(),
    };
    controller.apply(alter(&[("a", "1"), ("b", "2")], &[])).expect("valid");
    controller.apply(alter(&[("a", "3")], &["b", "never-set"])).expect("valid");
    assert_eq!(controller.state.topic("t").expect("exists").configs, configs(&[("a", "3")]));
    assert_eq!(controller.refused(alter(&[("a", "4")], &["a"])), code::INVALID_CONFIG);
    assert_eq!(controller.refused(alter(&[], &[""])), code::INVALID_CONFIG);
    let unknown = MetaCommand::AlterTopicConfigs { name: "u".to_string(), set: BTreeMap::new(), delete: vec![] };
    assert_eq!(controller.refused(unknown), code::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn a_reassignment_records_its_target_and_the_current_replicas_cancel_it() {
    let mut controller = Controller::new();
    controller.apply(create("t", 1, &[&[1, 2]])).expect("valid");
    let reassign = |partition: i32, ids: &[i32]| MetaCommand::ReassignPartition {
        topic: "t".to_string(),
        partition,
        replicas: replicas(ids),
    };
    let applied = controller.apply(reassign(0, &[3, 2, 1])).expect("valid");
    let target = Some(replicas(&[3, 2, 1]));
    assert_eq!(
        applied,
        Applied::ReassignmentRecorded { topic_id: TopicId([1; 16]), partition: PartitionId(0), target }
    );
    let placement = controller.state.topic("t").expect("exists").partition(0).expect("exists").clone();
    assert_eq!((placement.replicas, placement.target_replicas), (replicas(&[1, 2]), Some(replicas(&[3, 2, 1]))));
    // Load counts the broker that is to receive a replica.
    assert_eq!(controller.state.broker_loads()[&NodeId(3)].replicas, 1);

    controller.apply(reassign(0, &[1, 2])).expect("cancels");
    assert_eq!(controller.state.topic("t").expect("exists").partitions[0].target_replicas, None);

    assert_eq!(controller.refused(reassign(1, &[1])), code::UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(controller.refused(reassign(-1, &[1])), code::UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(controller.refused(reassign(0, &[])), code::INVALID_REPLICA_ASSIGNMENT);
    assert_eq!(controller.refused(reassign(0, &[3, 3])), code::INVALID_REPLICA_ASSIGNMENT);
    assert_eq!(controller.refused(reassign(0, &[4])), code::INVALID_REPLICA_ASSIGNMENT);
}

#[test]
fn members_hold_every_target_until_the_leader_completes_the_move() {
    let mut controller = Controller::new();
    controller.apply(create("t", 1, &[&[1, 2]])).expect("valid");
    let reassign =
        |ids: &[i32]| MetaCommand::ReassignPartition { topic: "t".to_string(), partition: 0, replicas: replicas(ids) };
    let placement = |controller: &Controller| controller.state.topic("t").expect("exists").partitions[0].clone();
    assert_eq!(placement(&controller).reassignment_epoch, Offset(-1));
    controller.apply(reassign(&[2, 3])).expect("valid");
    let epoch = placement(&controller).reassignment_epoch;
    assert!(epoch >= Offset(0));
    assert_eq!(placement(&controller).members, replicas(&[1, 2, 3]));
    assert_eq!(placement(&controller).desired(), replicas(&[2, 3]).as_slice());

    // Cancelled: the target goes, but broker 3 may already be in the group, so it stays a member
    // until the leader reports the group is back to [1, 2].
    controller.apply(reassign(&[1, 2])).expect("cancels");
    let cancelled = placement(&controller);
    assert_eq!((cancelled.target_replicas.clone(), cancelled.members.clone()), (None, replicas(&[1, 2, 3])));
    assert!(cancelled.is_moving());
    let complete = |epoch: Offset, ids: &[i32]| MetaCommand::CompleteReassignment {
        topic: "t".to_string(),
        topic_id: TopicId([1; 16]),
        partition: 0,
        epoch,
        replicas: replicas(ids),
    };
    // The completion of the replaced reassignment is stale.
    assert_eq!(controller.refused(complete(epoch, &[2, 3])), code::NO_REASSIGNMENT_IN_PROGRESS);
    let cancel_epoch = cancelled.reassignment_epoch;
    assert_eq!(controller.refused(complete(cancel_epoch, &[2, 3])), code::NO_REASSIGNMENT_IN_PROGRESS);
    let applied = controller.apply(complete(cancel_epoch, &[1, 2])).expect("valid");
    assert_eq!(
        applied,
        Applied::ReassignmentCompleted {
            topic_id: TopicId([1; 16]),
            partition: PartitionId(0),
            replicas: replicas(&[1, 2])
        }
    );
    let done = placement(&controller);
    assert_eq!((done.members.clone(), done.initial_voters.clone()), (replicas(&[1, 2]), replicas(&[1, 2])));
    assert!(!done.is_moving());
    assert_eq!(controller.refused(complete(cancel_epoch, &[1, 2])), code::NO_REASSIGNMENT_IN_PROGRESS);

    // A move that completes: the replicas become the target; the initial voters never change.
    controller.apply(reassign(&[3])).expect("valid");
    let epoch = placement(&controller).reassignment_epoch;
    controller.apply(complete(epoch, &[3])).expect("valid");
    let moved = placement(&controller);
    assert_eq!(
        (moved.replicas, moved.members, moved.initial_voters),
        (replicas(&[3]), replicas(&[3]), replicas(&[1, 2]))
    );
    // Another incarnation's completion is refused.
    let other = MetaCommand::CompleteReassignment {
        topic: "t".to_string(),
        topic_id: TopicId([2; 16]),
        partition: 0,
        epoch,
        replicas: replicas(&[3]),
    };
    assert_eq!(controller.refused(other), code::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn a_decommissioning_broker_keeps_its_replicas_and_gets_no_new_ones() {
    let mut controller = Controller::new();
    controller.apply(create("t", 1, &[&[1, 2]])).expect("valid");
    let decommission = MetaCommand::DecommissionBroker { node_id: NodeId(2) };
    assert_eq!(
        controller.apply(decommission.clone()),
        Ok(Applied::BrokerDecommissioning { node_id: NodeId(2), newly: true })
    );
    assert_eq!(controller.apply(decommission), Ok(Applied::BrokerDecommissioning { node_id: NodeId(2), newly: false }));
    assert_eq!(controller.refused(create("u", 2, &[&[2]])), code::BROKER_NOT_AVAILABLE);
    let reassign = MetaCommand::ReassignPartition { topic: "t".to_string(), partition: 0, replicas: replicas(&[2, 3]) };
    controller.apply(reassign).expect("broker 2 keeps the replica it has");
    let reassign =
        MetaCommand::ReassignPartition { topic: "t".to_string(), partition: 0, replicas: replicas(&[2, 1, 3]) };
    controller.apply(reassign).expect("still only keeps");
    controller.apply(register(2, "restarted")).expect("valid");
    assert!(
        controller.state.broker(NodeId(2)).expect("registered").decommissioning,
        "registering again keeps it leaving"
    );
    let unknown = MetaCommand::DecommissionBroker { node_id: NodeId(9) };
    assert_eq!(controller.refused(unknown), code::BROKER_NOT_AVAILABLE);
}

#[test]
#[should_panic(expected = "applying index")]
fn an_index_is_applied_once() {
    let mut state = MetaState::new();
    state.apply(Offset(3), &register(1, "h")).expect("valid");
    let _ = state.apply(Offset(3), &register(2, "h"));
}

#[test]
fn the_proposer_places_then_the_log_applies() {
    let mut controller = Controller::new();
    let brokers = replicas(&[1, 2, 3]);
    let assignment = place_replicas(6, 2, &brokers, &controller.state, 0).expect("fits");
    let command = MetaCommand::CreateTopic {
        name: "t".to_string(),
        topic_id: TopicId([3; 16]),
        assignment,
        configs: BTreeMap::new(),
    };
    let bytes = command.encode().expect("small");
    let decoded = MetaCommand::decode(&bytes).expect("round-trips");
    controller.apply(decoded).expect("valid");
    let loads = controller.state.broker_loads();
    assert!(loads.values().all(|load| load.replicas == 4 && load.preferred_leaders == 2), "{loads:?}");
}
