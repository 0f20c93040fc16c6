//! `CREATE STREAM out AS SELECT ... FROM in ...`: a continuous query that writes its rows
//! to a topic, running until stopped.
//!
//! ```text
//!  group consumer (group strom-sql-<out>, from the earliest offset the first time)
//!    ──poll──▶ ContinuousQuery ──rows──▶ output_records ──▶ producer (idempotent) ──▶ out
//!    ──undecodable──▶ dead-letter topic (if set), else counted and logged
//!  once a poll's output and dead letters are acknowledged, the input offsets are
//!  committed, but never past the first record of a window still open
//! ```
//!
//! At least once: after a crash, records after the last commit are read again, and rows
//! from them may be written twice. A windowed job keeps its open windows in memory and
//! runs as one instance (several instances would each aggregate part of a window).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strom_client::admin::{Admin, NewTopic};
use strom_client::config::OffsetReset;
use strom_client::consumer::{Consumer, ConsumerRecord};
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::continuous::ContinuousQuery;
use crate::decode::Undecodable;
use crate::output::output_records;
use crate::schema::ValueFormat;
use crate::SqlError;

/// A statement of Strom's SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// A query (`SELECT ...`).
    Query(String),
    /// `CREATE STREAM <name> AS <query>`: the query's rows written to topic `name`.
    CreateStream {
        /// The output topic.
        name: String,
        /// The query.
        query: String,
    },
}

impl Statement {
    /// Tells `CREATE STREAM name AS query` from a query (which DataFusion parses later).
    ///
    /// # Errors
    /// [`SqlError::Parse`] for a `CREATE STREAM` without a name or `AS`.
    pub fn parse(sql: &str) -> Result<Statement, SqlError> {
        let trimmed = sql.trim_start();
        let mut words = trimmed.splitn(3, char::is_whitespace);
        let create = words.next().unwrap_or_default();
        let stream = words.next().unwrap_or_default();
        if !create.eq_ignore_ascii_case("create") || !stream.eq_ignore_ascii_case("stream") {
            return Ok(Statement::Query(sql.to_owned()));
        }
        let rest = words.next().unwrap_or_default().trim_start();
        let bad =
            |what: &str| SqlError::Parse(format!("CREATE STREAM <topic> AS SELECT ...: {what}"));
        let (name, rest) = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| bad("unclosed quote in the name"))?;
            (quoted[..end].to_owned(), &quoted[end + 1..])
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (rest[..end].to_owned(), &rest[end..])
        };
        if name.is_empty() {
            return Err(bad("the output topic's name is missing"));
        }
        let rest = rest.trim_start();
        let query = match rest.get(..2) {
            Some(r#as)
                if r#as.eq_ignore_ascii_case("as")
                    && rest[2..].starts_with(char::is_whitespace) =>
            {
                rest[2..].trim()
            }
            _ => return Err(bad(&format!("expected AS after {name}"))),
        };
        if query.is_empty() {
            return Err(bad("the query is missing"));
        }
        Ok(Statement::CreateStream {
            name,
            query: query.to_owned(),
        })
    }
}

/// The one table a query reads (a continuous query reads one topic).
///
/// # Errors
/// Bad SQL; [`SqlError::Unsupported`] for a query of no table or of several.
pub fn source_table(sql: &str) -> Result<String, SqlError> {
    let ctx = datafusion::prelude::SessionContext::new();
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(sql, &dialect)?;
    let tables = state.resolve_table_references(&statement)?;
    match tables.as_slice() {
        [one] => Ok(one.table().to_owned()),
        _ => Err(SqlError::Unsupported {
            query: sql.to_owned(),
            reason: format!(
                "a continuous query reads one topic; this one reads {}",
                tables.len()
            ),
        }),
    }
}

/// How a [`StreamJob`] runs.
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// How long windows stay open after their end for late records.
    pub grace: Duration,
    /// A topic for records whose value does not decode (with headers saying where they
    /// came from and why); without one they are counted and logged.
    pub dead_letter: Option<String>,
}

