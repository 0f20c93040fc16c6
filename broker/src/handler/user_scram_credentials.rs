//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51), version 0:
//! SCRAM credentials live in the metadata log as salted keys (the client sends the salt
//! and the salted password; the password never reaches the broker). Changes go through
//! the active controller.

use std::collections::BTreeSet;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use strom_protocol::acl::Operation;
use strom_protocol::sasl::{Mechanism, ScramCredential};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::controller::records::MetadataRecord;
use crate::state::BrokerState;

/// Kafka's `ScramMechanism` numbers: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
fn mechanism(number: i8) -> Option<Mechanism> {
    match number {
        1 => Some(Mechanism::ScramSha256),
        2 => Some(Mechanism::ScramSha512),
        _ => None,
    }
}

fn number(mechanism: &str) -> i8 {
    match Mechanism::parse(mechanism) {
        Some(Mechanism::ScramSha256) => 1,
        Some(Mechanism::ScramSha512) => 2,
        _ => 0,
    }
}

/// The iteration counts Kafka accepts.
const ITERATIONS: std::ops::RangeInclusive<i32> = 4096..=16384;

pub(crate) async fn describe(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    if !state.allowed_on_cluster(client, Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
    }
    let image = state.quorum.image();
    // Null or empty: every user.
    let users: Vec<String> = match request.users.filter(|u| !u.is_empty()) {
        Some(users) => users.iter().map(|u| u.name.to_string()).collect(),
        None => image.scram.keys().cloned().collect(),
    };
    let results = users
        .into_iter()
        .map(|user| {
            let result =
                DescribeUserScramCredentialsResult::default().with_user(str_bytes(user.clone()));
            match image.scram.get(&user) {
                Some(mechanisms) => result.with_credential_infos(
                    mechanisms
                        .iter()
                        .map(|(name, credential)| {
                            CredentialInfo::default()
                                .with_mechanism(number(name))
                                .with_iterations(
                                    i32::try_from(credential.iterations).unwrap_or(i32::MAX),
                                )
                        })
                        .collect(),
                ),
                None => result
                    .with_error_code(ErrorCode::RESOURCE_NOT_FOUND.code())
                    .with_error_message(Some(str_bytes(format!("no SCRAM credential for {user}")))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub(crate) async fn alter(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    let image = state.quorum.image();
    let allowed = state.allowed_on_cluster(client, Operation::Alter);
    let mut records = Vec::new();
    let mut failed: Vec<(String, ErrorCode, String)> = Vec::new();
    let mut users = BTreeSet::new();
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        users.insert(user.clone());
        let Some(m) = mechanism(deletion.mechanism) else {
            failed.push((
                user,
                ErrorCode::UNSUPPORTED_SASL_MECHANISM,
                "unknown SCRAM mechanism".into(),
            ));
            continue;
        };
        if !image
            .scram
            .get(&user)
            .is_some_and(|c| c.contains_key(m.name()))
        {
            failed.push((
                user.clone(),
                ErrorCode::RESOURCE_NOT_FOUND,
                format!("no {} credential for {user}", m.name()),
            ));
            continue;
        }
        records.push(MetadataRecord::RemoveUserScramCredential {
            user,
            mechanism: m.name().to_owned(),
        });
    }
    for upsertion in &request.upsertions {
        let user = upsertion.name.to_string();
        users.insert(user.clone());
        let Some(m) = mechanism(upsertion.mechanism) else {
            failed.push((
                user,
                ErrorCode::UNSUPPORTED_SASL_MECHANISM,
                "unknown SCRAM mechanism".into(),
            ));
            continue;
        };
        if user.is_empty() {
            failed.push((
                user,
                ErrorCode::UNACCEPTABLE_CREDENTIAL,
                "an empty user name".into(),
            ));
            continue;
        }
        if !ITERATIONS.contains(&upsertion.iterations)
            || upsertion.salt.is_empty()
            || upsertion.salted_password.is_empty()
        {
            failed.push((
                user,
                ErrorCode::UNACCEPTABLE_CREDENTIAL,
                format!(
                    "iterations must be {}..={} with a salt and a salted password",
                    ITERATIONS.start(),
                    ITERATIONS.end()
                ),
            ));
            continue;
        }
        let iterations = u32::try_from(upsertion.iterations).unwrap_or(4096);
        let credential = ScramCredential::from_salted(
            m,
            &upsertion.salted_password,
            &upsertion.salt,
            iterations,
        );
        records.push(MetadataRecord::UserScramCredential {
            user,
            mechanism: m.name().to_owned(),
            salt: credential.salt,
            iterations,
            stored_key: credential.stored_key,
            server_key: credential.server_key,
        });
    }
    if !allowed {
        records.clear();
    }
    let committed = super::commit(state, records).await;
    let results = users
        .into_iter()
        .map(|user| {
            let result =
                AlterUserScramCredentialsResult::default().with_user(str_bytes(user.clone()));
            if !allowed {
                return result.with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
            }
            if let Some((_, code, message)) = failed.iter().find(|(u, _, _)| *u == user) {
                return result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message.clone())));
            }
            match &committed {
                Ok(()) => result,
                Err((code, message)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message.clone()))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
