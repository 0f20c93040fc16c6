//! One file per Kafka API the broker serves; each opens with the versions it handles.
//!
//! A handler is `async fn handle(state, request, version) -> Response`: it never fails as a
//! whole; problems become Kafka error codes in the response, per topic or partition.

pub(crate) mod acls;
pub(crate) mod allocate_producer_ids;
pub(crate) mod alter_configs;
pub(crate) mod api_versions;
pub(crate) mod client_quotas;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_groups;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod describe_groups;
pub(crate) mod describe_producers;
pub(crate) mod describe_quorum;
pub(crate) mod describe_transactions;
pub(crate) mod elect_leaders;
pub(crate) mod fetch;
pub(crate) mod find_coordinator;
pub(crate) mod heartbeat;
pub(crate) mod incremental_alter_configs;
pub(crate) mod init_producer_id;
pub(crate) mod join_group;
pub(crate) mod leave_group;
pub(crate) mod list_groups;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
pub(crate) mod offset_commit;
pub(crate) mod offset_delete;
pub(crate) mod offset_fetch;
pub(crate) mod offset_for_leader_epoch;
pub(crate) mod partition_reassignments;
pub(crate) mod produce;
pub(crate) mod sync_group;
pub(crate) mod txn_offset_commit;
pub(crate) mod txn_requests;
pub(crate) mod user_scram_credentials;
pub(crate) mod write_txn_markers;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// Kafka's `ConfigResource.Type` codes.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Who sent a request: for authorisation, quotas, and the APIs that record it (group
/// membership).
#[derive(Clone, Debug)]
pub(crate) struct Client {
    /// The request header's client id.
    pub(crate) client_id: String,
    /// `/IP` of the peer, as Kafka shows a member's host.
    pub(crate) host: String,
    /// The peer's IP address, as ACLs name hosts.
    pub(crate) ip: String,
    /// The authenticated principal (`User:alice`), or `User:ANONYMOUS`.
    pub(crate) principal: String,
    /// The name of the listener the request came on.
    pub(crate) listener: String,
}

/// Groups per-partition answers by topic, keeping their order: consecutive answers of one
/// topic go into one entry, made by `topic` from the name and its partitions.
pub(crate) fn by_topic<P, T>(
    answers: impl IntoIterator<Item = (String, P)>,
    topic: impl Fn(String, Vec<P>) -> T,
) -> Vec<T> {
    let mut grouped: Vec<(String, Vec<P>)> = Vec::new();
    for (name, answer) in answers {
        match grouped.last_mut() {
            Some((last, partitions)) if *last == name => partitions.push(answer),
            _ => grouped.push((name, vec![answer])),
        }
    }
    grouped
        .into_iter()
        .map(|(name, partitions)| topic(name, partitions))
        .collect()
}

/// Partition `index` of topic `name` (`local`, as hosted here) if this broker leads it;
/// otherwise the error a client should get: NOT_LEADER_OR_FOLLOWER for a partition the
/// metadata has (led elsewhere, or not opened here yet: the client looks up the leader
/// again), UNKNOWN_TOPIC_OR_PARTITION for one it does not.
pub(crate) fn led_partition(
    state: &crate::state::BrokerState,
    name: &str,
    local: Option<&std::sync::Arc<crate::topics::Topic>>,
    index: i32,
) -> Result<std::sync::Arc<crate::partition::Partition>, strom_protocol::ErrorCode> {
    use strom_protocol::ErrorCode;
    let image = state.quorum.image();
    let id = match local {
        Some(topic) => topic.id,
        None => image
            .names
            .get(name)
            .copied()
            .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?,
    };
    match image.partition(id, index) {
        None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        Some(p) if p.leader != state.config.node_id => Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
        // Led here only once this broker took the lead in the image's epoch (it has
        // reconciled, and is registered: see `Topics::reconcile`).
        Some(p) => local
            .and_then(|topic| topic.partition(index))
            .filter(|partition| partition.leader_epoch() == p.leader_epoch)
            .ok_or(ErrorCode::NOT_LEADER_OR_FOLLOWER),
    }
}

/// GROUP_AUTHORIZATION_FAILED unless the client may `operation` the group.
pub(crate) fn group_check(
    state: &crate::state::BrokerState,
    client: &Client,
    group_id: &str,
    operation: strom_protocol::acl::Operation,
) -> Result<(), strom_protocol::ErrorCode> {
    if state.allowed(
        client,
        operation,
        strom_protocol::acl::ResourceType::Group,
        group_id,
    ) {
        Ok(())
    } else {
        Err(strom_protocol::ErrorCode::GROUP_AUTHORIZATION_FAILED)
    }
}

/// Commits metadata records through this broker, which must be the active controller
/// (NOT_CONTROLLER otherwise); nothing to commit is a success.
pub(crate) async fn commit(
    state: &crate::state::BrokerState,
    records: Vec<crate::controller::records::MetadataRecord>,
) -> Result<(), (strom_protocol::ErrorCode, String)> {
    use strom_protocol::ErrorCode;
    if records.is_empty() {
        return Ok(());
    }
    if state.quorum.status().leader != Some(state.config.node_id) {
        return Err((
            ErrorCode::NOT_CONTROLLER,
            "this broker is not the active controller".to_owned(),
        ));
    }
    state
        .quorum
        .propose(records)
        .await
        .map(|_| ())
        .map_err(|e| (ErrorCode::REQUEST_TIMED_OUT, e.to_string()))
}

/// The error for a config resource the client may not `operation` (DESCRIBE_CONFIGS or
/// ALTER_CONFIGS): topics are checked by name, brokers as the cluster.
pub(crate) fn config_denied(
    state: &crate::state::BrokerState,
    client: &Client,
    resource_type: i8,
    name: &str,
    operation: strom_protocol::acl::Operation,
) -> Option<(strom_protocol::ErrorCode, String)> {
    use strom_protocol::acl::ResourceType;
    use strom_protocol::ErrorCode;
    match resource_type {
        RESOURCE_TOPIC if !state.allowed(client, operation, ResourceType::Topic, name) => Some((
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
            format!("not authorized to {operation} topic {name}"),
        )),
        RESOURCE_BROKER if !state.allowed_on_cluster(client, operation) => Some((
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            format!("not authorized to {operation} the cluster"),
        )),
        _ => None,
    }
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}
