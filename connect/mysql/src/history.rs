//! The schema history: a one-partition topic with the schema of each captured table at
//! each binlog position where it changed (the snapshot, then every DDL), so that after a
//! restart rows are read with the schema in force where streaming resumes.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use strom_client::admin::{Admin, NewTopic, OffsetSpec};
use strom_client::consumer::Consumer;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_connect_api::ConnectError;
use tracing::warn;

use crate::envelope::{now_ms, Position};
use crate::schema::TableSchema;

/// Tables by (database, table).
pub type Schemas = HashMap<(String, String), TableSchema>;

/// The history topic of one connector.
pub struct SchemaHistory {
    topic: String,
    server: String,
    client: ClientConfig,
    producer: Producer,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::Failed(format!("schema history: {what}: {e}"))
}

impl SchemaHistory {
    /// Opens (creating if missing) `topic` on `servers`, for the connector `server`.
    ///
    /// # Errors
    /// Kafka errors.
    pub async fn open(
        servers: &str,
        topic: &str,
        server: &str,
    ) -> Result<SchemaHistory, ConnectError> {
        let client = ClientConfig::new().bootstrap(servers);
        let admin = Admin::connect(client.clone())
            .await
            .map_err(|e| failed(servers, e))?;
        let topics = admin
            .list_topics(true)
            .await
            .map_err(|e| failed(topic, e))?;
        if !topics.iter().any(|t| t == topic) {
            admin
                .create_topic(
                    NewTopic::new(topic)
                        .partitions(1)
                        .config("cleanup.policy", "delete")
                        .config("retention.ms", "-1"),
                )
                .await
                .map_err(|e| failed(topic, e))?;
        }
        let producer = Producer::new(client.clone().enable_idempotence(true))
            .await
            .map_err(|e| failed(topic, e))?;
        Ok(SchemaHistory {
            topic: topic.to_owned(),
            server: server.to_owned(),
            client,
            producer,
        })
    }

    /// Records `tables` (`None`: dropped) as of `position`, after `ddl` (empty for a
    /// snapshot), and waits until the topic has it.
    ///
    /// # Errors
    /// Kafka errors.
    pub async fn record(
        &self,
        position: &Position,
        db: &str,
        ddl: &str,
        tables: &[(String, String, Option<&TableSchema>)],
    ) -> Result<(), ConnectError> {
        let changes: Vec<serde_json::Value> = tables
            .iter()
            .map(|(db, table, schema)| match schema {
                Some(s) => {
                    let mut change = s.to_json();
                    change["type"] = json!("CREATE");
                    change
                }
                None => json!({"type": "DROP", "id": format!("\"{db}\".\"{table}\"")}),
            })
            .collect();
        let value = json!({
            "source": {"server": self.server},
            "position": {"file": position.file, "pos": position.pos, "gtid": position.gtid},
            "ts_ms": now_ms(),
            "databaseName": db,
            "ddl": ddl,
            "tableChanges": changes,
        });
        let record = Record::new(&self.topic)
            .key(self.server.clone())
            .value(value.to_string());
        let delivery = self
            .producer
            .send(record)
            .await
            .map_err(|e| failed(&self.topic, e))?;
        delivery.await.map_err(|e| failed(&self.topic, e))?;
        Ok(())
    }

    /// The schemas in force at `position`: every record of this connector up to it,
    /// applied in order. `None` when the history has nothing of this connector.
    ///
    /// # Errors
    /// Kafka errors.
    pub async fn load(&self, position: &Position) -> Result<Option<Schemas>, ConnectError> {
        let admin = Admin::connect(self.client.clone())
            .await
            .map_err(|e| failed(&self.topic, e))?;
        let ends = admin
            .list_offsets(&self.topic, OffsetSpec::Latest)
            .await
            .map_err(|e| failed(&self.topic, e))?;
        let consumer = Consumer::new(self.client.clone())
            .await
            .map_err(|e| failed(&self.topic, e))?;
        let assigned: Vec<(String, i32)> = ends.keys().map(|p| (self.topic.clone(), *p)).collect();
        consumer
            .assign(&assigned)
            .map_err(|e| failed(&self.topic, e))?;
        consumer
            .seek_to_beginning(&assigned)
            .map_err(|e| failed(&self.topic, e))?;
        let mut schemas: Option<Schemas> = None;
        loop {
            let mut done = true;
            for (partition, end) in &ends {
                let at = consumer
                    .position(&self.topic, *partition)
                    .await
                    .map_err(|e| failed(&self.topic, e))?;
                done &= at >= end.offset;
            }
            if done {
                break;
            }
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .map_err(|e| failed(&self.topic, e))?;
            for record in records {
                let Some(value) = record.value.as_deref() else {
                    continue;
                };
                let Ok(entry) = serde_json::from_slice::<serde_json::Value>(value) else {
                    warn!(topic = %self.topic, offset = record.offset, "schema history: a record that is not JSON");
                    continue;
                };
                if entry["source"]["server"].as_str() != Some(&self.server) {
                    continue;
                }
                let (Some(file), Some(pos)) = (
                    entry["position"]["file"].as_str(),
                    entry["position"]["pos"].as_u64(),
                ) else {
                    continue;
                };
                // A change recorded at the resume position itself is in force there.
                if !position.at_or_after(file, pos) {
                    continue;
                }
                let into = schemas.get_or_insert_with(Schemas::new);
                for change in entry["tableChanges"].as_array().into_iter().flatten() {
                    let Some((db, table)) = change["id"].as_str().and_then(parse_id) else {
                        continue;
                    };
                    match change["type"].as_str() {
                        Some("DROP") => {
                            into.remove(&(db, table));
                        }
                        _ => match TableSchema::from_json(&db, &table, change) {
                            Some(schema) => {
                                into.insert((db, table), schema);
                            }
                            None => {
                                warn!(topic = %self.topic, offset = record.offset, "schema history: a table change it cannot read")
                            }
                        },
                    }
                }
            }
        }
        consumer.close();
        Ok(schemas)
    }
}

/// `"db"."table"` into its parts.
fn parse_id(id: &str) -> Option<(String, String)> {
    let (db, table) = id.split_once("\".\"")?;
    Some((
        db.strip_prefix('"')?.to_owned(),
        table.strip_suffix('"')?.to_owned(),
    ))
}
