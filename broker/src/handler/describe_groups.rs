//! DescribeGroups (key 15): versions 0-5.
//!
//! State, protocol and members (with their metadata and assignment) of each group; a group
//! that does not exist is described as `Dead` with no error, as Kafka does. v3 adds
//! authorized operations (not computed without ACLs: -2^31), v4 static member ids.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

/// "Not requested / unknown" for authorized operations.
const NO_OPERATIONS: i32 = i32::MIN;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let mut described = DescribedGroup::default().with_group_id(group_id.clone());
        if version >= 3 {
            let operations = if request.include_authorized_operations {
                state.authorizer.authorized_operations(
                    &state.quorum.image(),
                    client,
                    ResourceType::Group,
                    &group_id,
                )
            } else {
                NO_OPERATIONS
            };
            described = described.with_authorized_operations(operations);
        }
        if group_id.is_empty() {
            groups.push(described.with_error_code(ErrorCode::INVALID_GROUP_ID.code()));
            continue;
        }
        if let Err(code) = super::group_check(state, client, &group_id, Operation::Describe) {
            groups.push(described.with_error_code(code.code()));
            continue;
        }
        let description = match state.groups.describe(&group_id.to_string()).await {
            Ok(Some(description)) => description,
            Ok(None) => {
                groups.push(described.with_group_state(str_bytes("Dead")));
                continue;
            }
            Err(code) => {
                groups.push(described.with_error_code(code.code()));
                continue;
            }
        };
        let members = description
            .members
            .into_iter()
            .map(|m| {
                let member = DescribedGroupMember::default()
                    .with_member_id(str_bytes(m.member_id))
                    .with_client_id(str_bytes(m.client_id))
                    .with_client_host(str_bytes(m.client_host))
                    .with_member_metadata(m.metadata)
                    .with_member_assignment(m.assignment);
                if version >= 4 {
                    member.with_group_instance_id(m.group_instance_id.map(str_bytes))
                } else {
                    member
                }
            })
            .collect();
        groups.push(
            described
                .with_group_state(str_bytes(description.state))
                .with_protocol_type(str_bytes(description.protocol_type))
                .with_protocol_data(str_bytes(description.protocol))
                .with_members(members),
        );
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
