//! Golden SQL tests: the `.slt` files here (sqllogictest format) run against fixed topic
//! contents (`topics.json`) on the embedded broker, through [`SqlSession`] with the same
//! JSON inference as `strom sql`.
//!
//! Beyond SQL, the files may use:
//! - `RESET strom_fetched`: zero the counters of records fetched and undecodable;
//! - table `strom_fetched (topic, fetched)`: records fetched from each topic since;
//! - table `strom_undecodable (topic, partition, offset, reason)`: records that did not
//!   decode since;
//! - `FOLLOW [GRACE <ms>] <query>`: the query run as a continuous query over the topic's
//!   records (then ended), rows in the order emitted; table `strom_follow (late,
//!   undecodable)` says what the last one dropped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::read_all;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use strom_sql::arrow::array::{Array, Int64Array, StringArray, UInt64Array};
use strom_sql::arrow::datatypes::{DataType, Field, Schema};
use strom_sql::arrow::record_batch::RecordBatch;
use strom_sql::arrow::util::display::{ArrayFormatter, FormatOptions};
use strom_sql::{
    infer_json_format, source_table, ContinuousQuery, SqlError, SqlSession, TopicTable, ValueFormat,
};

/// What the files query: the session, its topics and the fixture's cluster.
struct Golden {
    client: ClientConfig,
    session: SqlSession,
    tables: BTreeMap<String, (Arc<TopicTable>, ValueFormat)>,
    follow: (u64, u64),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GoldenError(String);

impl From<SqlError> for GoldenError {
    fn from(e: SqlError) -> Self {
        GoldenError(e.to_string())
    }
}

/// Writes `topics.json` to the cluster.
async fn load(client: &ClientConfig) {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("topics.json")).unwrap();
    let admin = Admin::connect(client.clone()).await.unwrap();
    let producer = Producer::new(client.clone()).await.unwrap();
    for (topic, spec) in fixture.as_object().unwrap() {
        let partitions = i32::try_from(spec["partitions"].as_i64().unwrap()).unwrap();
        admin
            .create_topic(NewTopic::new(topic).partitions(partitions))
            .await
            .unwrap();
        for record in spec["records"].as_array().unwrap() {
            let value = match (&record["value"], &record["raw"]) {
                (serde_json::Value::Null, raw) => raw.as_str().unwrap().to_owned(),
                (value, _) => value.to_string(),
            };
            let r = Record::new(topic)
                .partition(i32::try_from(record["partition"].as_i64().unwrap()).unwrap())
                .timestamp(record["timestamp"].as_i64().unwrap())
                .key(record["key"].as_str().unwrap().to_owned())
                .value(value);
            // One at a time, so offsets follow the file.
            producer.send(r).await.unwrap().await.unwrap();
        }
    }
    producer.close().await;
}

impl Golden {
    async fn new(client: ClientConfig) -> Golden {
        let session = SqlSession::new().unwrap();
        let admin = Admin::connect(client.clone()).await.unwrap();
        let mut tables = BTreeMap::new();
        for topic in admin.list_topics(false).await.unwrap() {
            let format = infer_json_format(&client, &topic, 100).await.unwrap();
            let table = TopicTable::new(client.clone(), &topic, format.clone()).unwrap();
            tables.insert(
                topic.clone(),
                (session.register(&topic, table).unwrap(), format),
            );
        }
        Golden {
            client,
            session,
            tables,
            follow: (0, 0),
        }
    }

