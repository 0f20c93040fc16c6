//! Choosing a record's partition: the topic's metadata (asking the cluster to create a
//! missing topic), then the record's own partition or the partitioner's choice.

use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::{Record, Shared};
use crate::cluster::{Cluster, TopicMetadata};
use crate::error::ClientError;

/// The partition `record` goes to, waiting until `deadline` for the topic's metadata.
pub(super) async fn partition_for(
    shared: &Shared,
    record: &Record,
    record_size: usize,
    deadline: Instant,
) -> Result<i32, ClientError> {
    // The common case reads the current snapshot without copying the topic's metadata.
    let snapshot = shared.cluster.metadata();
    let fresh = snapshot
        .topics
        .get(&record.topic)
        .filter(|t| !t.partitions.is_empty() && shared.cluster.metadata_is_fresh());
    let fetched;
    let topic = match fresh {
        Some(t) => t,
        None => {
            fetched = topic_metadata(&shared.cluster, &record.topic, deadline).await?;
            &fetched
        }
    };
    let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    let chosen = match (record.partition, record.key.as_deref()) {
        (Some(p), _) => p,
        // Keyed records hash over all partitions; the partitioner needs no availability.
        (None, Some(key)) => shared
            .partitioner
            .partition(&record.topic, Some(key), count, &[]),
        (None, None) => {
            let available: Vec<i32> = topic
                .partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| p.partition)
                .collect();
            let partitioner = &shared.partitioner;
            let sticky = partitioner.partition(&record.topic, None, count, &available);
            // KIP-480: a keyless record that would start a new batch on its sticky
            // partition is the cue to stick to another one, so keyless records fill whole
            // batches and spread over the partitions batch by batch.
            if shared.lock().has_room(&record.topic, sticky, record_size) {
                sticky
            } else {
                partitioner.on_new_batch(&record.topic, sticky);
                partitioner.partition(&record.topic, None, count, &available)
            }
        }
    };
    // The record's own partition, or a custom partitioner's answer, must exist; one the
    // metadata does not know yet may have been added since: ask once more.
    if (0..count).contains(&chosen) {
        return Ok(chosen);
    }
    let refreshed = shared
        .cluster
        .refresh_metadata(Some(std::slice::from_ref(&record.topic)))
        .await;
    let grown = refreshed.ok().and_then(|m| {
        let count = m.topics.get(&record.topic)?.partitions.len();
        Some(i32::try_from(count).unwrap_or(i32::MAX))
    });
    match grown {
        Some(count) if (0..count).contains(&chosen) => Ok(chosen),
        _ => Err(ClientError::UnknownTopicOrPartition {
            topic: record.topic.clone(),
            partition: chosen,
        }),
    }
}

/// The topic's metadata with at least one partition. An unknown topic is asked for with
/// `allow_auto_topic_creation`, then looked up again every `retry.backoff.ms`.
async fn topic_metadata(
    cluster: &Cluster,
    topic: &str,
    deadline: Instant,
) -> Result<TopicMetadata, ClientError> {
    let config = cluster.config();
    loop {
        match cluster.topic(topic).await {
            Ok(t) if !t.partitions.is_empty() => return Ok(t),
            Ok(t) if !t.error.is_ok() && !t.error.is_retriable() => {
                return Err(ClientError::Broker {
                    code: t.error,
                    context: format!("metadata for topic {topic}"),
                })
            }
            Ok(_) | Err(ClientError::UnknownTopicOrPartition { .. }) => {}
            Err(e) if !e.is_retriable() => return Err(e),
            Err(e) => debug!(topic, error = %e, "metadata not available yet"),
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout {
                what: format!("metadata for topic {topic}"),
                after_ms: config.max_block_ms,
            });
        }
        if let Err(e) = request_creation(cluster, topic).await {
            debug!(topic, error = %e, "metadata request with auto-creation failed");
        }
        if let Ok(refreshed) = cluster.refresh_metadata(Some(&[topic.to_owned()])).await {
            if let Some(t) = refreshed
                .topics
                .get(topic)
                .filter(|t| !t.partitions.is_empty())
            {
                return Ok(t.clone());
            }
        }
        let backoff = Duration::from_millis(config.retry_backoff_ms);
        tokio::time::sleep_until((Instant::now() + backoff).min(deadline).into()).await;
    }
}

/// Asks a broker for the topic's metadata allowing it to create the topic, as the Java
/// producer does (`allow.auto.create.topics`); the broker decides, by its
/// `auto.create.topics.enable`.
async fn request_creation(cluster: &Cluster, topic: &str) -> Result<(), ClientError> {
    let name = TopicName(StrBytes::from_string(topic.to_owned()));
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name))
        ]))
        .with_allow_auto_topic_creation(true);
    cluster.any_broker().await?.send(&request).await?;
    Ok(())
}
