//! SQL on Kafka topics with DataFusion.
//!
//! ```text
//!  consumer ──records──▶ Decoder (a topic as a table: key, value, headers, topic,
//!                        partition, offset, timestamp, and the value's JSON fields)
//!           ──RecordBatch──▶ SqlFilter (WHERE and SELECT, planned once) ──▶ rows
//! ```
//!
//! [`SqlConsumer`] wraps a [`Consumer`](strom_client::consumer::Consumer) with a query;
//! [`SqlFilter`] applies one to batches from anywhere.
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(feature = "connect")]
pub mod connect;
mod consumer;
mod continuous;
mod decode;
mod filter;
mod job;
mod output;
mod schema;
#[cfg(feature = "streams")]
mod streams;
mod table;
mod tumble;

pub use consumer::{SqlBatch, SqlConsumer};
pub use continuous::{ContinuousQuery, Emitted};
pub use datafusion::arrow;
pub use decode::{Decoder, Undecodable};
pub use filter::SqlFilter;
pub use job::{
    dead_letter, source_table, JobOptions, JobStats, Statement, StreamJob, DEAD_LETTER_HEADERS,
};
pub use output::{json_rows, output_records, OutputRecord};
pub use schema::{AvroFormat, FieldKind, ValueField, ValueFormat, RECORD_COLUMNS};
#[cfg(feature = "streams")]
pub use streams::{SqlFilterStats, SqlStreamExt};
pub use table::{infer_json_format, SqlSession, TopicTable};
pub use tumble::{tumble_udf, TUMBLE};

/// Adds Strom's SQL functions to a session: JSON's (`->`, `->>`, `json_get_*`, ...) and
/// `tumble`.
pub(crate) fn register_functions(
    ctx: &mut datafusion::prelude::SessionContext,
) -> Result<(), SqlError> {
    datafusion_functions_json::register_all(ctx)?;
    ctx.register_udf(tumble::tumble_udf());
    Ok(())
}

/// What can go wrong with SQL on topics.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// DataFusion refused the query (syntax, unknown column or function, types), or an
    /// expression failed on the data.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow refused the data.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// The query is valid SQL, but not something this use of it can run.
    #[error("{reason}: {query}")]
    Unsupported {
        /// The query.
        query: String,
        /// Why.
        reason: String,
    },
    /// A statement is not Strom SQL (`CREATE STREAM` without its parts).
    #[error("SQL: {0}")]
    Parse(String),
    /// A table's schema is not possible.
    #[error("schema: {0}")]
    Schema(String),
    /// The client failed.
    #[error(transparent)]
    Client(#[from] strom_client::ClientError),
}
