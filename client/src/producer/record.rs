//! What the caller hands the producer ([`Record`]) and what it gets back
//! ([`RecordMetadata`] through a [`DeliveryFuture`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::ClientError;

/// A record to produce: a topic, optionally a partition, a key, a value, headers and a
/// timestamp.
///
/// ```
/// use strom_client::producer::Record;
/// let record = Record::new("orders")
///     .key("customer-7")
///     .value("{\"total\": 12}")
///     .header("trace-id", "abc");
/// assert_eq!(record.topic, "orders");
/// assert_eq!(record.partition, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The topic to write to.
    pub topic: String,
    /// The partition; `None` lets the configured partitioner choose.
    pub partition: Option<i32>,
    /// The key; `None` is a null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers, in order; keys are UTF-8 and values may be null.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the Unix epoch; `None` means the time of [`Producer::send`].
    ///
    /// [`Producer::send`]: super::Producer::send
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record to `topic` with no key, value or headers.
    pub fn new(topic: impl Into<String>) -> Self {
        Record {
            topic: topic.into(),
            ..Record::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Appends a header with a value.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Places the record on this partition, bypassing the partitioner.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// An upper bound of the record's size in a batch of its own, as the Java client's
    /// `estimateSizeInBytesUpperBound`: the batch header plus the record with
    /// every varint at its longest. Checked against `max.request.size` and
    /// `buffer.memory`, and reserved from `buffer.memory` while the record is unsent.
    pub(crate) fn size_upper_bound(&self) -> usize {
        // length, attributes, timestamp delta, offset delta, key and value lengths,
        // header count.
        const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
        const HEADER_OVERHEAD: usize = 5 + 5;
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| HEADER_OVERHEAD + k.len() + len(v))
            .sum();
        BATCH_OVERHEAD + RECORD_OVERHEAD + len(&self.key) + len(&self.value) + headers
    }
}

/// Bytes of a record batch's header (magic 2).
pub(crate) const BATCH_OVERHEAD: usize = 61;

/// Where a record was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The record's offset; -1 with `acks=0`, where the broker does not answer.
    pub offset: i64,
    /// The broker's append time on topics with `message.timestamp.type=LogAppendTime`,
    /// otherwise the record's own timestamp.
    pub timestamp: i64,
}

/// The outcome of one record, delivered by the producer's background task.
pub(crate) type DeliveryResult = Result<RecordMetadata, ClientError>;

/// Resolves to where a record was written, or why it was not.
///
/// Returned by [`Producer::send`](super::Producer::send) once the record is buffered;
/// awaiting it is optional (the record is sent either way). If the producer's background
/// task goes away without an answer it resolves to [`ClientError::Closed`].
#[derive(Debug)]
#[must_use = "the record is sent anyway; await the future to learn its outcome"]
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<DeliveryResult>,
}

impl DeliveryFuture {
    /// A future and the sender that resolves it.
    pub(crate) fn channel() -> (oneshot::Sender<DeliveryResult>, DeliveryFuture) {
        let (sender, receiver) = oneshot::channel();
        (sender, DeliveryFuture { receiver })
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(ClientError::Closed)))
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_fields() {
        let r = Record::new("t")
            .key("k")
            .value("v")
            .header("h", "x")
            .partition(3)
            .timestamp(42);
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(r.headers, vec![("h".to_owned(), Some(Bytes::from("x")))]);
        assert_eq!((r.partition, r.timestamp), (Some(3), Some(42)));
    }

    #[test]
    fn size_bound_covers_encoding() {
        let r = Record::new("t")
            .key("key")
            .value(vec![0u8; 1000])
            .header("h", "v");
        let mut builder =
            strom_protocol::records::BatchBuilder::new(strom_protocol::records::Compression::None);
        builder.push(
            now_ms(),
            Some(b"key"),
            Some(&[0u8; 1000]),
            &[("h", Some(b"v"))],
        );
        assert!(r.size_upper_bound() >= builder.estimated_size());
        assert!(r.size_upper_bound() < builder.estimated_size() + 64);
    }

    #[tokio::test]
    async fn dropped_sender_is_closed() {
        let (sender, future) = DeliveryFuture::channel();
        drop(sender);
        assert!(matches!(future.await, Err(ClientError::Closed)));
    }
}
