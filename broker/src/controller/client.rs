//! Requests from this broker to the active controller, over the Kafka protocol to the
//! controller's client listener (its address is in the metadata image): producer-id
//! blocks, and creating the internal topics a broker needs when it is not the controller.

use strom_protocol::connection::Connection;
use strom_protocol::ErrorCode;
use tracing::debug;

use super::quorum::{Quorum, QuorumStatus};

/// A connection to the active controller, as `status` knows it, through `quorum`'s
/// inter-broker connector. COORDINATOR_NOT_AVAILABLE (retriable) when there is none or it
/// cannot be reached.
pub(crate) async fn connect(
    quorum: &Quorum,
    status: &QuorumStatus,
) -> Result<Connection, ErrorCode> {
    let leader = status.leader.ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
    quorum
        .connect_broker(leader, "strom-broker")
        .await
        .map_err(|e| {
            debug!(leader, error = %e, "controller unreachable");
            ErrorCode::COORDINATOR_NOT_AVAILABLE
        })
}
