//! Bounded queries: a topic registered as a DataFusion table ([`TopicTable`]), read when a
//! query scans it, with predicates on `partition`, `offset` and `timestamp` pushed down so
//! that only the records they can keep are fetched.
//!
//! ```text
//!  WHERE partition = 1 AND timestamp >= '2026-11-01' AND offset < 500
//!    ──▶ partitions {1}; start = ListOffsets(by time 2026-11-01); end = min(500, high watermark)
//!    ──▶ fetch [start, end) of each partition ──▶ Decoder ──▶ DataFusion does the rest
//!         (the pushed predicates too: they are Inexact, so rows are exact)
//! ```
//!
//! [`SqlSession`] registers topics and runs queries: aggregates, ORDER BY, LIMIT and joins
//! between topics work as in DataFusion.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use strom_client::admin::{Admin, OffsetSpec};
use strom_client::consumer::Consumer;
use strom_client::ClientConfig;

use crate::decode::{Decoder, Undecodable};
use crate::schema::ValueFormat;
use crate::SqlError;

/// A topic as a table of a [`SqlSession`].
pub struct TopicTable {
    topic: String,
    client: ClientConfig,
    decoder: Decoder,
    /// Records fetched by scans so far (to see what pushdown saved).
    fetched: Arc<AtomicU64>,
    /// Records of the last scans that did not decode.
    undecodable: Arc<std::sync::Mutex<Vec<Undecodable>>>,
}

impl fmt::Debug for TopicTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicTable")
            .field("topic", &self.topic)
            .finish()
    }
}

/// The part of a topic a query's predicates leave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Range {
    partitions: Option<BTreeSet<i32>>,
    offset_from: i64,
    offset_to: Option<i64>,
    timestamp_from: Option<i64>,
}

impl Range {
    /// Narrows the range with `column <op> value` when it is one it understands.
    fn narrow(&mut self, column: &str, op: Operator, value: i64) -> bool {
        use Operator::{Eq, Gt, GtEq, Lt, LtEq};
        match (column, op) {
            ("partition", Eq) => {
                let p = i32::try_from(value).unwrap_or(-1);
                let set = self.partitions.get_or_insert_with(|| BTreeSet::from([p]));
                set.retain(|q| *q == p);
            }
            ("offset", Eq) => {
                self.offset_from = self.offset_from.max(value);
                self.offset_to = Some(self.offset_to.map_or(value + 1, |t| t.min(value + 1)));
            }
            ("offset", Gt | GtEq) => {
                let from = if op == Gt { value + 1 } else { value };
                self.offset_from = self.offset_from.max(from);
            }
            ("offset", Lt | LtEq) => {
                let to = if op == Lt { value } else { value + 1 };
                self.offset_to = Some(self.offset_to.map_or(to, |t| t.min(to)));
            }
            ("timestamp", Gt | GtEq | Eq) => {
                let from = if op == Gt { value + 1 } else { value };
                self.timestamp_from = Some(self.timestamp_from.map_or(from, |t| t.max(from)));
            }
            _ => return false,
        }
        true
    }
}

/// `column <op> literal` (either way round) as a column name, operator and integer value
/// (timestamps in milliseconds).
fn comparison(expr: &Expr) -> Option<(String, Operator, i64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (column, op, literal) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) => (c, *op, v),
        (Expr::Literal(v, _), Expr::Column(c)) => (c, op.swap()?, v),
        _ => return None,
    };
    let value = match literal {
        ScalarValue::Int32(Some(v)) => i64::from(*v),
        ScalarValue::Int64(Some(v)) => *v,
        ScalarValue::TimestampMillisecond(Some(v), _) => *v,
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000)?,
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.div_euclid(1_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => v.div_euclid(1_000_000),
        _ => return None,
    };
    Some((column.name.clone(), op, value))
}

impl TopicTable {
    /// Topic `topic` on the cluster `client` reaches, its values read as `format`.
    ///
    /// # Errors
    /// As [`ValueFormat::schema`].
    pub fn new(
        client: ClientConfig,
        topic: &str,
        format: ValueFormat,
    ) -> Result<TopicTable, SqlError> {
        Ok(TopicTable {
            topic: topic.to_owned(),
            client,
            decoder: Decoder::new(format)?,
            fetched: Arc::new(AtomicU64::new(0)),
            undecodable: Arc::default(),
        })
    }

    /// How many records scans of this table fetched so far.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Zeroes the counts of records fetched and forgets those that did not decode.
    pub fn reset_counters(&self) {
        self.fetched.store(0, Ordering::Relaxed);
        if let Ok(mut undecodable) = self.undecodable.lock() {
            undecodable.clear();
        }
    }

