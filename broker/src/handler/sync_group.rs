//! SyncGroup (key 14): versions 0-5.
//!
//! The leader sends every member's assignment; each member gets its own once the leader's
//! has arrived. v3 adds static membership, v5 the protocol type and name (checked against
//! the group's, and echoed).

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::group::machine::{SyncArgs, SyncResult};
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group_id = request.group_id.to_string();
    let result = if group_id.is_empty() {
        SyncResult::error(ErrorCode::INVALID_GROUP_ID)
    } else if let Err(code) = super::group_check(state, client, &group_id, Operation::Read) {
        SyncResult::error(code)
    } else {
        let args = SyncArgs {
            member_id: request.member_id.to_string(),
            generation_id: request.generation_id,
            group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
            protocol_type: request.protocol_type.as_ref().map(|p| p.to_string()),
            protocol_name: request.protocol_name.as_ref().map(|p| p.to_string()),
            assignments: request
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        };
        state.groups.sync(&group_id, args).await
    };
    let response = SyncGroupResponse::default()
        .with_error_code(result.error.code())
        .with_assignment(result.assignment);
    if version >= 5 {
        response
            .with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol_name.map(str_bytes))
    } else {
        response
    }
}
