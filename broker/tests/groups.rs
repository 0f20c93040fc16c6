//! The group coordinator over the wire: every group API at every advertised version,
//! committed offsets and group metadata across a restart, and the internal topic kept to
//! the coordinator.

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use strom_protocol::connection::Connection;
use strom_protocol::ErrorCode;

use crate::{create_topic, name, produce_request, s, TestBroker};

const SESSION_MS: i32 = 10_000;

async fn broker() -> TestBroker {
    TestBroker::start_with(|c| c.group_initial_rebalance_delay = std::time::Duration::ZERO).await
}

fn group(id: &str) -> GroupId {
    GroupId(s(id))
}

/// Joins `group_id` alone at JoinGroup `version` (taking the member id the broker hands
/// out first from v4); returns (member id, generation).
async fn join(conn: &Connection, group_id: &str, version: i16) -> (String, i32) {
    let mut request = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(SESSION_MS)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"))]);
    if version >= 1 {
        request = request.with_rebalance_timeout_ms(SESSION_MS);
    }
    let mut r = conn.send_version(&request, version).await.unwrap();
    if version >= 4 {
        assert_eq!(
            ErrorCode(r.error_code),
            ErrorCode::MEMBER_ID_REQUIRED,
            "JoinGroup v{version}"
        );
        assert!(!r.member_id.is_empty());
        request = request.with_member_id(r.member_id.clone());
        r = conn.send_version(&request, version).await.unwrap();
    }
    assert_eq!(
        ErrorCode(r.error_code),
        ErrorCode::NONE,
        "JoinGroup v{version}"
    );
    assert_eq!(
        r.leader, r.member_id,
        "JoinGroup v{version}: a lone member leads"
    );
    assert_eq!(r.members.len(), 1, "JoinGroup v{version}");
    assert_eq!(r.members[0].metadata.as_ref(), b"subscription");
    assert_eq!(
        r.protocol_name.as_deref(),
        Some("range"),
        "JoinGroup v{version}"
    );
    (r.member_id.to_string(), r.generation_id)
}

/// The leader's SyncGroup at `version`, assigning `assignment` to itself.
async fn sync(
    conn: &Connection,
    group_id: &str,
    member: &(String, i32),
    version: i16,
    assignment: &'static [u8],
) -> SyncGroupResponse {
    let mut request = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(s(&member.0))
        .with_generation_id(member.1)
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(&member.0))
            .with_assignment(Bytes::from_static(assignment))]);
    if version >= 5 {
        request = request
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")));
    }
    conn.send_version(&request, version).await.unwrap()
}

/// A one-member Stable group.
async fn stable(conn: &Connection, group_id: &str) -> (String, i32) {
    let member = join(conn, group_id, 9).await;
    let r = sync(conn, group_id, &member, 5, b"assignment").await;
    assert_eq!(ErrorCode(r.error_code), ErrorCode::NONE);
    member
}

async fn commit(
    conn: &Connection,
    group_id: &str,
    member: &(String, i32),
    offset: i64,
    version: i16,
) -> ErrorCode {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_metadata(Some(s("meta")));
    let partition = if version >= 6 {
        partition.with_committed_leader_epoch(0)
    } else {
        partition
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(member.1)
        .with_member_id(s(&member.0))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![partition])]);
    let r = conn.send_version(&request, version).await.unwrap();
    ErrorCode(r.topics[0].partitions[0].error_code)
}

