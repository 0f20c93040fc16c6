//! The records of the cluster metadata log: each committed Raft entry holds one
//! [`MetadataRecord`], and replaying them in order gives the cluster's metadata (KRaft's
//! idea: the metadata is a log, the image is its replay).
//!
//! Records are produced by the active controller after it checked them against its image,
//! so replaying one never fails; they are encoded as JSON so the log stays readable and a
//! field added later can default when an older record is read.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a broker's listener is, as clients are told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Endpoint {
    /// The listener's name.
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: i32,
}

/// One change to the cluster metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum MetadataRecord {
    /// A broker registered, or registered again after a restart (with a higher epoch).
    /// It starts fenced: it leads nothing until it has caught up and is unfenced.
    RegisterBroker {
        id: i32,
        epoch: i64,
        host: String,
        port: i32,
        #[serde(default)]
        rack: Option<String>,
        /// Every listener's advertised endpoint; `host` and `port` are the inter-broker
        /// listener's.
        #[serde(default)]
        endpoints: Vec<Endpoint>,
    },
    /// A registered broker's fencing changed: fenced brokers lead no partition and are in
    /// no ISR.
    FenceBroker { id: i32, epoch: i64, fenced: bool },
    /// A topic was created; its partitions follow as [`MetadataRecord::Partition`].
    Topic { name: String, id: Uuid },
    /// A partition was created (with its topic, or added later).
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
    },
    /// Some of a partition's state changed; fields left `None` keep their value. A new
    /// leader (or a leader that gave up leadership) bumps the leader epoch; every change
    /// bumps the partition epoch. With `if_partition_epoch`, the change applies only if
    /// the partition is still at that epoch: a change decided on a state that another
    /// change replaced meanwhile (a deposed controller's, a stale leader's ISR request) is
    /// dropped by every node alike.
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        #[serde(default)]
        if_partition_epoch: Option<i32>,
        #[serde(default)]
        leader: Option<i32>,
        #[serde(default)]
        isr: Option<Vec<i32>>,
        #[serde(default)]
        replicas: Option<Vec<i32>>,
        #[serde(default)]
        adding: Option<Vec<i32>>,
        #[serde(default)]
        removing: Option<Vec<i32>>,
    },
    /// A topic and its partitions were deleted.
    RemoveTopic { id: Uuid },
    /// A topic's config override was set (`Some`) or removed (`None`).
    TopicConfig {
        topic_id: Uuid,
        name: String,
        value: Option<String>,
    },
    /// Producer ids below `next` have been handed out.
    ProducerIds { next: i64 },
    /// The cluster's id, proposed once by the first controller to lead.
    Cluster { id: String },
    /// A node that follows the metadata log without voting (a broker-only node) and where
    /// its controller listener is, so every controller can reach it when it leads.
    QuorumPeer { id: i32, address: String },
    /// A user's SCRAM credential for one mechanism (`SCRAM-SHA-256` or `SCRAM-SHA-512`):
    /// salted keys, never the password (AlterUserScramCredentials).
    UserScramCredential {
        user: String,
        mechanism: String,
        salt: Vec<u8>,
        iterations: u32,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
    },
    /// A user's SCRAM credential for one mechanism was deleted.
    RemoveUserScramCredential { user: String, mechanism: String },
    /// A client quota was set (`Some`) or removed (`None`) (AlterClientQuotas).
    ClientQuota {
        entity: crate::quota::QuotaEntity,
        key: String,
        value: Option<crate::quota::QuotaValue>,
    },
    /// An ACL was created (CreateAcls).
    Acl {
        binding: strom_protocol::acl::AclBinding,
    },
    /// An ACL was deleted (DeleteAcls).
    RemoveAcl {
        binding: strom_protocol::acl::AclBinding,
    },
}

impl MetadataRecord {
    /// The record as stored in a Raft entry.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record read back from a Raft entry.
    pub(crate) fn decode(data: &[u8]) -> Result<MetadataRecord, serde_json::Error> {
        serde_json::from_slice(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_new_fields_default() {
        let id = Uuid::new_v4();
        let records = [
            MetadataRecord::RegisterBroker {
                id: 1,
                epoch: 7,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: Some("a".into()),
                endpoints: Vec::new(),
            },
            MetadataRecord::Topic {
                name: "orders".into(),
                id,
            },
            MetadataRecord::PartitionChange {
                topic_id: id,
                partition: 0,
                if_partition_epoch: Some(3),
                leader: Some(2),
                isr: Some(vec![2, 3]),
                replicas: None,
                adding: None,
                removing: None,
            },
            MetadataRecord::TopicConfig {
                topic_id: id,
                name: "retention.ms".into(),
                value: None,
            },
        ];
        for record in records {
            assert_eq!(MetadataRecord::decode(&record.encode()).unwrap(), record);
        }
        let old = br#"{"type":"register_broker","id":1,"epoch":1,"host":"h","port":1}"#;
        assert!(matches!(
            MetadataRecord::decode(old).unwrap(),
            MetadataRecord::RegisterBroker { rack: None, .. }
        ));
        assert!(MetadataRecord::decode(b"{\"type\":\"nonsense\"}").is_err());
    }
}
