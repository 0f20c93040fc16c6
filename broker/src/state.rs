//! What every request handler shares: configuration, identity, topics, producer ids, and the
//! signal that wakes long-polling fetches when data arrives.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::group::Coordinator;
use crate::producer_ids::ProducerIds;
use crate::topics::{write_atomically, Topics};

/// Shared broker state.
pub(crate) struct BrokerState {
    pub(crate) config: BrokerConfig,
    /// The id in this node's meta.properties; the cluster's is in the metadata log.
    pub(crate) cluster_id: String,
    pub(crate) advertised_host: String,
    pub(crate) advertised_port: i32,
    pub(crate) topics: Arc<Topics>,
    pub(crate) producer_ids: ProducerIds,
    pub(crate) groups: Coordinator,
    pub(crate) transactions: Arc<crate::txn::TxnCoordinator>,
    /// The metadata quorum this node takes part in.
    pub(crate) quorum: Arc<crate::controller::quorum::Quorum>,
    /// Client quota sensors.
    pub(crate) quotas: crate::quota::Quotas,
    /// Who may do what.
    pub(crate) authorizer: crate::authorizer::Authorizer,
}

/// Wall-clock milliseconds since the Unix epoch.
impl BrokerState {
    /// The cluster's id: the metadata log's, or this node's own until the log has one.
    pub(crate) fn cluster_id(&self) -> String {
        self.quorum
            .image()
            .cluster_id
            .clone()
            .unwrap_or_else(|| self.cluster_id.clone())
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads the cluster id from `meta.properties`, creating the file on first start.
pub(crate) fn load_cluster_id(data_dir: &Path, node_id: i32) -> Result<String, BrokerError> {
    let path = data_dir.join("meta.properties");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("cluster.id="))
            .map(|s| s.trim().to_owned())
            .ok_or_else(|| BrokerError::Metadata {
                path: path.display().to_string(),
                reason: "no cluster.id line".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = kafka_cluster_id(Uuid::new_v4());
            let text = format!("version=1\nnode.id={node_id}\ncluster.id={id}\n");
            write_atomically(&path, text.as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(BrokerError::io(format!("reading {}", path.display()), e)),
    }
}

/// Kafka's cluster id form: a UUID in URL-safe base64 without padding (22 characters).
fn kafka_cluster_id(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_stable_and_kafka_shaped() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_cluster_id(dir.path(), 1).unwrap();
        assert_eq!(a.len(), 22);
        assert_eq!(load_cluster_id(dir.path(), 1).unwrap(), a);
    }
}
