//! [`SqlFilter`]: `SELECT <columns> FROM t WHERE <predicate>` planned once by DataFusion,
//! then applied to each batch of records as vectorised Arrow kernels.
//!
//! ```text
//!  SQL ──DataFusion (parse, plan, type coercion)──▶ analyzed plan
//!      ──▶ its WHERE and SELECT expressions as physical expressions over the table
//!  batch ──predicate──▶ boolean mask ──filter──▶ rows ──projection──▶ output batch
//! ```
//!
//! Only filters and projections are supported here (what a consumer can apply to each
//! batch on its own): aggregates, ORDER BY, LIMIT and joins are for bounded queries.

use std::sync::Arc;

use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::cast::as_boolean_array;
use datafusion::common::DFSchema;
use datafusion::datasource::empty::EmptyTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion::prelude::SessionContext;

use crate::SqlError;

/// A compiled `SELECT ... FROM <table> WHERE ...`.
#[derive(Debug)]
pub struct SqlFilter {
    predicate: Option<Arc<dyn PhysicalExpr>>,
    projection: Option<Vec<Arc<dyn PhysicalExpr>>>,
    output: SchemaRef,
    input: SchemaRef,
}

/// A session with Strom's SQL functions (DataFusion's, and JSON's `->`, `->>`,
/// `json_get_*`) that analyzes plans (resolution, type coercion) but does not rewrite
/// them, so a filter's plan keeps the shape of its SQL.
pub(crate) fn analyzing_session() -> Result<SessionContext, SqlError> {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_optimizer_rules(Vec::new())
        .build();
    let mut ctx = SessionContext::new_with_state(state);
    crate::register_functions(&mut ctx)?;
    Ok(ctx)
}

impl SqlFilter {
    /// Plans `sql` over a table named `table` with `input`'s schema.
    ///
    /// # Errors
    /// [`SqlError::DataFusion`] for bad SQL or unknown columns (the message names the
    /// problem and, for syntax errors, the line and column); [`SqlError::Unsupported`] for
    /// anything but a projection and a filter.
    pub async fn compile(sql: &str, table: &str, input: SchemaRef) -> Result<SqlFilter, SqlError> {
        let ctx = analyzing_session()?;
        ctx.register_table(table, Arc::new(EmptyTable::new(input.clone())))?;
        let plan = ctx.sql(sql).await?.into_optimized_plan()?;
        let output = Arc::new(plan.schema().as_arrow().clone());
        let (projection, predicates) = filter_and_projection(&plan, sql)?;
        let schema = DFSchema::try_from_qualified_schema(table, &input)?;
        let props = ctx.state().execution_props().clone();
        let planning = PhysicalPlanningContext::default();
        let predicate = predicates
            .into_iter()
            .reduce(Expr::and)
            .map(|p| create_physical_expr(&p, &schema, &props, &planning))
            .transpose()?;
        let projection = projection
            .map(|exprs| {
                exprs
                    .iter()
                    .map(|e| create_physical_expr(e, &schema, &props, &planning))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(SqlFilter {
            predicate,
            projection,
            output,
            input,
        })
    }

    /// The input columns the query reads, by name (a decoder need build no others).
    pub fn input_columns(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .predicate
            .iter()
            .chain(self.projection.iter().flatten())
            .flat_map(collect_columns)
            .map(|c| c.name().to_owned())
            .collect();
        if self.projection.is_none() {
            names.extend(self.input.fields().iter().map(|f| f.name().clone()));
        }
        names.sort();
        names.dedup();
        names
    }

    /// The schema of what [`SqlFilter::apply`] returns.
    pub fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    /// The rows of `batch` the WHERE clause keeps, with the SELECT's columns.
    ///
    /// # Errors
    /// [`SqlError::DataFusion`] when an expression fails on these values (a cast that
    /// does not hold, say).
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, SqlError> {
        let kept = match &self.predicate {
            Some(predicate) => {
                let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
                filter_record_batch(batch, as_boolean_array(&mask)?)?
            }
            None => batch.clone(),
        };
        let Some(projection) = &self.projection else {
            return Ok(kept);
        };
        let columns = projection
            .iter()
            .map(|e| e.evaluate(&kept)?.into_array(kept.num_rows()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }
}

/// The SELECT expressions (`None`: every column) and the WHERE conjuncts of a plan that
/// is a projection over a filter over the table.
fn filter_and_projection(
    plan: &LogicalPlan,
    sql: &str,
) -> Result<(Option<Vec<Expr>>, Vec<Expr>), SqlError> {
    let unsupported = |what: &str| {
        SqlError::Unsupported {
        query: sql.to_owned(),
        reason: format!(
            "a consumer's query is SELECT <columns> FROM <table> WHERE <condition>; this one has {what}"
        ),
    }
    };
    let (mut projection, mut predicates) = (None, Vec::new());
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Projection(p) if projection.is_none() && predicates.is_empty() => {
                projection = Some(p.expr.clone());
                node = &p.input;
            }
            LogicalPlan::Filter(f) => {
                predicates.push(f.predicate.clone());
                node = &f.input;
            }
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() {
                    return Err(unsupported("a LIMIT"));
                }
                predicates.extend(scan.filters.iter().cloned());
                return Ok((projection, predicates));
            }
            LogicalPlan::EmptyRelation(_) => {
                // WHERE false, simplified away: nothing passes.
                predicates.push(Expr::Literal(false.into(), None));
                return Ok((projection, predicates));
            }
            LogicalPlan::Aggregate(_) => return Err(unsupported("an aggregate")),
            LogicalPlan::Sort(_) => return Err(unsupported("an ORDER BY")),
            LogicalPlan::Limit(_) => return Err(unsupported("a LIMIT")),
            LogicalPlan::Join(_) => return Err(unsupported("a join")),
            other => return Err(unsupported(&format!("a {}", other.display()))),
        }
    }
}