    /// The records scans could not decode.
    pub fn undecodable(&self) -> Vec<Undecodable> {
        self.undecodable
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    /// Reads `range` of the topic.
    async fn fetch(&self, range: &Range, decoder: &Decoder) -> Result<Vec<RecordBatch>, SqlError> {
        let admin = Admin::connect(self.client.clone()).await?;
        let latest = admin.list_offsets(&self.topic, OffsetSpec::Latest).await?;
        let earliest = admin
            .list_offsets(&self.topic, OffsetSpec::Earliest)
            .await?;
        let consumer = Consumer::new(self.client.clone()).await?;
        let mut spans = Vec::new();
        for (partition, end) in &latest {
            if range
                .partitions
                .as_ref()
                .is_some_and(|p| !p.contains(partition))
            {
                continue;
            }
            let mut start = earliest
                .get(partition)
                .map_or(0, |o| o.offset)
                .max(range.offset_from);
            if let Some(ts) = range.timestamp_from {
                let found = consumer
                    .offsets_for_times(&[(self.topic.clone(), *partition, ts)])
                    .await?;
                start = start.max(
                    found
                        .first()
                        .copied()
                        .flatten()
                        .map_or(end.offset, |(o, _)| o),
                );
            }
            let stop = range.offset_to.map_or(end.offset, |t| t.min(end.offset));
            if start < stop {
                spans.push((*partition, start, stop));
            }
        }
        let assigned: Vec<(String, i32)> = spans
            .iter()
            .map(|(p, _, _)| (self.topic.clone(), *p))
            .collect();
        consumer.assign(&assigned)?;
        for (partition, start, _) in &spans {
            consumer.seek(&self.topic, *partition, *start)?;
        }
        let mut batches = Vec::new();
        let mut open: BTreeSet<i32> = spans.iter().map(|(p, _, _)| *p).collect();
        while !open.is_empty() {
            let mut records = consumer.poll(Duration::from_millis(200)).await?;
            records.retain(|r| {
                spans.iter().any(|(p, start, stop)| {
                    *p == r.partition && r.offset >= *start && r.offset < *stop
                })
            });
            self.fetched
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            let (batch, bad) = decoder.decode(&records)?;
            if let Ok(mut undecodable) = self.undecodable.lock() {
                undecodable.extend(bad);
            }
            if batch.num_rows() > 0 {
                batches.push(batch);
            }
            for (partition, _, stop) in &spans {
                if open.contains(partition)
                    && consumer.position(&self.topic, *partition).await? >= *stop
                {
                    open.remove(partition);
                }
            }
        }
        consumer.close();
        Ok(batches)
    }
}

#[async_trait::async_trait]
impl TableProvider for TopicTable {
    fn schema(&self) -> SchemaRef {
        self.decoder.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>, DataFusionError> {
        Ok(filters
            .iter()
            .map(|f| match comparison(f) {
                Some((column, ..))
                    if ["partition", "offset", "timestamp"].contains(&column.as_str()) =>
                {
                    TableProviderFilterPushDown::Inexact
                }
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let mut range = Range::default();
        for filter in filters {
            if let Some((column, op, value)) = comparison(filter) {
                range.narrow(&column, op, value);
            }
        }
        let schema = self.schema();
        let columns: Vec<&str> = match projection {
            Some(indices) => indices
                .iter()
                .map(|i| schema.field(*i).name().as_str())
                .collect(),
            None => schema.fields().iter().map(|f| f.name().as_str()).collect(),
        };
        let external = |e: SqlError| DataFusionError::External(Box::new(e));
        let decoder =
            Decoder::projected(self.decoder.format().clone(), &columns).map_err(external)?;
        let batches = self.fetch(&range, &decoder).await.map_err(external)?;
        // The decoder built the projection's columns in the table's order; put them in the
        // projection's.
        let order: Vec<usize> = columns
            .iter()
            .map(|c| decoder.schema().index_of(c))
            .collect::<Result<_, _>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            decoder.schema(),
            Some(order),
        )?)
    }
}

/// The JSON format of `topic`'s values, inferred from its first `sample` records (across
/// its partitions) and then fixed.
///
/// # Errors
/// Client errors.
pub async fn infer_json_format(
    client: &ClientConfig,
    topic: &str,
    sample: usize,
) -> Result<ValueFormat, SqlError> {
    let admin = Admin::connect(client.clone()).await?;
    let latest = admin.list_offsets(topic, OffsetSpec::Latest).await?;
    let consumer = Consumer::new(client.clone()).await?;
    let partitions: Vec<(String, i32)> = latest.keys().map(|p| (topic.to_owned(), *p)).collect();
    consumer.assign(&partitions)?;
    consumer.seek_to_beginning(&partitions)?;
    let mut values = Vec::new();
    loop {
        let mut done = values.len() >= sample;
        if !done {
            done = true;
            for (partition, end) in &latest {
                done &= consumer.position(topic, *partition).await? >= end.offset;
            }
        }
        if done {
            break;
        }
        for record in consumer.poll(Duration::from_millis(200)).await? {
            values.extend(record.value);
        }
    }
    consumer.close();
    values.truncate(sample);
    Ok(ValueFormat::infer_json(values.iter().map(|v| &v[..])))
}

/// Topics registered as tables, and queries over them.
pub struct SqlSession {
    ctx: SessionContext,
}

impl SqlSession {
    /// An empty session with Strom's SQL functions.
    ///
    /// # Errors
    /// When the functions do not register (a bug).
    pub fn new() -> Result<SqlSession, SqlError> {
        let mut ctx = SessionContext::new();
        crate::register_functions(&mut ctx)?;
        Ok(SqlSession { ctx })
    }

    /// The DataFusion session inside, to register other tables and functions.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Registers `table` under `name`; the table, to read its counters.
    ///
    /// # Errors
    /// When the name is taken.
    pub fn register(&self, name: &str, table: TopicTable) -> Result<Arc<TopicTable>, SqlError> {
        let table = Arc::new(table);
        self.ctx.register_table(name, table.clone())?;
        Ok(table)
    }

    /// Runs `sql`; its result.
    ///
    /// # Errors
    /// Bad SQL, unknown tables or columns, and fetch failures.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        Ok(self.ctx.sql(sql).await?.collect().await?)
    }
}
