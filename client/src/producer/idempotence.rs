//! The idempotent producer's identity: a producer id and epoch from InitProducerId.
//!
//! Every batch carries the id, the epoch and the sequence number of its first record
//! (numbered per partition from 0, assigned by the accumulator when a batch is first
//! drained). The broker keeps the last few sequence ranges of each producer per partition
//! and answers a batch it already has with its first offsets, so a retried batch is
//! written once.

use std::time::{Duration, Instant};

use kafka_protocol::messages::InitProducerIdRequest;
use strom_protocol::ErrorCode;
use tracing::{debug, info};

use super::batch::ProducerIdentity;
use crate::cluster::Cluster;
use crate::error::ClientError;

/// Asks the cluster for a producer id (no transactional id), retrying retriable failures
/// until `max.block.ms` has passed.
pub(super) async fn init_producer_id(cluster: &Cluster) -> Result<ProducerIdentity, ClientError> {
    let config = cluster.config();
    let deadline = Instant::now() + Duration::from_millis(config.max_block_ms);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(
            i32::try_from(config.transaction_timeout_ms).unwrap_or(i32::MAX),
        );
    loop {
        let error = match try_init(cluster, &request).await {
            Ok(identity) => {
                info!(
                    producer_id = identity.id,
                    epoch = identity.epoch,
                    "idempotent producer"
                );
                return Ok(identity);
            }
            Err(e) if e.is_retriable() && Instant::now() < deadline => e,
            Err(e) => return Err(e),
        };
        debug!(error = %error, "InitProducerId failed, retrying");
        tokio::time::sleep(Duration::from_millis(config.retry_backoff_ms)).await;
    }
}

async fn try_init(
    cluster: &Cluster,
    request: &InitProducerIdRequest,
) -> Result<ProducerIdentity, ClientError> {
    let response = cluster.any_broker().await?.send(request).await?;
    let code = ErrorCode(response.error_code);
    if !code.is_ok() {
        return Err(ClientError::Broker {
            code,
            context: "InitProducerId".to_owned(),
        });
    }
    Ok(ProducerIdentity {
        id: response.producer_id.0,
        epoch: response.producer_epoch,
        transactional: false,
    })
}
