//! When and how long an admin call retries.
//!
//! A call makes a [`Retry`] when it starts; after each failed attempt it asks
//! [`Admin::backoff`] whether to go again. That refreshes the metadata the next attempt
//! routes by (controller, leaders), sleeps the backoff, and gives the error back once it is
//! not worth retrying or the API timeout has passed.

use std::time::Duration;

use strom_protocol::{ErrorCode, ProtocolError};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::Admin;
use crate::error::ClientError;

/// The retry state of one admin call.
#[derive(Debug)]
pub(crate) struct Retry {
    what: String,
    started: Instant,
    deadline: Instant,
    backoff: Duration,
    max_backoff: Duration,
    attempts: u32,
}

impl Retry {
    /// Whether `error` is worth another attempt of an admin call.
    ///
    /// Kafka's retriable codes and connection failures are, except
    /// `UNKNOWN_TOPIC_OR_PARTITION`: to an admin call a missing topic is the answer.
    pub(crate) fn is_retriable(error: &ClientError) -> bool {
        match error {
            ClientError::Broker { code, .. }
            | ClientError::Protocol(ProtocolError::Broker(code)) => {
                code.is_retriable() && *code != ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            }
            ClientError::UnknownTopicOrPartition { .. } => false,
            other => other.is_retriable(),
        }
    }
}

impl Admin {
    /// Starts the retry state of a call described by `what` (for logs and timeouts).
    pub(crate) fn retry(&self, what: impl Into<String>) -> Retry {
        let config = self.cluster.config();
        let started = Instant::now();
        Retry {
            what: what.into(),
            started,
            deadline: started + self.api_timeout,
            backoff: Duration::from_millis(config.retry_backoff_ms),
            max_backoff: Duration::from_millis(
                config.retry_backoff_max_ms.max(config.retry_backoff_ms),
            ),
            attempts: 0,
        }
    }

    /// After a failed attempt: `Ok` once it is time to try again (metadata refreshed for
    /// `topics`, or for the brokers and controller only when `topics` is empty), or the
    /// error to give up with: `error` itself when it is not retriable, a
    /// [`ClientError::Timeout`] naming it when the API timeout would pass.
    pub(crate) async fn backoff(
        &self,
        retry: &mut Retry,
        error: ClientError,
        topics: &[String],
    ) -> Result<(), ClientError> {
        if !Retry::is_retriable(&error) {
            return Err(error);
        }
        retry.attempts += 1;
        let wait = retry.backoff;
        if Instant::now() + wait >= retry.deadline {
            return Err(ClientError::Timeout {
                what: format!("{} (last error: {error})", retry.what),
                after_ms: u64::try_from(retry.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        warn!(what = %retry.what, attempt = retry.attempts, error = %error, backoff_ms = wait.as_millis() as u64, "admin request failed; retrying");
        tokio::time::sleep(wait).await;
        retry.backoff = (retry.backoff * 2).min(retry.max_backoff);
        if let Err(e) = self.cluster.refresh_metadata(Some(topics)).await {
            // The next attempt fails the same way if the cluster is still unreachable.
            debug!(what = %retry.what, error = %e, "metadata refresh before retry failed");
        }
        Ok(())
    }

    /// Runs `attempt` until it succeeds, fails for good, or the API timeout passes;
    /// metadata for `topics` is refreshed between attempts.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        what: impl Into<String>,
        topics: &[String],
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut retry = self.retry(what);
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => self.backoff(&mut retry, error, topics).await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(code: ErrorCode) -> ClientError {
        ClientError::Broker {
            code,
            context: "test".into(),
        }
    }

    #[test]
    fn moving_cluster_is_retried_missing_topic_is_not() {
        assert!(Retry::is_retriable(&broker(ErrorCode::NOT_CONTROLLER)));
        assert!(Retry::is_retriable(&broker(
            ErrorCode::LEADER_NOT_AVAILABLE
        )));
        assert!(Retry::is_retriable(&broker(
            ErrorCode::NOT_LEADER_OR_FOLLOWER
        )));
        assert!(Retry::is_retriable(&ClientError::from(
            ProtocolError::ConnectionClosed
        )));
        assert!(!Retry::is_retriable(&broker(
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        )));
        assert!(!Retry::is_retriable(
            &ClientError::UnknownTopicOrPartition {
                topic: "t".into(),
                partition: 0,
            }
        ));
        assert!(!Retry::is_retriable(&broker(
            ErrorCode::TOPIC_ALREADY_EXISTS
        )));
        assert!(!Retry::is_retriable(&broker(ErrorCode::INVALID_CONFIG)));
    }
}
