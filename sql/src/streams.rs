//! [`SqlStreamExt::filter_sql`]: a SQL condition as a filter inside a streams topology
//! (with the `streams` feature).
//!
//! Each record is decoded as a one-row batch (its key, value, headers, topic, partition,
//! offset and timestamp) and kept when the compiled condition holds; the condition is
//! planned once, when the topology is built. Records whose value does not decode are
//! dropped, logged and counted ([`SqlFilterStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use strom_client::consumer::ConsumerRecord;
use strom_streams::{KStream, Processor, ProcessorContext};
use tracing::warn;

use crate::decode::Decoder;
use crate::filter::SqlFilter;
use crate::schema::ValueFormat;
use crate::SqlError;

/// SQL filters on [`KStream`]s whose keys and values are bytes or text.
pub trait SqlStreamExt<K, V> {
    /// The records for which `condition` holds: a WHERE condition over the record columns
    /// and the value's fields in `format` (`amount > 100 AND country = 'NO'`), or a whole
    /// `SELECT * FROM t WHERE ...`.
    ///
    /// ```
    /// use strom_sql::{FieldKind, SqlStreamExt, ValueField, ValueFormat};
    /// use strom_streams::serde::StringSerde;
    /// use strom_streams::{Consumed, Produced, StreamsBuilder};
    ///
    /// let builder = StreamsBuilder::new();
    /// let format = ValueFormat::Json(vec![ValueField::new("amount", FieldKind::Float)]);
    /// builder
    ///     .stream("orders", Consumed::with(StringSerde, StringSerde))
    ///     .filter_sql("amount > 100", format)?
    ///     .to("large-orders", Produced::with(StringSerde, StringSerde));
    /// # Ok::<(), strom_sql::SqlError>(())
    /// ```
    ///
    /// # Errors
    /// Bad SQL or unknown columns, found when the topology is built.
    fn filter_sql(&self, condition: &str, format: ValueFormat) -> Result<KStream<K, V>, SqlError> {
        self.filter_sql_with_stats(condition, format)
            .map(|(s, _)| s)
    }

    /// As [`SqlStreamExt::filter_sql`], with counters of what the filter saw.
    ///
    /// # Errors
    /// As [`SqlStreamExt::filter_sql`].
    fn filter_sql_with_stats(
        &self,
        condition: &str,
        format: ValueFormat,
    ) -> Result<(KStream<K, V>, SqlFilterStats), SqlError>;
}

/// Counters of a `filter_sql` (across the tasks that run it).
#[derive(Clone, Debug, Default)]
pub struct SqlFilterStats {
    kept: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    undecodable: Arc<AtomicU64>,
}

impl SqlFilterStats {
    /// Records the condition held for.
    pub fn kept(&self) -> u64 {
        self.kept.load(Ordering::Relaxed)
    }

    /// Records the condition did not hold for.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records whose value did not decode (dropped, not counted in `dropped`).
    pub fn undecodable(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }
}

impl<K, V> SqlStreamExt<K, V> for KStream<K, V>
where
    K: AsRef<[u8]> + Clone + 'static,
    V: AsRef<[u8]> + Clone + 'static,
{
    fn filter_sql_with_stats(
        &self,
        condition: &str,
        format: ValueFormat,
    ) -> Result<(KStream<K, V>, SqlFilterStats), SqlError> {
        let is_select = condition
            .trim_start()
            .get(..6)
            .is_some_and(|w| w.eq_ignore_ascii_case("select"));
        let sql = if is_select {
            condition.to_owned()
        } else {
            format!("SELECT * FROM t WHERE {condition}")
        };
        let (decoder, filter) = ready(crate::consumer::compile(format, &sql, "t"))?;
        let filter = Arc::new(filter);
        let stats = SqlFilterStats::default();
        let counters = stats.clone();
        let stream = self.process(move || SqlFilterProcessor {
            decoder: decoder.clone(),
            filter: filter.clone(),
            stats: counters.clone(),
        });
        Ok((stream, stats))
    }
}

/// The output of a future that completes without waiting (planning does no I/O).
fn ready<T>(future: impl std::future::Future<Output = Result<T, SqlError>>) -> Result<T, SqlError> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => result,
        Poll::Pending => Err(SqlError::Schema(
            "planning the filter waited on something".to_owned(),
        )),
    }
}

struct SqlFilterProcessor {
    decoder: Decoder,
    filter: Arc<SqlFilter>,
    stats: SqlFilterStats,
}

impl<K, V> Processor<K, V, K, V> for SqlFilterProcessor
where
    K: AsRef<[u8]> + Clone + 'static,
    V: AsRef<[u8]> + Clone + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, key: K, value: V) {
        let record = ConsumerRecord {
            topic: ctx.topic().to_owned(),
            partition: ctx.partition(),
            offset: ctx.offset(),
            timestamp: ctx.timestamp(),
            key: Some(Bytes::copy_from_slice(key.as_ref())),
            value: Some(Bytes::copy_from_slice(value.as_ref())),
            headers: ctx.headers().to_vec(),
            leader_epoch: None,
        };
        let kept = self
            .decoder
            .decode(std::slice::from_ref(&record))
            .and_then(|(batch, bad)| {
                if let Some(bad) = bad.first() {
                    warn!(topic = %bad.topic, partition = bad.partition, offset = bad.offset, reason = %bad.reason, "undecodable record dropped by filter_sql");
                    return Ok(None);
                }
                Ok(Some(self.filter.apply(&batch)?.num_rows() > 0))
            });
        match kept {
            Ok(None) => {
                self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(true)) => {
                self.stats.kept.fetch_add(1, Ordering::Relaxed);
                ctx.forward(key, value);
            }
            Ok(Some(false)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, offset = record.offset, "filter_sql failed on a record");
            }
        }
    }
}
