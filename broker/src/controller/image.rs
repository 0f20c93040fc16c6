//! The metadata image: the cluster metadata as of some point of the metadata log, built by
//! replaying its records. Every node holds one, and nodes that applied the same records
//! hold equal images, so any broker answers Metadata the same way once it has caught up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};
use uuid::Uuid;

use super::records::MetadataRecord;

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BrokerRegistration {
    pub(crate) id: i32,
    /// Raised by every registration, so requests from an older incarnation are told apart.
    pub(crate) epoch: i64,
    pub(crate) host: String,
    pub(crate) port: i32,
    pub(crate) rack: Option<String>,
    /// Fenced brokers lead nothing and are in no ISR.
    pub(crate) fenced: bool,
    /// Every listener's advertised endpoint.
    #[serde(default)]
    pub(crate) endpoints: Vec<super::records::Endpoint>,
}

impl BrokerRegistration {
    /// The host and port of listener `name`, as a client of that listener is told:
    /// the inter-broker endpoint for a broker that does not have that listener.
    pub(crate) fn endpoint(&self, name: &str) -> (&str, i32) {
        self.endpoints
            .iter()
            .find(|e| e.name == name)
            .map_or((self.host.as_str(), self.port), |e| {
                (e.host.as_str(), e.port)
            })
    }
}

/// One partition's replicas and leadership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionRegistration {
    /// The replicas, preferred leader first.
    pub(crate) replicas: Vec<i32>,
    /// The in-sync replicas.
    pub(crate) isr: Vec<i32>,
    /// The leader's node id, -1 for none.
    pub(crate) leader: i32,
    /// Raised when the leader changes; followers truncate by it.
    pub(crate) leader_epoch: i32,
    /// Raised by every change.
    pub(crate) partition_epoch: i32,
    /// Replicas being added by a reassignment.
    pub(crate) adding: Vec<i32>,
    /// Replicas being removed by a reassignment.
    pub(crate) removing: Vec<i32>,
}

/// A topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicImage {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) partitions: Vec<PartitionRegistration>,
    /// Config overrides.
    pub(crate) configs: BTreeMap<String, String>,
}

/// The whole cluster metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetadataImage {
    pub(crate) brokers: BTreeMap<i32, BrokerRegistration>,
    pub(crate) topics: BTreeMap<Uuid, TopicImage>,
    /// Topic ids by name.
    pub(crate) names: BTreeMap<String, Uuid>,
    /// The first producer id not handed out yet.
    pub(crate) next_producer_id: i64,
    /// The cluster's id, once the first controller set it.
    #[serde(default)]
    pub(crate) cluster_id: Option<String>,
    /// Controller addresses of the nodes that follow the log without voting.
    #[serde(default)]
    pub(crate) quorum_peers: BTreeMap<i32, String>,
    /// SCRAM credentials by user, then mechanism name.
    #[serde(default)]
    pub(crate) scram: BTreeMap<String, BTreeMap<String, strom_protocol::sasl::ScramCredential>>,
    /// Client quotas by entity, then key.
    #[serde(default)]
    pub(crate) quotas:
        BTreeMap<crate::quota::QuotaEntity, BTreeMap<String, crate::quota::QuotaValue>>,
    /// Access control lists.
    #[serde(default)]
    pub(crate) acls: std::collections::BTreeSet<strom_protocol::acl::AclBinding>,
    /// Index of the last metadata log entry applied.
    pub(crate) applied: u64,
}

