//! Typed builder methods.

use super::*;

/// Typed builders for the common keys; each consumes and returns the config.
impl ClientConfig {
    /// Sets one key by its string name, as [`ClientConfig::set`], in a builder chain.
    pub fn with(mut self, key: &str, value: &str) -> Result<Self, ClientError> {
        self.set(key, value)?;
        Ok(self)
    }

    /// `bootstrap.servers`, comma-separated `host:port`.
    pub fn bootstrap(mut self, servers: &str) -> Self {
        self.bootstrap_servers = split_list(servers);
        self
    }

    /// `client.id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// `linger.ms`.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger_ms = millis(linger);
        self
    }

    /// `batch.size`.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// `compression.type`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// `enable.idempotence`, explicitly.
    pub fn enable_idempotence(mut self, enable: bool) -> Self {
        self.enable_idempotence = Some(enable);
        self
    }

    /// `max.in.flight.requests.per.connection`.
    pub fn max_in_flight(mut self, requests: u32) -> Self {
        self.max_in_flight_requests_per_connection = requests;
        self
    }

    /// `request.timeout.ms`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout_ms = millis(timeout);
        self
    }

    /// `delivery.timeout.ms`.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout_ms = millis(timeout);
        self
    }

    /// `retries`.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// `retry.backoff.ms`.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff_ms = millis(backoff);
        self
    }

    /// `partitioner`.
    pub fn partitioner(mut self, partitioner: PartitionerKind) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// `transactional.id`.
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// `group.id`.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }

    /// `group.instance.id`.
    pub fn group_instance_id(mut self, instance: impl Into<String>) -> Self {
        self.group_instance_id = Some(instance.into());
        self
    }

    /// `isolation.level`.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    /// `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// `enable.auto.commit`.
    pub fn enable_auto_commit(mut self, enable: bool) -> Self {
        self.enable_auto_commit = enable;
        self
    }

    /// `session.timeout.ms`.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout_ms = millis(timeout);
        self
    }

    /// `fetch.max.wait.ms`.
    pub fn fetch_max_wait(mut self, wait: Duration) -> Self {
        self.fetch_max_wait_ms = millis(wait);
        self
    }

    /// `max.poll.records`.
    pub fn max_poll_records(mut self, records: u32) -> Self {
        self.max_poll_records = records;
        self
    }
}