/// What a job did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Input records read.
    pub read: u64,
    /// Output records written (acknowledged).
    pub written: u64,
    /// Input records that did not decode.
    pub undecodable: u64,
    /// Input records dropped as late for their window.
    pub late: u64,
}

#[derive(Default)]
struct Counters {
    read: AtomicU64,
    written: AtomicU64,
    undecodable: AtomicU64,
    late: AtomicU64,
}

impl Counters {
    fn stats(&self) -> JobStats {
        JobStats {
            read: self.read.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            undecodable: self.undecodable.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
        }
    }
}

/// A running `CREATE STREAM`.
pub struct StreamJob {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), SqlError>>,
    counters: Arc<Counters>,
}

impl StreamJob {
    /// Starts writing the rows of `query` (over one topic, its values read as `format`)
    /// to topic `name`, created with the input's partition count if missing.
    ///
    /// # Errors
    /// Bad SQL, a missing input topic, client errors.
    pub async fn start(
        client: ClientConfig,
        name: &str,
        query: &str,
        format: ValueFormat,
        options: JobOptions,
    ) -> Result<StreamJob, SqlError> {
        let source = source_table(query)?;
        let continuous = ContinuousQuery::with_grace(query, &source, format, options.grace).await?;
        let admin = Admin::connect(client.clone()).await?;
        let described = admin.describe_topics(&[&source]).await?;
        let partitions = described
            .first()
            .filter(|d| d.error.is_ok())
            .map(|d| d.partitions.len())
            .ok_or_else(|| SqlError::Schema(format!("no topic {source}")))?;
        let existing = admin.list_topics(false).await?;
        let mut wanted = vec![name.to_owned()];
        wanted.extend(options.dead_letter.clone());
        for topic in wanted {
            if !existing.contains(&topic) {
                let partitions = i32::try_from(partitions).unwrap_or(1);
                admin
                    .create_topic(NewTopic::new(&topic).partitions(partitions))
                    .await?;
            }
        }
        let consumer = Consumer::new(
            client
                .clone()
                .group_id(format!("strom-sql-{name}"))
                .enable_auto_commit(false)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .await?;
        consumer.subscribe(&[&source])?;
        let producer = Producer::new(client.enable_idempotence(true)).await?;
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let run = Run {
            consumer,
            producer,
            query: continuous,
            output: name.to_owned(),
            dead_letter: options.dead_letter,
            counters: counters.clone(),
        };
        let task = tokio::spawn(run.run(stopped));
        info!(output = name, source = %source, "stream started");
        Ok(StreamJob {
            stop,
            task,
            counters,
        })
    }

    /// What it did so far.
    pub fn stats(&self) -> JobStats {
        self.counters.stats()
    }

    /// Whether it stopped on its own (after an error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops after the current poll (its output written and its offsets committed) and
    /// leaves the group; what it did.
    ///
    /// # Errors
    /// The error that stopped it, if one did.
    pub async fn stop(self) -> Result<JobStats, SqlError> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result?,
            Err(e) => return Err(SqlError::Schema(format!("stream task failed: {e}"))),
        }
        Ok(self.counters.stats())
    }
}

struct Run {
    consumer: Consumer,
    producer: Producer,
    query: ContinuousQuery,
    output: String,
    dead_letter: Option<String>,
    counters: Arc<Counters>,
}

