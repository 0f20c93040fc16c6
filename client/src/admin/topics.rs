//! Topics: CreateTopics (key 19), DeleteTopics (key 20), CreatePartitions (key 37), and
//! Metadata (key 3) to list and describe them.
//!
//! Creating, deleting and growing topics go to the controller; a `NOT_CONTROLLER` answer
//! (the controller moved) refreshes the metadata and retries the topics it concerned.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, TopicName,
};
use strom_protocol::ErrorCode;
use tracing::debug;
use uuid::Uuid;

use super::retry::Retry;
use super::{check, str_bytes, Admin};
use crate::cluster::PartitionMetadata;
use crate::error::ClientError;

/// A topic to create: its name, and what the broker's defaults do not cover.
///
/// ```
/// use strom_client::admin::NewTopic;
/// let topic = NewTopic::new("orders").partitions(6).replication_factor(3).config("retention.ms", "86400000");
/// assert_eq!(topic.partitions, Some(6));
/// assert_eq!(topic.configs["retention.ms"], "86400000");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic's name.
    pub name: String,
    /// Number of partitions; `None` for the broker's `num.partitions`.
    pub partitions: Option<i32>,
    /// Replicas per partition; `None` for the broker's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    /// Topic-level config overrides (`retention.ms`, `cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic named `name` with the broker's defaults.
    pub fn new(name: impl Into<String>) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions: None,
            replication_factor: None,
            configs: BTreeMap::new(),
        }
    }

    /// Sets the number of partitions.
    pub fn partitions(mut self, partitions: i32) -> NewTopic {
        self.partitions = Some(partitions);
        self
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, replication_factor: i16) -> NewTopic {
        self.replication_factor = Some(replication_factor);
        self
    }

    /// Adds a topic-level config override.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.insert(key.into(), value.into());
        self
    }

    fn to_request(&self) -> CreatableTopic {
        let configs = self
            .configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(str_bytes(k))
                    .with_value(Some(str_bytes(v)))
            })
            .collect();
        CreatableTopic::default()
            .with_name(topic_name(&self.name))
            .with_num_partitions(self.partitions.unwrap_or(-1))
            .with_replication_factor(self.replication_factor.unwrap_or(-1))
            .with_configs(configs)
    }
}

/// A topic as the cluster's metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// The topic id (nil when the broker predates topic ids, or on error).
    pub id: Uuid,
    /// Whether Kafka treats it as internal (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Partitions, ordered by index.
    pub partitions: Vec<PartitionMetadata>,
    /// The topic's error: `UNKNOWN_TOPIC_OR_PARTITION` when it does not exist, `NONE` when
    /// described.
    pub error: ErrorCode,
}

/// Per-topic outcome of [`Admin::create_topics`] or [`Admin::delete_topics`], in request order.
pub type TopicResults<T> = Vec<(String, Result<T, ClientError>)>;

