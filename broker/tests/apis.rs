//! Every API at every advertised version answers, and answers correctly.

use bytes::Bytes;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request as iac;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use strom_protocol::records::{BatchBuilder, Compression};

use crate::{create_topic, name, produce_request, s, TestBroker};

fn batch(n: usize) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..n {
        b.push(
            1_000 + i as i64,
            Some(b"k"),
            Some(format!("v{i}").as_bytes()),
            &[],
        );
    }
    b.build().unwrap()
}

#[tokio::test]
async fn every_api_at_every_advertised_version() {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    let base_id = create_topic(&conn, "base", 1).await;
    let versions = conn.send(&ApiVersionsRequest::default()).await.unwrap();
    assert_eq!(versions.api_keys.len(), 48);
    for api in &versions.api_keys {
        let key = ApiKey::try_from(api.api_key).unwrap();
        let min = if key == ApiKey::Produce {
            3
        } else {
            api.min_version
        };
        for v in min..=api.max_version {
            let ctx = format!("{key:?} v{v}");
            match key {
                ApiKey::ApiVersions => {
                    let r = conn
                        .send_version(&ApiVersionsRequest::default(), v)
                        .await
                        .unwrap();
                    assert_eq!(r.error_code, 0, "{ctx}");
                }
                ApiKey::Metadata => {
                    let topic = MetadataRequestTopic::default().with_name(Some(name("base")));
                    let r = conn
                        .send_version(
                            &MetadataRequest::default().with_topics(Some(vec![topic])),
                            v,
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.topics.len(), 1, "{ctx}");
                    assert_eq!(r.topics[0].error_code, 0, "{ctx}");
                    assert_eq!(r.topics[0].partitions.len(), 1, "{ctx}");
                    if v >= 10 {
                        assert_eq!(r.topics[0].topic_id, base_id, "{ctx}");
                    }
                }
                ApiKey::Produce => {
                    let request = produce_request("base", 0, batch(3));
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "{ctx}");
                }
                ApiKey::Fetch => {
                    let mut topic =
                        FetchTopic::default().with_partitions(vec![FetchPartition::default()
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)]);
                    topic = if v >= 13 {
                        topic.with_topic_id(base_id)
                    } else {
                        topic.with_topic(name("base"))
                    };
                    let r = conn
                        .send_version(
                            &FetchRequest::default()
                                .with_max_bytes(1 << 20)
                                .with_topics(vec![topic.clone()]),
                            v,
                        )
                        .await
                        .unwrap();
                    let p = &r.responses[0].partitions[0];
                    assert_eq!(p.error_code, 0, "{ctx}");
                    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()), "{ctx}");
                    if v >= 9 {
                        // KIP-320: an epoch this leader is not in is refused.
                        let mut fenced = FetchRequest::default().with_max_bytes(1 << 20);
                        let mut t = topic.clone();
                        t.partitions[0].current_leader_epoch = 7;
                        fenced.topics = vec![t];
                        let r = conn.send_version(&fenced, v).await.unwrap();
                        let code = r.responses[0].partitions[0].error_code;
                        assert_eq!(
                            code,
                            strom_protocol::ErrorCode::UNKNOWN_LEADER_EPOCH.code(),
                            "{ctx}"
                        );
                    }
                }
                ApiKey::ListOffsets => {
                    let t = ListOffsetsTopic::default()
                        .with_name(name("base"))
                        .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]);
                    let r = conn
                        .send_version(&ListOffsetsRequest::default().with_topics(vec![t]), v)
                        .await
                        .unwrap();
                    let p = &r.topics[0].partitions[0];
                    assert_eq!(p.error_code, 0, "{ctx}");
                    assert!(p.offset > 0, "{ctx}");
                }
                ApiKey::CreateTopics => {
                    let t = CreatableTopic::default()
                        .with_name(name(&format!("created-{v}")))
                        .with_num_partitions(2)
                        .with_replication_factor(1)
                        .with_configs(vec![CreatableTopicConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("60000")))]);
                    let r = conn
                        .send_version(&CreateTopicsRequest::default().with_topics(vec![t]), v)
                        .await
                        .unwrap();
                    assert_eq!(r.topics[0].error_code, 0, "{ctx}");
                    if v >= 5 {
                        assert_eq!(r.topics[0].num_partitions, 2, "{ctx}");
                        let configs = r.topics[0].configs.as_ref().unwrap();
                        assert!(
                            configs.iter().any(|c| c.name.as_str() == "retention.ms"
                                && c.value.as_deref() == Some("60000")),
                            "{ctx}"
                        );
                    }
                }
                ApiKey::DeleteTopics => {
                    let topic = format!("deleted-{v}");
                    let id = create_topic(&conn, &topic, 1).await;
                    let request = if v >= 6 {
                        DeleteTopicsRequest::default()
                            .with_topics(vec![DeleteTopicState::default().with_topic_id(id)])
                    } else {
                        DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)])
                    };
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.responses[0].error_code, 0, "{ctx}");
                    assert!(!b.dir.path().join(format!("{topic}-0")).exists(), "{ctx}");
                }
                ApiKey::CreatePartitions => {
                    let topic = format!("grown-{v}");
                    create_topic(&conn, &topic, 1).await;
                    let r = conn
                        .send_version(
                            &CreatePartitionsRequest::default().with_topics(vec![
                                CreatePartitionsTopic::default()
                                    .with_name(name(&topic))
                                    .with_count(3),
                            ]),
                            v,
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.results[0].error_code, 0, "{ctx}");
                }
                ApiKey::DeleteRecords => {
                    let t = DeleteRecordsTopic::default()
                        .with_name(name("base"))
                        .with_partitions(vec![DeleteRecordsPartition::default().with_offset(1)]);
                    let r = conn
                        .send_version(&DeleteRecordsRequest::default().with_topics(vec![t]), v)
                        .await
                        .unwrap();
                    let p = &r.topics[0].partitions[0];
                    assert_eq!((p.error_code, p.low_watermark), (0, 1), "{ctx}");
                }
                ApiKey::InitProducerId => {
                    let r = conn
                        .send_version(
                            &InitProducerIdRequest::default()
                                .with_transactional_id(None)
                                .with_transaction_timeout_ms(60000),
                            v,
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.error_code, 0, "{ctx}");
                    assert!(r.producer_id.0 >= 0, "{ctx}");
                }
                ApiKey::DescribeConfigs => {
                    let res = DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("base"));
                    let r = conn
                        .send_version(
                            &DescribeConfigsRequest::default().with_resources(vec![res]),
                            v,
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.results[0].error_code, 0, "{ctx}");
                    assert!(
                        r.results[0]
                            .configs
                            .iter()
                            .any(|c| c.name.as_str() == "cleanup.policy"),
                        "{ctx}"
                    );
                }
                ApiKey::AlterConfigs => {
                    let res = AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("base"))
                        .with_configs(vec![AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("123456")))]);
                    let r = conn
                        .send_version(&AlterConfigsRequest::default().with_resources(vec![res]), v)
                        .await
                        .unwrap();
                    assert_eq!(r.responses[0].error_code, 0, "{ctx}");
                }
                ApiKey::IncrementalAlterConfigs => {
                    let res = iac::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("base"))
                        .with_configs(vec![iac::AlterableConfig::default()
                            .with_name(s("segment.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("3600000")))]);
                    let r = conn
                        .send_version(
                            &IncrementalAlterConfigsRequest::default().with_resources(vec![res]),
                            v,
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.responses[0].error_code, 0, "{ctx}");
                }
                ApiKey::FindCoordinator => {
                    let request = if v >= 4 {
                        FindCoordinatorRequest::default()
                            .with_coordinator_keys(vec![s("group-a"), s("group-b")])
                    } else {
                        FindCoordinatorRequest::default().with_key(s("group-a"))
                    };
                    let r = conn.send_version(&request, v).await.unwrap();
                    if v >= 4 {
                        assert_eq!(r.coordinators.len(), 2, "{ctx}");
                        assert_eq!(
                            r.coordinators[1].port,
                            b.broker.local_addr().port() as i32,
                            "{ctx}"
                        );
                    } else {
                        assert_eq!(
                            (r.error_code, r.port),
                            (0, b.broker.local_addr().port() as i32),
                            "{ctx}"
                        );
                    }
                }
                ApiKey::DescribeCluster => {
                    let r = conn
                        .send_version(&DescribeClusterRequest::default(), v)
                        .await
                        .unwrap();
                    assert_eq!(r.brokers.len(), 1, "{ctx}");
                    assert_eq!(
                        r.cluster_id.as_str(),
                        b.broker.cluster_id().as_str(),
                        "{ctx}"
                    );
                }
                ApiKey::OffsetForLeaderEpoch => {
                    use kafka_protocol::messages::offset_for_leader_epoch_request::{
                        OffsetForLeaderPartition, OffsetForLeaderTopic,
                    };
                    let ask = |current: i32| {
                        OffsetForLeaderEpochRequest::default()
                            .with_replica_id(BrokerId(-1))
                            .with_topics(vec![OffsetForLeaderTopic::default()
                                .with_topic(name("base"))
                                .with_partitions(vec![OffsetForLeaderPartition::default()
                                    .with_partition(0)
                                    .with_current_leader_epoch(current)
                                    .with_leader_epoch(0)])])
                    };
                    let r = conn.send_version(&ask(-1), v).await.unwrap();
                    let p = &r.topics[0].partitions[0];
                    let end = crate::list_offset(&conn, "base", 0, -1).await.1;
                    assert_eq!(
                        (p.error_code, p.leader_epoch, p.end_offset),
                        (0, 0, end),
                        "{ctx}"
                    );
                    let r = conn.send_version(&ask(5), v).await.unwrap();
                    assert_eq!(r.topics[0].partitions[0].error_code, 75, "{ctx}");
                }
                ApiKey::AllocateProducerIds => {
                    // Brokers only: an unknown broker and a stale incarnation are refused.
                    for (broker, code) in [(9, 102), (1, 77)] {
                        let request = AllocateProducerIdsRequest::default()
                            .with_broker_id(BrokerId(broker))
                            .with_broker_epoch(-1);
                        let r = conn.send_version(&request, v).await.unwrap();
                        assert_eq!(r.error_code, code, "{ctx}");
                    }
                }
                ApiKey::ElectLeaders => {
                    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
                    let topic = TopicPartitions::default()
                        .with_topic(name("base"))
                        .with_partitions(vec![0, 9]);
                    let request =
                        ElectLeadersRequest::default().with_topic_partitions(Some(vec![topic]));
                    let r = conn.send_version(&request, v).await.unwrap();
                    let codes: Vec<i16> = r.replica_election_results[0]
                        .partition_result
                        .iter()
                        .map(|p| p.error_code)
                        .collect();
                    // Its only replica leads already; partition 9 does not exist.
                    assert_eq!(codes, [84, 3], "{ctx}");
                }
                ApiKey::AlterPartitionReassignments => {
                    use kafka_protocol::messages::alter_partition_reassignments_request::{
                        ReassignablePartition, ReassignableTopic,
                    };
                    let moves = [(Some(vec![1]), 0), (Some(vec![7]), 39), (None, 85)];
                    for (replicas, code) in moves {
                        let topic = ReassignableTopic::default()
                            .with_name(name("base"))
                            .with_partitions(vec![ReassignablePartition::default().with_replicas(
                                replicas.map(|r: Vec<i32>| r.into_iter().map(BrokerId).collect()),
                            )]);
                        let request = AlterPartitionReassignmentsRequest::default()
                            .with_allow_replication_factor_change(true)
                            .with_topics(vec![topic]);
                        let r = conn.send_version(&request, v).await.unwrap();
                        assert_eq!(r.error_code, 0, "{ctx}");
                        assert_eq!(r.responses[0].partitions[0].error_code, code, "{ctx}");
                    }
                }
                ApiKey::ListPartitionReassignments => {
                    let r = conn
                        .send_version(&ListPartitionReassignmentsRequest::default(), v)
                        .await
                        .unwrap();
                    assert_eq!((r.error_code, r.topics.len()), (0, 0), "{ctx}");
                }
                // Markers are covered in `transactions`; here, one for a partition not led.
                ApiKey::WriteTxnMarkers => {
                    use kafka_protocol::messages::write_txn_markers_request::{
                        WritableTxnMarker, WritableTxnMarkerTopic,
                    };
                    let marker = WritableTxnMarker::default().with_topics(vec![
                        WritableTxnMarkerTopic::default()
                            .with_name(name("no-such-topic"))
                            .with_partition_indexes(vec![0]),
                    ]);
                    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    let code = r.markers[0].topics[0].partitions[0].error_code;
                    assert_eq!(code, 3, "{ctx}: UNKNOWN_TOPIC_OR_PARTITION");
                }
                // The transaction coordinator's requests for an id it has never seen
                // (the flows are in `transactions`).
                ApiKey::AddPartitionsToTxn => {
                    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
                    let request = AddPartitionsToTxnRequest::default()
                        .with_v3_and_below_transactional_id(TransactionalId(s("api-txn")))
                        .with_v3_and_below_producer_id(ProducerId(5))
                        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                            .with_name(name("base"))
                            .with_partitions(vec![0])]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    let code = r.results_by_topic_v3_and_below[0].results_by_partition[0]
                        .partition_error_code;
                    assert_eq!(code, 49, "{ctx}: INVALID_PRODUCER_ID_MAPPING");
                }
                ApiKey::AddOffsetsToTxn => {
                    let request = AddOffsetsToTxnRequest::default()
                        .with_transactional_id(TransactionalId(s("api-txn")))
                        .with_producer_id(ProducerId(5))
                        .with_group_id(GroupId(s("api-group")));
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.error_code, 49, "{ctx}: INVALID_PRODUCER_ID_MAPPING");
                }
                ApiKey::EndTxn => {
                    let request = EndTxnRequest::default()
                        .with_transactional_id(TransactionalId(s("api-txn")))
                        .with_producer_id(ProducerId(5));
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.error_code, 49, "{ctx}: INVALID_PRODUCER_ID_MAPPING");
                }
                ApiKey::DescribeTransactions => {
                    let request = DescribeTransactionsRequest::default()
                        .with_transactional_ids(vec![TransactionalId(s("api-txn"))]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    let code = r.transaction_states[0].error_code;
                    assert_eq!(code, 105, "{ctx}: TRANSACTIONAL_ID_NOT_FOUND");
                }
                ApiKey::TxnOffsetCommit => {
                    use kafka_protocol::messages::txn_offset_commit_request::{
                        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
                    };
                    let request = TxnOffsetCommitRequest::default()
                        .with_transactional_id(TransactionalId(s("api-txn")))
                        .with_group_id(GroupId(s("")))
                        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                            .with_name(name("base"))
                            .with_partitions(vec![
                                TxnOffsetCommitRequestPartition::default().with_committed_offset(1)
                            ])]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    let code = r.topics[0].partitions[0].error_code;
                    assert_eq!(code, 24, "{ctx}: INVALID_GROUP_ID");
                }
                ApiKey::DescribeProducers => {
                    use kafka_protocol::messages::describe_producers_request::TopicRequest;
                    let request = DescribeProducersRequest::default().with_topics(vec![
                        TopicRequest::default()
                            .with_name(name("base"))
                            .with_partition_indexes(vec![0, 99]),
                    ]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    let codes: Vec<i16> = r.topics[0]
                        .partitions
                        .iter()
                        .map(|p| p.error_code)
                        .collect();
                    assert_eq!(codes, [0, 3], "{ctx}");
                }
                ApiKey::ListTransactions => {
                    let request = ListTransactionsRequest::default()
                        .with_state_filters(vec![s("Ongoing"), s("Sleeping")]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.error_code, 0, "{ctx}");
                    assert_eq!(r.unknown_state_filters, [s("Sleeping")], "{ctx}");
                }
                ApiKey::DescribeQuorum => {
                    use kafka_protocol::messages::describe_quorum_request::{
                        PartitionData, TopicData,
                    };
                    let topic = TopicData::default()
                        .with_topic_name(name("__cluster_metadata"))
                        .with_partitions(vec![PartitionData::default()]);
                    let request = DescribeQuorumRequest::default().with_topics(vec![topic]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    let p = &r.topics[0].partitions[0];
                    assert_eq!((p.error_code, p.leader_id.0), (0, 1), "{ctx}");
                    assert_eq!(p.current_voters.len(), 1, "{ctx}");
                }
                // Each at each version in `groups::every_group_api_at_every_version`.
                ApiKey::JoinGroup
                | ApiKey::SyncGroup
                | ApiKey::Heartbeat
                | ApiKey::LeaveGroup
                | ApiKey::OffsetCommit
                | ApiKey::OffsetFetch
                | ApiKey::DescribeGroups
                | ApiKey::ListGroups
                | ApiKey::DeleteGroups
                | ApiKey::OffsetDelete => {}
                // On a listener without SASL the exchange is out of place.
                ApiKey::SaslHandshake if v == 0 => {}
                ApiKey::SaslHandshake => {
                    let request = SaslHandshakeRequest::default().with_mechanism(s("PLAIN"));
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.error_code, 34, "{ctx}: ILLEGAL_SASL_STATE");
                }
                ApiKey::SaslAuthenticate => {
                    let request = SaslAuthenticateRequest::default();
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.error_code, 34, "{ctx}: ILLEGAL_SASL_STATE");
                }
                ApiKey::DescribeUserScramCredentials => {
                    let request =
                        DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                            describe_user_scram_credentials_request::UserName::default()
                                .with_name(s("nobody")),
                        ]));
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.results[0].error_code, 91, "{ctx}: RESOURCE_NOT_FOUND");
                }
                ApiKey::AlterUserScramCredentials => {
                    let upsertion =
                        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                            .with_name(s("erin"))
                            .with_mechanism(2)
                            .with_iterations(4096)
                            .with_salt(Bytes::from_static(b"salt"))
                            .with_salted_password(Bytes::from(vec![7; 64]));
                    let request = AlterUserScramCredentialsRequest::default()
                        .with_upsertions(vec![upsertion]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.results[0].error_code, 0, "{ctx}");
                    let described = conn
                        .send(&DescribeUserScramCredentialsRequest::default())
                        .await
                        .unwrap();
                    assert_eq!(
                        described.results[0].credential_infos[0].iterations, 4096,
                        "{ctx}"
                    );
                }
                ApiKey::AlterClientQuotas => {
                    let entity = alter_client_quotas_request::EntityData::default()
                        .with_entity_type(s("user"))
                        .with_entity_name(Some(s("nobody")));
                    let op = alter_client_quotas_request::OpData::default()
                        .with_key(s("producer_byte_rate"))
                        .with_value(1024.0 * f64::from(v + 1));
                    let entry = alter_client_quotas_request::EntryData::default()
                        .with_entity(vec![entity])
                        .with_ops(vec![op]);
                    let request = AlterClientQuotasRequest::default().with_entries(vec![entry]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.entries[0].error_code, 0, "{ctx}");
                    // Unknown keys are refused by name.
                    let mut bad = request.clone();
                    bad.entries[0].ops[0].key = s("bogus_rate");
                    let r = conn.send_version(&bad, v).await.unwrap();
                    assert_eq!(r.entries[0].error_code, 42, "{ctx}: INVALID_REQUEST");
                    assert!(r.entries[0]
                        .error_message
                        .as_deref()
                        .unwrap()
                        .contains("bogus_rate"));
                }
                ApiKey::DescribeClientQuotas => {
                    let component = describe_client_quotas_request::ComponentData::default()
                        .with_entity_type(s("user"))
                        .with_match_type(0)
                        .with_match(Some(s("nobody")));
                    let request =
                        DescribeClientQuotasRequest::default().with_components(vec![component]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.error_code, 0, "{ctx}");
                    // Set by AlterClientQuotas, tested before at its last version.
                    let entries = r.entries.unwrap();
                    assert_eq!(entries.len(), 1, "{ctx}");
                    assert_eq!(entries[0].values[0].value, 2048.0, "{ctx}");
                }
                // Without an authoriser, as Kafka: SECURITY_DISABLED (the tenant tests cover
                // them with one).
                ApiKey::DescribeAcls => {
                    let r = conn
                        .send_version(&DescribeAclsRequest::default(), v)
                        .await
                        .unwrap();
                    assert_eq!(r.error_code, 54, "{ctx}");
                }
                ApiKey::CreateAcls => {
                    let creation = create_acls_request::AclCreation::default()
                        .with_resource_type(2)
                        .with_resource_name(s("base"))
                        .with_resource_pattern_type(3)
                        .with_principal(s("User:alice"))
                        .with_host(s("*"))
                        .with_operation(3)
                        .with_permission_type(3);
                    let request = CreateAclsRequest::default().with_creations(vec![creation]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.results[0].error_code, 54, "{ctx}");
                }
                ApiKey::DeleteAcls => {
                    let filter = delete_acls_request::DeleteAclsFilter::default()
                        .with_resource_type_filter(1)
                        .with_pattern_type_filter(1)
                        .with_operation(1)
                        .with_permission_type(1);
                    let request = DeleteAclsRequest::default().with_filters(vec![filter]);
                    let r = conn.send_version(&request, v).await.unwrap();
                    assert_eq!(r.filter_results[0].error_code, 54, "{ctx}");
                }
                other => panic!("advertised but not tested: {other:?}"),
            }
        }
    }
    // Config changes are visible and typed errors name the key.
    let res = DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("base"));
    let r = conn
        .send(&DescribeConfigsRequest::default().with_resources(vec![res]))
        .await
        .unwrap();
    let seg = r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "segment.ms")
        .unwrap();
    assert_eq!(
        (seg.value.as_deref(), seg.config_source),
        (Some("3600000"), 1)
    );
    let bad = CreatableTopic::default()
        .with_name(name("bad-config"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s("retention.ms"))
            .with_value(Some(s("soon")))]);
    let r = conn
        .send(&CreateTopicsRequest::default().with_topics(vec![bad]))
        .await
        .unwrap();
    assert_eq!(
        r.topics[0].error_code,
        strom_protocol::ErrorCode::INVALID_CONFIG.code()
    );
    assert!(r.topics[0]
        .error_message
        .as_deref()
        .unwrap()
        .contains("retention.ms"));
}
