//! Continuous queries: a query over the records of one topic as they arrive.
//!
//! ```text
//!  SELECT ... FROM t WHERE ...             each batch ──SqlFilter──▶ its matching rows, at once
//!  SELECT tumble(timestamp, INTERVAL '1 minute') AS w, count(*) ... GROUP BY w
//!      each batch ──rows to their windows (by the event time tumble() reads)──▶ open windows
//!      stream time (the largest event time seen) passes a window's end + grace
//!          ──▶ the query over that window's rows ──▶ its rows, once
//!      a row for a window already emitted ──▶ dropped and counted as late
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, BooleanArray, TimestampMillisecondArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::DFSchema;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion::prelude::SessionContext;
use strom_client::consumer::ConsumerRecord;

use crate::decode::{Decoder, Undecodable};
use crate::filter::{analyzing_session, SqlFilter};
use crate::schema::ValueFormat;
use crate::tumble::tumble_size;
use crate::SqlError;

/// A query run over records as they arrive: a filter emits matches at once; an aggregate
/// grouped by `tumble(...)` emits each window when it closes.
///
/// ```
/// # async fn example() -> Result<(), strom_sql::SqlError> {
/// use strom_sql::{ContinuousQuery, FieldKind, ValueField, ValueFormat};
///
/// let format = ValueFormat::Json(vec![ValueField::new("page", FieldKind::Text)]);
/// let mut views = ContinuousQuery::new(
///     "SELECT tumble(timestamp, INTERVAL '1 minute') AS minute, page, count(*) AS views \
///      FROM clicks GROUP BY minute, page",
///     "clicks",
///     format,
/// )
/// .await?;
/// // Feed it what a consumer polls; rows come out as windows close.
/// let emitted = views.push(&[]).await?;
/// assert!(emitted.rows.is_empty());
/// # Ok(()) }
/// ```
pub struct ContinuousQuery {
    decoder: Decoder,
    engine: Engine,
}

/// What one [`ContinuousQuery::push`] produced.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Result rows that are final now.
    pub rows: Vec<RecordBatch>,
    /// Records whose value did not decode.
    pub undecodable: Vec<Undecodable>,
    /// Records dropped because their window had already been emitted (or they had no
    /// event time).
    pub late: usize,
}

enum Engine {
    Filter(SqlFilter),
    Windows(Box<Windows>),
}

/// The open windows of a windowed aggregate.
struct Windows {
    sql: String,
    table: String,
    /// The event time, as the query's `tumble(...)` reads it.
    time: Arc<dyn PhysicalExpr>,
    size: i64,
    grace: i64,
    input: SchemaRef,
    output: SchemaRef,
    /// Rows of each open window by its start, and the first offset of each partition
    /// they came from.
    open: BTreeMap<i64, Window>,
    stream_time: Option<i64>,
    ctx: SessionContext,
}

#[derive(Default)]
struct Window {
    batches: Vec<RecordBatch>,
    first_offsets: BTreeMap<(String, i32), i64>,
}

impl ContinuousQuery {
    /// `sql` over the records of a topic registered as `table`, its values read as
    /// `format`; windows close as soon as stream time passes their end.
    ///
    /// # Errors
    /// Bad SQL (position and problem); [`SqlError::Unsupported`] for what cannot run on
    /// an unbounded stream (an aggregate not grouped by `tumble(...)`, a join, a LIMIT or
    /// ORDER BY outside a window).
    pub async fn new(sql: &str, table: &str, format: ValueFormat) -> Result<Self, SqlError> {
        ContinuousQuery::with_grace(sql, table, format, Duration::ZERO).await
    }

