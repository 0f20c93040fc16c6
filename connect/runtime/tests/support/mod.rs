//! Helpers the tests share.

use std::time::{Duration, Instant};

use strom_client::admin::{Admin, OffsetSpec};
use strom_client::ClientConfig;

/// Records in `topic` (0 while it does not exist).
pub async fn topic_size(client: &ClientConfig, topic: &str) -> i64 {
    let admin = Admin::connect(client.clone()).await.unwrap();
    match admin.list_offsets(topic, OffsetSpec::Latest).await {
        Ok(ends) => ends.values().map(|o| o.offset).sum(),
        Err(_) => 0,
    }
}

/// Waits until `topic` holds `n` records (it may not exist yet).
pub async fn wait_for_size(client: &ClientConfig, topic: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = topic_size(client, topic).await;
        assert!(size <= n, "{topic} has {size} records, more than {n}");
        if size == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} has {size} of {n} records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
