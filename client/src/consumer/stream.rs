//! Records as a `futures::Stream` ([`futures_core::Stream`]), for code that composes
//! streams (`StreamExt::next`, `take`, `filter`, ... from `futures` or `tokio-stream`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{Consumer, ConsumerRecord};
use crate::error::ClientError;

type Next<'a> = Pin<Box<dyn Future<Output = Result<ConsumerRecord, ClientError>> + Send + 'a>>;

/// The records of a [`Consumer`], one at a time, as [`Consumer::recv`] returns them; made by
/// [`Consumer::stream`]. The stream ends after the consumer is closed.
pub struct RecordStream<'a> {
    consumer: &'a Consumer,
    next: Option<Next<'a>>,
    ended: bool,
}

impl std::fmt::Debug for RecordStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("ended", &self.ended)
            .finish()
    }
}

impl<'a> RecordStream<'a> {
    pub(super) fn new(consumer: &'a Consumer) -> Self {
        RecordStream {
            consumer,
            next: None,
            ended: false,
        }
    }
}

impl Stream for RecordStream<'_> {
    type Item = Result<ConsumerRecord, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let consumer = self.consumer;
        let next = self.next.get_or_insert_with(|| Box::pin(consumer.recv()));
        match next.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.next = None;
                if matches!(result, Err(ClientError::Closed)) {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(result))
            }
        }
    }
}
