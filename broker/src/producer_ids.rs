//! Allocation of producer ids for InitProducerId.
//!
//! Ids are handed out from blocks of the cluster's id space, which the metadata log hands
//! out: the active controller takes the next block by committing a `ProducerIds` record
//! (so no two brokers, and no restart, ever get the same block), and other brokers ask it
//! for one with AllocateProducerIds. A block is used up before the next is asked for;
//! what is left of one at a restart is skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::messages::{AllocateProducerIdsRequest, BrokerId};
use strom_protocol::connection::Connection;
use strom_protocol::ErrorCode;
use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::controller::quorum::{ProposeError, Quorum};
use crate::controller::records::MetadataRecord;
use crate::error::BrokerError;

/// Ids in a block.
const BLOCK: i64 = 1000;

/// The file in which earlier versions kept the end of their last block: ids below it
/// were handed out, so blocks start at or above it.
const LEGACY_FILE: &str = "producer_id_block";

/// Hands out unique producer ids.
pub(crate) struct ProducerIds {
    node_id: i32,
    quorum: Arc<Quorum>,
    /// Ids below this were handed out before the metadata log kept track.
    floor: i64,
    /// The current block: next id and end.
    block: Mutex<(i64, i64)>,
    /// On the controller: one block taken at a time.
    allocating: Mutex<()>,
}

impl ProducerIds {
    /// The allocator of node `node_id`, taking blocks through `quorum`.
    pub(crate) fn new(
        data_dir: &Path,
        node_id: i32,
        quorum: Arc<Quorum>,
    ) -> Result<ProducerIds, BrokerError> {
        Ok(ProducerIds {
            node_id,
            quorum,
            floor: legacy_floor(&data_dir.join(LEGACY_FILE))?,
            block: Mutex::new((0, 0)),
            allocating: Mutex::new(()),
        })
    }

    /// The next unused producer id; COORDINATOR_NOT_AVAILABLE (retriable) when no block can
    /// be had now (no controller reachable).
    pub(crate) async fn next(&self) -> Result<i64, ErrorCode> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let (start, len) = self.new_block().await?;
            *block = (start, start + len);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// A fresh block: from the metadata log on the controller, else asked of it.
    async fn new_block(&self) -> Result<(i64, i64), ErrorCode> {
        let status = self.quorum.status();
        match status.leader {
            Some(leader) if leader == self.node_id => self.allocate().await,
            Some(_) => {
                let epoch = status
                    .image
                    .brokers
                    .get(&self.node_id)
                    .map_or(-1, |b| b.epoch);
                let conn = crate::controller::client::connect(&self.quorum, &status).await?;
                ask_controller(&conn, self.node_id, epoch).await
            }
            None => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// On the active controller: commits the next block to the metadata log and returns
    /// it. NOT_CONTROLLER elsewhere.
    pub(crate) async fn allocate(&self) -> Result<(i64, i64), ErrorCode> {
        let _one = self.allocating.lock().await;
        let start = self.quorum.image().next_producer_id.max(self.floor);
        let end = start + BLOCK;
        match self
            .quorum
            .propose(vec![MetadataRecord::ProducerIds { next: end }])
            .await
        {
            Ok(_) => Ok((start, BLOCK)),
            Err(ProposeError::NotLeader { .. }) => Err(ErrorCode::NOT_CONTROLLER),
            Err(e) => {
                warn!(error = %e, "allocating producer ids");
                Err(ErrorCode::COORDINATOR_NOT_AVAILABLE)
            }
        }
    }
}

/// Asks the controller on `conn` for a block.
async fn ask_controller(
    conn: &Connection,
    node_id: i32,
    epoch: i64,
) -> Result<(i64, i64), ErrorCode> {
    let request = AllocateProducerIdsRequest::default()
        .with_broker_id(BrokerId(node_id))
        .with_broker_epoch(epoch);
    let response = conn.send(&request).await.map_err(|e| {
        debug!(error = %e, "AllocateProducerIds failed");
        ErrorCode::COORDINATOR_NOT_AVAILABLE
    })?;
    let code = ErrorCode(response.error_code);
    if !code.is_ok() {
        return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
    }
    Ok((
        response.producer_id_start.0,
        i64::from(response.producer_id_len),
    ))
}

/// The end of the last block an earlier version handed out (0 without its file).
fn legacy_floor(path: &PathBuf) -> Result<i64, BrokerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|e| BrokerError::Metadata {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(BrokerError::io(format!("reading {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open(dir: &Path) -> (ProducerIds, tokio::sync::watch::Sender<bool>) {
        let (quorum, stop) = crate::controller::quorum::single_node(dir).await;
        (ProducerIds::new(dir, 1, quorum).unwrap(), stop)
    }

    #[tokio::test]
    async fn ids_are_unique_across_restarts_and_above_earlier_blocks() {
        let dir = tempfile::tempdir().unwrap();
        // An earlier version handed out ids below 5000.
        std::fs::write(dir.path().join(LEGACY_FILE), "5000\n").unwrap();
        let (ids, stop) = open(dir.path()).await;
        assert_eq!(ids.next().await.unwrap(), 5000);
        assert_eq!(ids.next().await.unwrap(), 5001);
        stop.send_replace(true);
        drop(ids);
        let (ids, _stop) = open(dir.path()).await;
        assert_eq!(ids.next().await.unwrap(), 5000 + BLOCK);
    }
}