    /// As [`ContinuousQuery::new`], with windows kept open `grace` after their end for
    /// records that arrive out of order.
    ///
    /// # Errors
    /// As [`ContinuousQuery::new`].
    pub async fn with_grace(
        sql: &str,
        table: &str,
        format: ValueFormat,
        grace: Duration,
    ) -> Result<Self, SqlError> {
        let ctx = analyzing_session()?;
        let full = format.schema()?;
        ctx.register_table(
            table,
            Arc::new(datafusion::datasource::empty::EmptyTable::new(full.clone())),
        )?;
        let plan = ctx.sql(sql).await?.into_optimized_plan()?;
        let Some((group, input)) = aggregate(&plan) else {
            let (decoder, filter) = crate::consumer::compile(format, sql, table).await?;
            return Ok(ContinuousQuery {
                decoder,
                engine: Engine::Filter(filter),
            });
        };
        let unsupported = |reason: &str| SqlError::Unsupported {
            query: sql.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((window, size)) = group
            .iter()
            .find_map(|g| tumble_size(g).map(|size| (g, size)))
        else {
            return Err(unsupported(
                "a continuous aggregate groups by tumble(<time>, INTERVAL '<size>') so that each window can be emitted when it closes",
            ));
        };
        if size <= 0 {
            return Err(unsupported(
                "a window's size is a positive interval without months",
            ));
        }
        if input.exists(|node| Ok(matches!(node, LogicalPlan::Join(_) | LogicalPlan::Limit(_))))? {
            return Err(unsupported(
                "a continuous aggregate reads one topic, without LIMIT before grouping",
            ));
        }
        let columns = referenced_columns(&plan, &full);
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        let decoder = Decoder::projected(format, &columns)?;
        let Some(Expr::ScalarFunction(call)) = unalias(window).cloned() else {
            return Err(unsupported("tumble(...) is a function call"));
        };
        let schema = DFSchema::try_from_qualified_schema(table, &decoder.schema())?;
        let time = create_physical_expr(
            &call.args[0],
            &schema,
            ctx.state().execution_props(),
            &PhysicalPlanningContext::default(),
        )?;
        let mut run = SessionContext::new();
        crate::register_functions(&mut run)?;
        let grace = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        Ok(ContinuousQuery {
            engine: Engine::Windows(Box::new(Windows {
                sql: sql.to_owned(),
                table: table.to_owned(),
                time,
                size,
                grace,
                input: decoder.schema(),
                output: Arc::new(plan.schema().as_arrow().clone()),
                open: BTreeMap::new(),
                stream_time: None,
                ctx: run,
            })),
            decoder,
        })
    }

    /// The columns of the rows it emits.
    pub fn schema(&self) -> SchemaRef {
        match &self.engine {
            Engine::Filter(filter) => filter.output_schema(),
            Engine::Windows(windows) => windows.output.clone(),
        }
    }

    /// Whether it is a windowed aggregate (rows come out as windows close).
    pub fn is_windowed(&self) -> bool {
        matches!(self.engine, Engine::Windows(_))
    }

    /// Takes records in (as polled, in offset order per partition) and returns what is
    /// final.
    ///
    /// # Errors
    /// Expressions failing on the data.
    pub async fn push(&mut self, records: &[ConsumerRecord]) -> Result<Emitted, SqlError> {
        let (batch, undecodable) = self.decoder.decode(records)?;
        let mut emitted = Emitted {
            undecodable,
            ..Emitted::default()
        };
        match &mut self.engine {
            Engine::Filter(filter) => {
                let rows = filter.apply(&batch)?;
                if rows.num_rows() > 0 {
                    emitted.rows.push(rows);
                }
            }
            Engine::Windows(windows) => {
                let bad: HashSet<(i32, i64)> = emitted
                    .undecodable
                    .iter()
                    .map(|u| (u.partition, u.offset))
                    .collect();
                let decoded: Vec<&ConsumerRecord> = records
                    .iter()
                    .filter(|r| !bad.contains(&(r.partition, r.offset)))
                    .collect();
                emitted.late = windows.add(&batch, &decoded)?;
                emitted.rows = windows.close(false).await?;
            }
        }
        Ok(emitted)
    }

    /// Emits every open window (at the end of a bounded input).
    ///
    /// # Errors
    /// Expressions failing on the data.
    pub async fn finish(&mut self) -> Result<Vec<RecordBatch>, SqlError> {
        match &mut self.engine {
            Engine::Filter(_) => Ok(Vec::new()),
            Engine::Windows(windows) => windows.close(true).await,
        }
    }

    /// For each partition with records in open windows, the offset of the first of them:
    /// committing past it would lose those windows' records on a restart.
    pub fn pending_offsets(&self) -> BTreeMap<(String, i32), i64> {
        let mut pending: BTreeMap<(String, i32), i64> = BTreeMap::new();
        if let Engine::Windows(windows) = &self.engine {
            for window in windows.open.values() {
                for (partition, offset) in &window.first_offsets {
                    let first = pending.entry(partition.clone()).or_insert(*offset);
                    *first = (*first).min(*offset);
                }
            }
        }
        pending
    }
}

impl Windows {
    /// Adds a batch's rows to their windows; how many were late.
    fn add(&mut self, batch: &RecordBatch, records: &[&ConsumerRecord]) -> Result<usize, SqlError> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(0);
        }
        let times = self.time.evaluate(batch)?.into_array(n)?;
        let times = cast(
            times.as_ref(),
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )?;
        let Some(times) = times.as_any().downcast_ref::<TimestampMillisecondArray>() else {
            return Err(SqlError::Schema(
                "tumble's time is not a timestamp".to_owned(),
            ));
        };
        let mut late = 0;
        let mut rows: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for row in 0..n {
            if times.is_null(row) {
                late += 1;
                continue;
            }
            let time = times.value(row);
            let start = time - time.rem_euclid(self.size);
            if self
                .stream_time
                .is_some_and(|now| start + self.size + self.grace <= now)
            {
                late += 1;
                continue;
            }
            self.stream_time = Some(self.stream_time.map_or(time, |now| now.max(time)));
            rows.entry(start).or_default().push(row);
        }
        for (start, kept) in rows {
            let mut mask = vec![false; n];
            let window = self.open.entry(start).or_default();
            for row in kept {
                mask[row] = true;
                if let Some(record) = records.get(row) {
                    let first = window
                        .first_offsets
                        .entry((record.topic.clone(), record.partition))
                        .or_insert(record.offset);
                    *first = (*first).min(record.offset);
                }
            }
            window
                .batches
                .push(filter_record_batch(batch, &BooleanArray::from(mask))?);
        }
        Ok(late)
    }

    /// Runs the query over each window that closed (all of them when `all`), oldest
    /// first, and forgets them.
    async fn close(&mut self, all: bool) -> Result<Vec<RecordBatch>, SqlError> {
        let mut rows = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            let start = *entry.key();
            let closed = self
                .stream_time
                .is_some_and(|now| start + self.size + self.grace <= now);
            if !all && !closed {
                break;
            }
            let window = entry.remove();
            self.ctx.deregister_table(self.table.as_str())?;
            self.ctx.register_table(
                self.table.as_str(),
                Arc::new(MemTable::try_new(self.input.clone(), vec![window.batches])?),
            )?;
            let batches = self.ctx.sql(&self.sql).await?.collect().await?;
            rows.extend(batches.into_iter().filter(|b| b.num_rows() > 0));
        }
        Ok(rows)
    }
}

/// The group expressions and input of the plan's aggregate, if it has one.
fn aggregate(plan: &LogicalPlan) -> Option<(Vec<Expr>, LogicalPlan)> {
    let mut found = None;
    let _ = plan.apply(|node| {
        if let LogicalPlan::Aggregate(aggregate) = node {
            found = Some((
                aggregate.group_expr.clone(),
                aggregate.input.as_ref().clone(),
            ));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn unalias(expr: &Expr) -> Option<&Expr> {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        other => Some(other),
    }
}

/// The table columns any expression of the plan reads.
fn referenced_columns(plan: &LogicalPlan, table: &SchemaRef) -> Vec<String> {
    let mut names = Vec::new();
    let _ = plan.apply(|node| {
        for expr in node.expressions() {
            for column in expr.column_refs() {
                if table.field_with_name(&column.name).is_ok() && !names.contains(&column.name) {
                    names.push(column.name.clone());
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}