/// The committed offset of t-0 (and its metadata) read with OffsetFetch `version`.
async fn fetch(conn: &Connection, group_id: &str, version: i16) -> (i64, String) {
    if version >= 8 {
        let request =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group(group_id))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(name("t"))
                    .with_partition_indexes(vec![0])]))]);
        let r = conn.send_version(&request, version).await.unwrap();
        let p = &r.groups[0].topics[0].partitions[0];
        return (
            p.committed_offset,
            p.metadata.as_deref().unwrap_or("").to_owned(),
        );
    }
    let request = OffsetFetchRequest::default()
        .with_group_id(group(group_id))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(name("t"))
            .with_partition_indexes(vec![0])]));
    let r = conn.send_version(&request, version).await.unwrap();
    let p = &r.topics[0].partitions[0];
    (
        p.committed_offset,
        p.metadata.as_deref().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn every_group_api_at_every_version() {
    let b = broker().await;
    let conn = b.connect().await;
    create_topic(&conn, "t", 1).await;
    for v in 0..=9 {
        let g = format!("join-v{v}");
        let member = join(&conn, &g, v).await;
        assert_eq!(member.1, 1, "first generation");
    }
    for v in 0..=5 {
        let g = format!("sync-v{v}");
        let member = join(&conn, &g, 9).await;
        let r = sync(&conn, &g, &member, v, b"mine").await;
        assert_eq!(
            (ErrorCode(r.error_code), r.assignment.as_ref()),
            (ErrorCode::NONE, &b"mine"[..]),
            "SyncGroup v{v}"
        );
        if v >= 5 {
            assert_eq!(r.protocol_name.as_deref(), Some("range"));
        }
    }
    let g = "stable";
    let member = stable(&conn, g).await;
    for v in 0..=4 {
        let beat = |generation: i32| {
            HeartbeatRequest::default()
                .with_group_id(group(g))
                .with_member_id(s(&member.0))
                .with_generation_id(generation)
        };
        let r = conn.send_version(&beat(member.1), v).await.unwrap();
        assert_eq!(ErrorCode(r.error_code), ErrorCode::NONE, "Heartbeat v{v}");
        let r = conn.send_version(&beat(member.1 + 7), v).await.unwrap();
        assert_eq!(
            ErrorCode(r.error_code),
            ErrorCode::ILLEGAL_GENERATION,
            "Heartbeat v{v}"
        );
    }
    for v in 2..=8 {
        assert_eq!(
            commit(&conn, g, &member, 100 + i64::from(v), v).await,
            ErrorCode::NONE,
            "OffsetCommit v{v}"
        );
    }
    assert_eq!(
        commit(&conn, g, &(member.0.clone(), member.1 + 1), 1, 8).await,
        ErrorCode::ILLEGAL_GENERATION
    );
    for v in 1..=8 {
        assert_eq!(
            fetch(&conn, g, v).await,
            (108, "meta".to_owned()),
            "OffsetFetch v{v}"
        );
        assert_eq!(
            fetch(&conn, "no-such-group", v).await.0,
            -1,
            "OffsetFetch v{v}"
        );
    }
    for v in 0..=5 {
        let r = conn
            .send_version(
                &DescribeGroupsRequest::default().with_groups(vec![group(g), group("nobody")]),
                v,
            )
            .await
            .unwrap();
        let described = &r.groups[0];
        assert_eq!(
            described.group_state.as_str(),
            "Stable",
            "DescribeGroups v{v}"
        );
        assert_eq!(described.protocol_data.as_str(), "range");
        assert_eq!(described.members.len(), 1);
        assert_eq!(described.members[0].client_id.as_str(), "broker-tests");
        assert!(described.members[0].client_host.starts_with("/127.0.0.1"));
        assert_eq!(
            described.members[0].member_assignment.as_ref(),
            b"assignment"
        );
        assert_eq!(r.groups[1].group_state.as_str(), "Dead");
    }
    for v in 0..=4 {
        let r = conn
            .send_version(&ListGroupsRequest::default(), v)
            .await
            .unwrap();
        let listed = r
            .groups
            .iter()
            .find(|l| l.group_id.as_str() == g)
            .expect("listed");
        assert_eq!(listed.protocol_type.as_str(), "consumer", "ListGroups v{v}");
        if v >= 4 {
            assert_eq!(listed.group_state.as_str(), "Stable");
        }
    }
    // DeleteGroups refuses a group with members, and OffsetDelete a subscribed topic? The
    // subscription here is opaque bytes, so no topic counts as subscribed.
    let r = conn
        .send_version(
            &DeleteGroupsRequest::default().with_groups_names(vec![group(g), group("nobody")]),
            2,
        )
        .await
        .unwrap();
    assert_eq!(
        ErrorCode(r.results[0].error_code),
        ErrorCode::NON_EMPTY_GROUP
    );
    assert_eq!(
        ErrorCode(r.results[1].error_code),
        ErrorCode::GROUP_ID_NOT_FOUND
    );
    for v in 0..=5 {
        let g = format!("leave-v{v}");
        let member = stable(&conn, &g).await;
        let request = LeaveGroupRequest::default().with_group_id(group(&g));
        let request = if v >= 3 {
            request.with_members(vec![MemberIdentity::default().with_member_id(s(&member.0))])
        } else {
            request.with_member_id(s(&member.0))
        };
        let r = conn.send_version(&request, v).await.unwrap();
        let code = if v >= 3 {
            r.members[0].error_code
        } else {
            r.error_code
        };
        assert_eq!(ErrorCode(code), ErrorCode::NONE, "LeaveGroup v{v}");
        assert_eq!(
            commit(&conn, &g, &(String::new(), -1), 5, 8).await,
            ErrorCode::NONE,
            "a standalone commit to an empty group"
        );
    }
    let request = OffsetDeleteRequest::default()
        .with_group_id(group("leave-v0"))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let r = conn.send_version(&request, 0).await.unwrap();
    assert_eq!(
        ErrorCode(r.topics[0].partitions[0].error_code),
        ErrorCode::NONE
    );
    assert_eq!(fetch(&conn, "leave-v0", 8).await.0, -1, "offset deleted");
    for v in 0..=2 {
        let g = format!("leave-v{}", v + 1);
        let r = conn
            .send_version(
                &DeleteGroupsRequest::default().with_groups_names(vec![group(&g)]),
                v,
            )
            .await
            .unwrap();
        assert_eq!(
            ErrorCode(r.results[0].error_code),
            ErrorCode::NONE,
            "DeleteGroups v{v}"
        );
        assert_eq!(
            fetch(&conn, &g, 8).await.0,
            -1,
            "offsets deleted with the group"
        );
    }
}

#[tokio::test]
async fn offsets_and_groups_survive_a_restart() {
    let b = broker().await;
    let conn = b.connect().await;
    create_topic(&conn, "t", 1).await;
    let member = stable(&conn, "kept").await;
    assert_eq!(commit(&conn, "kept", &member, 42, 8).await, ErrorCode::NONE);
    assert_eq!(
        commit(&conn, "simple", &(String::new(), -1), 7, 8).await,
        ErrorCode::NONE
    );
    drop(conn);
    let b = b.restart().await;
    let conn = b.connect().await;
    assert_eq!(fetch(&conn, "kept", 8).await, (42, "meta".to_owned()));
    assert_eq!(fetch(&conn, "simple", 8).await.0, 7);
    // The member comes back with the group, so its session and generation still count.
    let r = conn
        .send(
            &HeartbeatRequest::default()
                .with_group_id(group("kept"))
                .with_member_id(s(&member.0))
                .with_generation_id(member.1),
        )
        .await
        .unwrap();
    assert_eq!(ErrorCode(r.error_code), ErrorCode::NONE);
    let r = conn
        .send(&DescribeGroupsRequest::default().with_groups(vec![group("kept")]))
        .await
        .unwrap();
    assert_eq!(r.groups[0].group_state.as_str(), "Stable");
    assert_eq!(
        r.groups[0].members[0].member_assignment.as_ref(),
        b"assignment"
    );
}

#[tokio::test]
async fn clients_may_not_write_the_offsets_topic() {
    let b = broker().await;
    let conn = b.connect().await;
    create_topic(&conn, "t", 1).await;
    let member = stable(&conn, "g").await;
    assert_eq!(commit(&conn, "g", &member, 1, 8).await, ErrorCode::NONE);
    let mut batch =
        strom_protocol::records::BatchBuilder::new(strom_protocol::records::Compression::None);
    batch.push(0, Some(b"k"), Some(b"v"), &[]);
    let request = produce_request("__consumer_offsets", 0, batch.build().unwrap());
    let r = conn.send(&request).await.unwrap();
    let code = ErrorCode(r.responses[0].partition_responses[0].error_code);
    assert_eq!(code, ErrorCode::INVALID_TOPIC_EXCEPTION);
    let metadata = conn
        .send(&MetadataRequest::default().with_topics(None))
        .await
        .unwrap();
    let internal = metadata.topics.iter().find(|t| {
        t.name
            .as_ref()
            .is_some_and(|n| n.as_str() == "__consumer_offsets")
    });
    assert!(internal.is_some_and(|t| t.is_internal && t.partitions.len() == 50));
}