impl Run {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) -> Result<(), SqlError> {
        let result = loop {
            if *stopped.borrow() {
                break Ok(());
            }
            let records = tokio::select! {
                polled = self.consumer.poll(Duration::from_millis(200)) => polled,
                _ = stopped.changed() => break Ok(()),
            };
            let records = match records {
                Ok(records) => records,
                Err(e) => break Err(e.into()),
            };
            if let Err(e) = self.step(&records).await {
                break Err(e);
            }
        };
        if let Err(e) = self.consumer.shutdown().await {
            warn!(error = %e, "leaving the group");
        }
        self.producer.close().await;
        result
    }

    /// One poll's worth: its rows written, its bad records dead-lettered, then its
    /// offsets committed.
    async fn step(&mut self, records: &[ConsumerRecord]) -> Result<(), SqlError> {
        if records.is_empty() {
            return Ok(());
        }
        let emitted = self.query.push(records).await?;
        let mut deliveries = Vec::new();
        for batch in &emitted.rows {
            for row in output_records(batch)? {
                let mut record = Record::new(&self.output);
                record.key = row.key;
                record.value = row.value;
                record.headers = row.headers;
                record.timestamp = row.timestamp;
                deliveries.push(self.producer.send(record).await?);
            }
        }
        let written = deliveries.len() as u64;
        deliveries.extend(self.dead_letters(records, &emitted.undecodable).await?);
        for delivery in deliveries {
            delivery.await?;
        }
        let c = &self.counters;
        c.read.fetch_add(records.len() as u64, Ordering::Relaxed);
        c.written.fetch_add(written, Ordering::Relaxed);
        c.undecodable
            .fetch_add(emitted.undecodable.len() as u64, Ordering::Relaxed);
        c.late.fetch_add(emitted.late as u64, Ordering::Relaxed);
        self.commit(records).await;
        Ok(())
    }

    async fn dead_letters(
        &self,
        records: &[ConsumerRecord],
        bad: &[Undecodable],
    ) -> Result<Vec<strom_client::producer::DeliveryFuture>, SqlError> {
        let Some(topic) = &self.dead_letter else {
            for b in bad {
                warn!(topic = %b.topic, partition = b.partition, offset = b.offset, reason = %b.reason, "undecodable record");
            }
            return Ok(Vec::new());
        };
        dead_letter(&self.producer, topic, records, bad).await
    }

    /// Commits the next offset of each partition polled, held back to the first record
    /// of a window still open.
    async fn commit(&self, records: &[ConsumerRecord]) {
        let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in records {
            let n = next.entry((r.topic.clone(), r.partition)).or_insert(0);
            *n = (*n).max(r.offset + 1);
        }
        for (partition, first) in self.query.pending_offsets() {
            if let Some(n) = next.get_mut(&partition) {
                *n = (*n).min(first);
            }
        }
        let offsets: Vec<(String, i32, i64)> =
            next.into_iter().map(|((t, p), o)| (t, p, o)).collect();
        // A commit refused in a rebalance is not fatal: the records are read again by
        // whoever holds the partitions (at least once).
        if let Err(e) = self.consumer.commit_offsets(&offsets).await {
            warn!(error = %e, "offsets not committed; their records will be read again");
        }
    }
}

/// Header names on dead-lettered records (Kafka Connect's are `__connect.errors.*`).
pub const DEAD_LETTER_HEADERS: [&str; 4] = [
    "__strom.errors.topic",
    "__strom.errors.partition",
    "__strom.errors.offset",
    "__strom.errors.reason",
];

/// Sends each undecodable record, as it was, to `topic` with headers saying where it came
/// from and why it did not decode; the deliveries to await.
///
/// # Errors
/// Client errors.
pub async fn dead_letter(
    producer: &Producer,
    topic: &str,
    records: &[ConsumerRecord],
    bad: &[Undecodable],
) -> Result<Vec<strom_client::producer::DeliveryFuture>, SqlError> {
    let mut deliveries = Vec::new();
    for b in bad {
        let Some(original) = records
            .iter()
            .find(|r| r.partition == b.partition && r.offset == b.offset && r.topic == b.topic)
        else {
            continue;
        };
        let mut record = Record::new(topic);
        record.key = original.key.clone();
        record.value = original.value.clone();
        record.headers = original.headers.clone();
        record.timestamp = Some(original.timestamp);
        let [t, p, o, reason] = DEAD_LETTER_HEADERS;
        let record = record
            .header(t, original.topic.clone())
            .header(p, original.partition.to_string())
            .header(o, original.offset.to_string())
            .header(reason, b.reason.clone());
        deliveries.push(producer.send(record).await?);
    }
    Ok(deliveries)
}
