//! [`SqlConsumer`]: a consumer whose polls return only the rows a query keeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use strom_client::consumer::Consumer;
use strom_client::producer::Producer;
use tracing::warn;

use crate::decode::{Decoder, Undecodable};
use crate::filter::SqlFilter;
use crate::job::dead_letter;
use crate::schema::ValueFormat;
use crate::SqlError;

/// The name the query's FROM gives the consumer's records.
pub const TABLE: &str = "t";

/// What one poll kept, and what it could not read.
#[derive(Debug)]
pub struct SqlBatch {
    /// The rows the query kept, with its columns.
    pub rows: RecordBatch,
    /// Records whose value did not decode (they are not in `rows`).
    pub undecodable: Vec<Undecodable>,
    /// How many records the poll returned.
    pub polled: usize,
}

/// A consumer (plain or in a group) filtered by `SELECT ... FROM t WHERE ...`.
///
/// ```
/// # async fn example(consumer: strom_client::consumer::Consumer) -> Result<(), strom_sql::SqlError> {
/// use strom_sql::{ValueField, FieldKind, SqlConsumer, ValueFormat};
///
/// let format = ValueFormat::Json(vec![
///     ValueField::new("country", FieldKind::Text),
///     ValueField::new("amount", FieldKind::Float),
/// ]);
/// let orders = SqlConsumer::new(
///     consumer,
///     format,
///     "SELECT key, amount FROM t WHERE country = 'NO' AND amount > 100",
/// )
/// .await?;
/// let batch = orders.poll(std::time::Duration::from_millis(100)).await?;
/// println!("{} of {} records kept", batch.rows.num_rows(), batch.polled);
/// # Ok(()) }
/// ```
pub struct SqlConsumer {
    consumer: Consumer,
    decoder: Decoder,
    filter: SqlFilter,
    undecodable: AtomicU64,
    dead_letter: Option<(Producer, String)>,
}

impl SqlConsumer {
    /// Wraps `consumer`, its values read as `format`, filtered by `sql` (over table `t`).
    ///
    /// # Errors
    /// As [`SqlFilter::compile`] and [`ValueFormat::schema`].
    pub async fn new(consumer: Consumer, format: ValueFormat, sql: &str) -> Result<Self, SqlError> {
        let (decoder, filter) = compile(format, sql, TABLE).await?;
        Ok(SqlConsumer {
            consumer,
            decoder,
            filter,
            undecodable: AtomicU64::new(0),
            dead_letter: None,
        })
    }

    /// Sends records whose value does not decode to `topic` with `producer` (as they
    /// were, with headers naming their topic, partition, offset and the reason; see
    /// [`DEAD_LETTER_HEADERS`](crate::DEAD_LETTER_HEADERS)); a poll returns once they are
    /// acknowledged.
    pub fn dead_letter(mut self, producer: Producer, topic: impl Into<String>) -> Self {
        self.dead_letter = Some((producer, topic.into()));
        self
    }

    /// The next records, waiting at most `timeout`, as the query's rows.
    ///
    /// # Errors
    /// Client errors, and expressions failing on the data.
    pub async fn poll(&self, timeout: Duration) -> Result<SqlBatch, SqlError> {
        let records = self.consumer.poll(timeout).await?;
        let (batch, undecodable) = self.decoder.decode(&records)?;
        if !undecodable.is_empty() {
            self.undecodable
                .fetch_add(undecodable.len() as u64, Ordering::Relaxed);
            for bad in &undecodable {
                warn!(topic = %bad.topic, partition = bad.partition, offset = bad.offset, reason = %bad.reason, "undecodable record");
            }
            if let Some((producer, topic)) = &self.dead_letter {
                for delivery in dead_letter(producer, topic, &records, &undecodable).await? {
                    delivery.await?;
                }
            }
        }
        Ok(SqlBatch {
            rows: self.filter.apply(&batch)?,
            undecodable,
            polled: records.len(),
        })
    }

    /// The columns of the rows.
    pub fn schema(&self) -> SchemaRef {
        self.filter.output_schema()
    }

    /// Records that did not decode so far.
    pub fn undecodable_count(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    /// The consumer inside (to subscribe, assign, seek, commit).
    pub fn consumer(&self) -> &Consumer {
        &self.consumer
    }
}

/// `sql` over `table` of values in `format`, with a decoder that builds only the columns
/// the query reads.
pub(crate) async fn compile(
    format: ValueFormat,
    sql: &str,
    table: &str,
) -> Result<(Decoder, SqlFilter), SqlError> {
    let full = SqlFilter::compile(sql, table, format.schema()?).await?;
    let columns = full.input_columns();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let decoder = Decoder::projected(format, &columns)?;
    let filter = SqlFilter::compile(sql, table, decoder.schema()).await?;
    Ok((decoder, filter))
}
