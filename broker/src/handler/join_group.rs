//! JoinGroup (key 11): versions 0-9.
//!
//! v1 adds the rebalance timeout (v0 uses the session timeout), v4 makes a member without
//! an id ask again with the one it is given (MEMBER_ID_REQUIRED), v5 static membership
//! (`group.instance.id`), v7 the protocol type in the answer, v8 a reason, v9
//! `skip_assignment` (never set here). The answer waits for the rebalance.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use super::{str_bytes, Client};
use crate::group::machine::{JoinArgs, JoinResult};
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &Client,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group_id = request.group_id.to_string();
    if group_id.is_empty() {
        return respond(
            JoinResult::error(&request.member_id, ErrorCode::INVALID_GROUP_ID),
            version,
        );
    }
    if let Err(code) = super::group_check(state, client, &group_id, Operation::Read) {
        return respond(JoinResult::error(&request.member_id, code), version);
    }
    let rebalance_timeout_ms = if version >= 1 {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    };
    let args = JoinArgs {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        reason: request.reason.as_ref().map(|r| r.to_string()),
    };
    respond(state.groups.join(&group_id, args).await, version)
}

fn respond(result: JoinResult, version: i16) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|m| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.with_group_instance_id(m.group_instance_id.map(str_bytes))
            } else {
                member
            }
        })
        .collect();
    let protocol_name = match (result.protocol_name, version >= 7) {
        (name, true) => name.map(str_bytes),
        // Before v7 the name is not nullable.
        (name, false) => Some(str_bytes(name.unwrap_or_default())),
    };
    let mut response = JoinGroupResponse::default()
        .with_error_code(result.error.code())
        .with_generation_id(result.generation_id)
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(result.leader))
        .with_member_id(str_bytes(result.member_id))
        .with_members(members);
    if version >= 7 {
        response = response.with_protocol_type(result.protocol_type.map(str_bytes));
    }
    if version >= 9 {
        response = response.with_skip_assignment(result.skip_assignment);
    }
    response
}
