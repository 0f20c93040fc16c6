//! DeleteGroups (key 42): versions 0-2.
//!
//! Deletes groups with no members, with their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members answers NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use strom_protocol::acl::Operation;
use strom_protocol::ErrorCode;

use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let code = if group_id.is_empty() {
            ErrorCode::INVALID_GROUP_ID
        } else if let Err(code) = super::group_check(state, client, &group_id, Operation::Delete) {
            code
        } else {
            state.groups.delete(&group_id.to_string()).await
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code.code()),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