impl MetadataImage {
    /// The topic named `name`.
    pub(crate) fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(self.names.get(name)?)
    }

    /// A partition of a topic, by topic id.
    pub(crate) fn partition(
        &self,
        topic_id: Uuid,
        partition: i32,
    ) -> Option<&PartitionRegistration> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(&topic_id)?.partitions.get(index)
    }

    /// Registered brokers that are not fenced, by id.
    pub(crate) fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Broker `id` registered again (a new incarnation): the partitions it leads get a
    /// new leader epoch, and those it leads or is in the ISR of a new partition epoch.
    /// ISR requests its earlier incarnation made are then dropped (it forgot which
    /// followers it was waiting for), and followers check their logs against its log
    /// before fetching again.
    fn restarted(&mut self, id: i32) {
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if p.leader == id {
                    p.leader_epoch += 1;
                    p.partition_epoch += 1;
                } else if p.isr.contains(&id) {
                    p.partition_epoch += 1;
                }
            }
        }
    }

    /// Applies the record of metadata log entry `index`.
    pub(crate) fn apply(&mut self, record: &MetadataRecord, index: u64) {
        self.applied = self.applied.max(index);
        match record {
            MetadataRecord::RegisterBroker {
                id,
                epoch,
                host,
                port,
                rack,
                endpoints,
            } => {
                if self.brokers.get(id).is_some_and(|b| b.epoch != *epoch) {
                    self.restarted(*id);
                }
                self.brokers.insert(
                    *id,
                    BrokerRegistration {
                        id: *id,
                        epoch: *epoch,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        endpoints: endpoints.clone(),
                        fenced: true,
                    },
                );
            }
            MetadataRecord::FenceBroker { id, epoch, fenced } => {
                match self.brokers.get_mut(id) {
                    Some(broker) if broker.epoch == *epoch => broker.fenced = *fenced,
                    // A record about an incarnation that registered again since.
                    _ => {}
                }
            }
            MetadataRecord::Topic { name, id } => {
                self.names.insert(name.clone(), *id);
                self.topics.insert(
                    *id,
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
            } => {
                let Some(topic) = self.topics.get_mut(topic_id) else {
                    warn!(%topic_id, partition, "partition record for an unknown topic");
                    return;
                };
                let registration = PartitionRegistration {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: 0,
                    adding: Vec::new(),
                    removing: Vec::new(),
                };
                match usize::try_from(*partition) {
                    Ok(i) if i == topic.partitions.len() => topic.partitions.push(registration),
                    Ok(i) if i < topic.partitions.len() => topic.partitions[i] = registration,
                    _ => warn!(%topic_id, partition, "partition record out of order"),
                }
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                if_partition_epoch,
                leader,
                isr,
                replicas,
                adding,
                removing,
            } => {
                let Some(p) = usize::try_from(*partition).ok().and_then(|i| {
                    self.topics
                        .get_mut(topic_id)
                        .and_then(|t| t.partitions.get_mut(i))
                }) else {
                    warn!(%topic_id, partition, "change of an unknown partition");
                    return;
                };
                if if_partition_epoch.is_some_and(|e| e != p.partition_epoch) {
                    // Decided on a state that is gone.
                    return;
                }
                // A fenced broker does not join an ISR (KIP-841): the leader asks again once
                // the controller has unfenced it.
                let brokers = &self.brokers;
                let ineligible = isr.as_ref().and_then(|isr| {
                    isr.iter()
                        .copied()
                        .find(|r| !p.isr.contains(r) && brokers.get(r).is_some_and(|b| b.fenced))
                });
                if let Some(fenced) = ineligible {
                    debug!(%topic_id, partition, broker = fenced, "a fenced broker cannot join the ISR");
                    return;
                }
                if let Some(leader) = leader {
                    if *leader != p.leader {
                        p.leader = *leader;
                        p.leader_epoch += 1;
                    }
                }
                let set = |field: &mut Vec<i32>, value: &Option<Vec<i32>>| {
                    if let Some(value) = value {
                        field.clone_from(value);
                    }
                };
                set(&mut p.isr, isr);
                set(&mut p.replicas, replicas);
                set(&mut p.adding, adding);
                set(&mut p.removing, removing);
                p.partition_epoch += 1;
            }
            MetadataRecord::RemoveTopic { id } => {
                if let Some(topic) = self.topics.remove(id) {
                    self.names.remove(&topic.name);
                }
            }
            MetadataRecord::TopicConfig {
                topic_id,
                name,
                value,
            } => {
                let Some(topic) = self.topics.get_mut(topic_id) else {
                    return;
                };
                match value {
                    Some(value) => topic.configs.insert(name.clone(), value.clone()),
                    None => topic.configs.remove(name),
                };
            }
            MetadataRecord::ProducerIds { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
            MetadataRecord::QuorumPeer { id, address } => {
                self.quorum_peers.insert(*id, address.clone());
            }
            MetadataRecord::Cluster { id } => {
                // Set once: a second proposal (two leaders racing to set it) loses.
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(id.clone());
                }
            }
            MetadataRecord::UserScramCredential {
                user,
                mechanism,
                salt,
                iterations,
                stored_key,
                server_key,
            } => {
                let credential = strom_protocol::sasl::ScramCredential {
                    salt: salt.clone(),
                    iterations: *iterations,
                    stored_key: stored_key.clone(),
                    server_key: server_key.clone(),
                };
                self.scram
                    .entry(user.clone())
                    .or_default()
                    .insert(mechanism.clone(), credential);
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                let values = self.quotas.entry(entity.clone()).or_default();
                match value {
                    Some(value) => values.insert(key.clone(), *value),
                    None => values.remove(key),
                };
                if values.is_empty() {
                    self.quotas.remove(entity);
                }
            }
            MetadataRecord::Acl { binding } => {
                self.acls.insert(binding.clone());
            }
            MetadataRecord::RemoveAcl { binding } => {
                self.acls.remove(binding);
            }
            MetadataRecord::RemoveUserScramCredential { user, mechanism } => {
                if let Some(mechanisms) = self.scram.get_mut(user) {
                    mechanisms.remove(mechanism);
                    if mechanisms.is_empty() {
                        self.scram.remove(user);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(id: i32, epoch: i64) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            id,
            epoch,
            host: "127.0.0.1".into(),
            port: 9000 + id,
            rack: None,
            endpoints: Vec::new(),
        }
    }

    fn change(topic_id: Uuid, leader: Option<i32>, isr: Option<Vec<i32>>) -> MetadataRecord {
        MetadataRecord::PartitionChange {
            topic_id,
            partition: 0,
            if_partition_epoch: None,
            leader,
            isr,
            replicas: None,
            adding: None,
            removing: None,
        }
    }

    #[test]
    fn replaying_records_builds_the_image() {
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        let records = [
            register(1, 1),
            register(2, 1),
            MetadataRecord::FenceBroker {
                id: 1,
                epoch: 1,
                fenced: false,
            },
            MetadataRecord::FenceBroker {
                id: 2,
                epoch: 1,
                fenced: false,
            },
            MetadataRecord::Topic {
                name: "t".into(),
                id,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
            },
            // The ISR shrinks: same leader, same leader epoch.
            change(id, Some(1), Some(vec![1])),
            // A new leader: the leader epoch moves.
            change(id, Some(2), Some(vec![2])),
            MetadataRecord::TopicConfig {
                topic_id: id,
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::ProducerIds { next: 1000 },
        ];
        for (i, record) in records.iter().enumerate() {
            image.apply(record, i as u64 + 1);
        }
        assert_eq!(image.applied, 10);
        assert_eq!(
            image.live_brokers().map(|b| b.id).collect::<Vec<_>>(),
            [1, 2]
        );
        let p = image.partition(id, 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
        assert_eq!(p.isr, [2]);
        assert_eq!(image.topic("t").unwrap().configs["retention.ms"], "1000");
        assert_eq!(image.next_producer_id, 1000);

        // A snapshot is the image itself.
        let copy: MetadataImage =
            serde_json::from_slice(&serde_json::to_vec(&image).unwrap()).unwrap();
        assert_eq!(copy, image);

        image.apply(&MetadataRecord::RemoveTopic { id }, 10);
        assert!(image.topic("t").is_none() && image.topics.is_empty());
    }

    #[test]
    fn a_change_decided_on_a_replaced_state_is_dropped() {
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        image.apply(
            &MetadataRecord::Topic {
                name: "t".into(),
                id,
            },
            1,
        );
        image.apply(
            &MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
            },
            2,
        );
        let guarded = |epoch: i32, isr: Vec<i32>| MetadataRecord::PartitionChange {
            topic_id: id,
            partition: 0,
            if_partition_epoch: Some(epoch),
            leader: None,
            isr: Some(isr),
            replicas: None,
            adding: None,
            removing: None,
        };
        image.apply(&guarded(0, vec![1]), 3);
        // Decided at epoch 0 too, but the first change moved the partition to epoch 1.
        image.apply(&guarded(0, vec![2]), 4);
        let p = image.partition(id, 0).unwrap();
        assert_eq!((p.isr.clone(), p.partition_epoch), (vec![1], 1));
    }

    #[test]
    fn a_fence_for_an_older_incarnation_is_ignored() {
        let mut image = MetadataImage::default();
        image.apply(&register(1, 1), 1);
        image.apply(&register(1, 2), 2);
        let unfence = |epoch| MetadataRecord::FenceBroker {
            id: 1,
            epoch,
            fenced: false,
        };
        image.apply(&unfence(1), 3);
        assert!(image.brokers[&1].fenced, "epoch 1 is gone");
        image.apply(&unfence(2), 4);
        assert!(!image.brokers[&1].fenced);
    }

    #[test]
    fn a_restarted_broker_bumps_its_partitions_and_fenced_brokers_do_not_join_isrs() {
        let id = Uuid::from_u128(5);
        let mut image = MetadataImage::default();
        let mut at = 0;
        let mut apply = |image: &mut MetadataImage, r: MetadataRecord| {
            at += 1;
            image.apply(&r, at);
        };
        for b in [1, 2, 3] {
            apply(&mut image, register(b, 1));
        }
        apply(
            &mut image,
            MetadataRecord::Topic {
                name: "t".into(),
                id,
            },
        );
        for (partition, leader) in [(0, 1), (1, 2)] {
            apply(
                &mut image,
                MetadataRecord::Partition {
                    topic_id: id,
                    partition,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2],
                    leader,
                    leader_epoch: 0,
                },
            );
        }
        // 3 is fenced (registered, never unfenced): it may not join.
        apply(&mut image, change(id, None, Some(vec![1, 2, 3])));
        assert_eq!(image.partition(id, 0).unwrap().isr, [1, 2]);
        // 1 registers again: what it leads gets a new leader epoch, what it is in the ISR
        // of a new partition epoch; 3's partition is untouched otherwise.
        apply(&mut image, register(1, 2));
        let (p0, p1) = (
            image.partition(id, 0).unwrap().clone(),
            image.partition(id, 1).unwrap().clone(),
        );
        assert_eq!((p0.leader, p0.leader_epoch, p0.partition_epoch), (1, 1, 1));
        assert_eq!((p1.leader, p1.leader_epoch, p1.partition_epoch), (2, 0, 1));
    }
}