impl Admin {
    /// Creates topics (or, with `validate_only`, checks that they could be created). Returns
    /// each topic's id (nil from brokers before CreateTopics v7, and when only validating)
    /// or its error, carrying the broker's message.
    ///
    /// # Errors
    /// The outer error when the request as a whole fails (no controller reachable within
    /// the API timeout); per-topic errors such as `TOPIC_ALREADY_EXISTS`,
    /// `INVALID_CONFIG` or `INVALID_REPLICATION_FACTOR` are in the results.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<TopicResults<Uuid>, ClientError> {
        let mut results: HashMap<String, Result<Uuid, ClientError>> = HashMap::new();
        let mut pending: Vec<&NewTopic> = topics.iter().collect();
        let mut retry = self.retry("create topics");
        while !pending.is_empty() {
            let answers = match self.create_topics_once(&pending, validate_only).await {
                Ok(answers) => answers,
                Err(e) => {
                    self.backoff(&mut retry, e, &[]).await?;
                    continue;
                }
            };
            let mut again = None;
            for (name, result) in answers {
                match &result {
                    Err(ClientError::Broker { code, context })
                        if code.is_retriable()
                            && *code != ErrorCode::UNKNOWN_TOPIC_OR_PARTITION =>
                    {
                        again = Some(ClientError::Broker {
                            code: *code,
                            context: context.clone(),
                        });
                    }
                    _ => pending.retain(|t| t.name != name),
                }
                results.insert(name, result);
            }
            let Some(error) = again else { continue };
            // A topic-level retriable code (the controller moved): retry the topics it hit.
            // Out of time, they keep their last error.
            if self.backoff(&mut retry, error, &[]).await.is_err() {
                break;
            }
        }
        Ok(topics
            .iter()
            .map(|t| {
                let result = results
                    .remove(t.name.as_str())
                    .unwrap_or_else(|| Err(missing_result("create topic", &t.name)));
                (t.name.clone(), result)
            })
            .collect())
    }

    /// One CreateTopics round trip to the controller for `topics`; answers by name.
    async fn create_topics_once(
        &self,
        topics: &[&NewTopic],
        validate_only: bool,
    ) -> Result<Vec<(String, Result<Uuid, ClientError>)>, ClientError> {
        let conn = self.cluster.controller().await?;
        let request = CreateTopicsRequest::default()
            .with_topics(topics.iter().map(|t| t.to_request()).collect())
            .with_timeout_ms(self.request_timeout_ms())
            .with_validate_only(validate_only);
        let response = conn.send(&request).await?;
        Ok(response
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let result = check(t.error_code, t.error_message.as_ref(), || {
                    format!("create topic {name}")
                })
                .map(|()| t.topic_id);
                debug!(topic = %name, ok = result.is_ok(), "create topic");
                (name, result)
            })
            .collect())
    }

    /// Creates one topic and returns its id (nil from brokers before CreateTopics v7).
    ///
    /// # Errors
    /// The topic's own error (`TOPIC_ALREADY_EXISTS`, `INVALID_CONFIG`, ...) as
    /// [`ClientError::Broker`] with the broker's message, or the request's.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<Uuid, ClientError> {
        let name = topic.name.clone();
        self.create_topics(&[topic], false)
            .await?
            .pop()
            .map_or_else(
                || Err(missing_result("create topic", &name)),
                |(_, result)| result,
            )
    }

    /// Deletes topics; returns each topic's outcome in request order.
    ///
    /// # Errors
    /// The outer error when the request as a whole fails; per-topic errors such as
    /// `UNKNOWN_TOPIC_OR_PARTITION` are in the results.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<TopicResults<()>, ClientError> {
        let mut answers = self
            .with_retries("delete topics", &[], || async {
                let conn = self.cluster.controller().await?;
                let mut request =
                    DeleteTopicsRequest::default().with_timeout_ms(self.request_timeout_ms());
                if conn.version_for::<DeleteTopicsRequest>()? >= 6 {
                    request.topics = names
                        .iter()
                        .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                        .collect();
                } else {
                    request.topic_names = names.iter().map(|n| topic_name(n)).collect();
                }
                let response = conn.send(&request).await?;
                let mut answers = HashMap::new();
                for t in response.responses {
                    let Some(name) = t.name.map(|n| n.0.to_string()) else {
                        continue;
                    };
                    match check(t.error_code, t.error_message.as_ref(), || {
                        format!("delete topic {name}")
                    }) {
                        // The controller moved: send the whole request again.
                        Err(e) if Retry::is_retriable(&e) => return Err(e),
                        result => answers.insert(name, result),
                    };
                }
                Ok(answers)
            })
            .await?;
        Ok(names
            .iter()
            .map(|n| {
                let result = answers
                    .remove(*n)
                    .unwrap_or_else(|| Err(missing_result("delete topic", n)));
                ((*n).to_owned(), result)
            })
            .collect())
    }

    /// Deletes one topic.
    ///
    /// # Errors
    /// `UNKNOWN_TOPIC_OR_PARTITION` as [`ClientError::Broker`] when there is no such topic,
    /// or the request's error.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        self.delete_topics(&[name]).await?.pop().map_or_else(
            || Err(missing_result("delete topic", name)),
            |(_, result)| result,
        )
    }

    /// Names of the cluster's topics, sorted; internal ones (`__consumer_offsets`, ...) only
    /// with `include_internal`.
    ///
    /// # Errors
    /// When no broker answers within the API timeout.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>, ClientError> {
        let metadata = self
            .with_retries("list topics", &[], || self.cluster.refresh_metadata(None))
            .await?;
        Ok(metadata
            .topics
            .values()
            .filter(|t| include_internal || !t.is_internal)
            .map(|t| t.name.clone())
            .collect())
    }

    /// Describes topics from fresh metadata, in request order. A topic that does not exist
    /// is described with error `UNKNOWN_TOPIC_OR_PARTITION` and no partitions; one still
    /// being created (`LEADER_NOT_AVAILABLE`) is asked for again until the API timeout.
    ///
    /// # Errors
    /// When no broker answers within the API timeout.
    pub async fn describe_topics(
        &self,
        names: &[&str],
    ) -> Result<Vec<TopicDescription>, ClientError> {
        let wanted: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut retry = self.retry("describe topics");
        loop {
            let metadata = match self.cluster.refresh_metadata(Some(&wanted)).await {
                Ok(metadata) => metadata,
                Err(e) => {
                    self.backoff(&mut retry, e, &[]).await?;
                    continue;
                }
            };
            let described: Vec<TopicDescription> = wanted
                .iter()
                .map(|name| match metadata.topics.get(name) {
                    Some(t) => TopicDescription {
                        name: t.name.clone(),
                        id: t.id,
                        internal: t.is_internal,
                        partitions: t.partitions.clone(),
                        error: t.error,
                    },
                    None => TopicDescription {
                        name: name.clone(),
                        id: Uuid::nil(),
                        internal: false,
                        partitions: Vec::new(),
                        error: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    },
                })
                .collect();
            let unsettled = described.iter().find(|d| {
                d.error.is_retriable() && d.error != ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            });
            let Some(d) = unsettled else {
                return Ok(described);
            };
            let error = ClientError::Broker {
                code: d.error,
                context: format!("describe topic {}", d.name),
            };
            if self.backoff(&mut retry, error, &[]).await.is_err() {
                return Ok(described);
            }
        }
    }

    /// Grows `topic` to `total` partitions (Kafka cannot shrink a topic).
    ///
    /// # Errors
    /// `INVALID_PARTITIONS` when `total` is not above the current count,
    /// `UNKNOWN_TOPIC_OR_PARTITION`, or the request's error; as [`ClientError::Broker`]
    /// with the broker's message.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<(), ClientError> {
        self.with_retries(format!("create partitions for {topic}"), &[], || async {
            let conn = self.cluster.controller().await?;
            let request = CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(topic))
                    .with_count(total)
                    .with_assignments(None)])
                .with_timeout_ms(self.request_timeout_ms());
            let response = conn.send(&request).await?;
            let result = response
                .results
                .into_iter()
                .find(|r| r.name.0.as_str() == topic)
                .ok_or_else(|| missing_result("create partitions for", topic))?;
            check(result.error_code, result.error_message.as_ref(), || {
                format!("create partitions for {topic}")
            })
        })
        .await
    }
}

/// A Kafka topic name from a Rust string.
pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

/// The error for a topic the broker's answer left out.
fn missing_result(what: &str, topic: &str) -> ClientError {
    ClientError::Broker {
        code: ErrorCode::UNKNOWN_SERVER_ERROR,
        context: format!("{what} {topic}: the broker's answer does not mention the topic"),
    }
}
