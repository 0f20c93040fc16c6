//! SCRAM users: DescribeUserScramCredentials and AlterUserScramCredentials. The password
//! is salted here; only the salt and the salted password travel, as Kafka's admin client
//! does.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use rand::Rng;
use strom_protocol::sasl::{Mechanism, ScramCredential};

use super::{check, Admin};
use crate::ClientError;

/// Kafka's number for a SCRAM mechanism (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
fn number(mechanism: Mechanism) -> Result<i8, ClientError> {
    match mechanism {
        Mechanism::ScramSha256 => Ok(1),
        Mechanism::ScramSha512 => Ok(2),
        Mechanism::Plain => Err(ClientError::Config {
            key: "mechanism".to_owned(),
            value: "PLAIN".to_owned(),
            reason: "expected SCRAM-SHA-256 or SCRAM-SHA-512".to_owned(),
        }),
    }
}

/// A user's SCRAM credential as described: its mechanism and iteration count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: Mechanism,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

impl Admin {
    /// Sets `user`'s `mechanism` credential to `password` with `iterations` (4096 to
    /// 16384), creating the user if needed.
    ///
    /// # Errors
    /// A mechanism other than SCRAM, the broker's refusal (e.g. `UNACCEPTABLE_CREDENTIAL`).
    pub async fn upsert_scram_credential(
        &self,
        user: &str,
        mechanism: Mechanism,
        password: &str,
        iterations: i32,
    ) -> Result<(), ClientError> {
        let salt: [u8; 32] = rand::rng().random();
        let rounds = u32::try_from(iterations).unwrap_or(0);
        let salted = ScramCredential::salt_password(mechanism, password.as_bytes(), &salt, rounds);
        let upsertion = ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.to_owned()))
            .with_mechanism(number(mechanism)?)
            .with_iterations(iterations)
            .with_salt(salt.to_vec().into())
            .with_salted_password(salted.into());
        self.alter_scram(
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]),
        )
        .await
    }

    /// Deletes `user`'s `mechanism` credential.
    ///
    /// # Errors
    /// `RESOURCE_NOT_FOUND` when it has none.
    pub async fn delete_scram_credential(
        &self,
        user: &str,
        mechanism: Mechanism,
    ) -> Result<(), ClientError> {
        let deletion = ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(user.to_owned()))
            .with_mechanism(number(mechanism)?);
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]))
            .await
    }

    async fn alter_scram(
        &self,
        request: AlterUserScramCredentialsRequest,
    ) -> Result<(), ClientError> {
        let conn = self.cluster.controller().await?;
        let response = conn.send(&request).await?;
        for result in &response.results {
            check(result.error_code, result.error_message.as_ref(), || {
                format!("SCRAM credential of {}", result.user)
            })?;
        }
        Ok(())
    }

    /// The SCRAM credentials of `users` (every user with one when `None`), by user.
    ///
    /// # Errors
    /// `RESOURCE_NOT_FOUND` for a named user without credentials.
    pub async fn describe_scram_credentials(
        &self,
        users: Option<&[&str]>,
    ) -> Result<Vec<(String, Vec<ScramCredentialInfo>)>, ClientError> {
        let request =
            DescribeUserScramCredentialsRequest::default().with_users(users.map(|users| {
                users
                    .iter()
                    .map(|u| UserName::default().with_name(StrBytes::from_string((*u).to_owned())))
                    .collect()
            }));
        let conn = self.cluster.any_broker().await?;
        let response = conn.send(&request).await?;
        check(response.error_code, response.error_message.as_ref(), || {
            "describe SCRAM credentials".to_owned()
        })?;
        let mut described = Vec::new();
        for result in response.results {
            check(result.error_code, result.error_message.as_ref(), || {
                format!("SCRAM credentials of {}", result.user)
            })?;
            let infos = result
                .credential_infos
                .iter()
                .filter_map(|info| {
                    let mechanism = match info.mechanism {
                        1 => Mechanism::ScramSha256,
                        2 => Mechanism::ScramSha512,
                        _ => return None,
                    };
                    Some(ScramCredentialInfo {
                        mechanism,
                        iterations: info.iterations,
                    })
                })
                .collect();
            described.push((result.user.to_string(), infos));
        }
        Ok(described)
    }
}
