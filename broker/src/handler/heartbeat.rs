//! Heartbeat (key 12): versions 0-4.
//!
//! Keeps a member's session alive; the error tells it to rejoin (REBALANCE_IN_PROGRESS)
//! or that it was removed (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION). v3 adds static
//! membership.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use crate::group::Member;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let group_id = request.group_id.to_string();
    let code = if group_id.is_empty() {
        ErrorCode::INVALID_GROUP_ID
    } else if let Err(code) = super::group_check(state, client, &group_id, Operation::Read) {
        code
    } else {
        let member = Member {
            member_id: request.member_id.to_string(),
            generation_id: request.generation_id,
            group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        };
        state.groups.heartbeat(&group_id, member).await
    };
    HeartbeatResponse::default().with_error_code(code.code())
}