    /// The counters as tables the files can query.
    fn register_counters(&self) -> Result<(), GoldenError> {
        let ctx = self.session.context();
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        let int = |name: &str| Field::new(name, DataType::Int64, false);
        let fetched = RecordBatch::try_new(
            Arc::new(Schema::new(vec![text("topic"), int("fetched")])),
            vec![
                Arc::new(StringArray::from_iter_values(self.tables.keys())),
                Arc::new(Int64Array::from_iter_values(
                    self.tables.values().map(|(t, _)| t.fetched() as i64),
                )),
            ],
        )
        .map_err(|e| GoldenError(e.to_string()))?;
        let bad: Vec<_> = self
            .tables
            .values()
            .flat_map(|(t, _)| t.undecodable())
            .collect();
        let undecodable = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                text("topic"),
                int("partition"),
                int("offset"),
                text("reason"),
            ])),
            vec![
                Arc::new(StringArray::from_iter_values(bad.iter().map(|b| &b.topic))),
                Arc::new(Int64Array::from_iter_values(
                    bad.iter().map(|b| i64::from(b.partition)),
                )),
                Arc::new(Int64Array::from_iter_values(bad.iter().map(|b| b.offset))),
                Arc::new(StringArray::from_iter_values(bad.iter().map(|b| &b.reason))),
            ],
        )
        .map_err(|e| GoldenError(e.to_string()))?;
        let follow = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("late", DataType::UInt64, false),
                Field::new("undecodable", DataType::UInt64, false),
            ])),
            vec![
                Arc::new(UInt64Array::from(vec![self.follow.0])),
                Arc::new(UInt64Array::from(vec![self.follow.1])),
            ],
        )
        .map_err(|e| GoldenError(e.to_string()))?;
        for (name, batch) in [
            ("strom_fetched", fetched),
            ("strom_undecodable", undecodable),
            ("strom_follow", follow),
        ] {
            ctx.deregister_table(name)
                .map_err(|e| GoldenError(e.to_string()))?;
            ctx.register_batch(name, batch)
                .map_err(|e| GoldenError(e.to_string()))?;
        }
        Ok(())
    }

    /// `FOLLOW [GRACE ms] query`: every record of the topic through a continuous query.
    async fn follow(&mut self, statement: &str) -> Result<Vec<RecordBatch>, GoldenError> {
        let mut grace = Duration::ZERO;
        let mut query = statement;
        if let Some(rest) = query.strip_prefix("GRACE ") {
            let (ms, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            grace = Duration::from_millis(ms.parse().map_err(|_| GoldenError(ms.to_owned()))?);
            query = rest;
        }
        let topic = source_table(query)?;
        let (_, format) = self
            .tables
            .get(&topic)
            .ok_or_else(|| GoldenError(format!("no topic {topic}")))?;
        let mut continuous =
            ContinuousQuery::with_grace(query, &topic, format.clone(), grace).await?;
        let records = read_all(&self.client, &topic).await;
        let emitted = continuous.push(&records).await?;
        let mut rows = emitted.rows;
        rows.extend(continuous.finish().await?);
        self.follow = (emitted.late as u64, emitted.undecodable.len() as u64);
        Ok(rows)
    }
}

/// Rows as the files write them: NULL, (empty), floats with their decimal point.
fn rows(
    batches: &[RecordBatch],
) -> Result<(Vec<sqllogictest::DefaultColumnType>, Vec<Vec<String>>), GoldenError> {
    use sqllogictest::DefaultColumnType as T;
    let mut types = Vec::new();
    let mut rows = Vec::new();
    for batch in batches {
        types = batch
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                d if d.is_integer() => T::Integer,
                d if d.is_floating() => T::FloatingPoint,
                _ => T::Text,
            })
            .collect();
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| GoldenError(e.to_string()))?;
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, f)| {
                        if column.is_null(row) {
                            "NULL".to_owned()
                        } else {
                            match f.value(row).to_string() {
                                s if s.is_empty() => "(empty)".to_owned(),
                                s => s,
                            }
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok((types, rows))
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Golden {
    type Error = GoldenError;
    type ColumnType = sqllogictest::DefaultColumnType;

    async fn run(
        &mut self,
        sql: &str,
    ) -> Result<sqllogictest::DBOutput<Self::ColumnType>, GoldenError> {
        let sql = sql.trim();
        if sql.eq_ignore_ascii_case("RESET strom_fetched") {
            for (table, _) in self.tables.values() {
                table.reset_counters();
            }
            return Ok(sqllogictest::DBOutput::StatementComplete(0));
        }
        let batches = match sql.strip_prefix("FOLLOW ") {
            Some(statement) => self.follow(statement).await?,
            None => {
                self.register_counters()?;
                self.session.query(sql).await?
            }
        };
        let (types, rows) = rows(&batches)?;
        Ok(sqllogictest::DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_sql_files() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::new(dir.path())).await.unwrap();
    let client = ClientConfig::new().bootstrap(&broker.bootstrap());
    load(&client).await;
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&here)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let client = client.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let client = client.clone();
            async move { Ok(Golden::new(client).await) }
        });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {}", file.display(), e.display(true)));
        }
    }
    broker.shutdown().await.unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
