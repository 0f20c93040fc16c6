//! LeaveGroup (key 13): versions 0-5.
//!
//! v0-2 name one member; v3+ a batch of members (static members leave by instance id),
//! each answered on its own; v5 adds a reason per member.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = request.group_id.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                let instance = m.group_instance_id.as_ref().map(|i| i.to_string());
                (m.member_id.to_string(), instance)
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    if group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(ErrorCode::INVALID_GROUP_ID.code());
    }
    if let Err(code) = super::group_check(state, client, &group_id, Operation::Read) {
        return LeaveGroupResponse::default().with_error_code(code.code());
    }
    let codes = state.groups.leave(&group_id, members.clone()).await;
    if version < 3 {
        let code = codes
            .first()
            .copied()
            .unwrap_or(ErrorCode::UNKNOWN_MEMBER_ID);
        return LeaveGroupResponse::default().with_error_code(code.code());
    }
    let responses = members
        .into_iter()
        .zip(codes)
        .map(|((member_id, instance), code)| {
            MemberResponse::default()
                .with_member_id(str_bytes(member_id))
                .with_group_instance_id(instance.map(str_bytes))
                .with_error_code(code.code())
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}
