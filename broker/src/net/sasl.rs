//! SASL on a connection: until a client has authenticated (SaslHandshake v1, then
//! SaslAuthenticate with PLAIN or SCRAM-SHA-256/512), only ApiVersions and those two are
//! answered; anything else closes the connection, as Kafka does.
//!
//! Re-authentication (KIP-368): with `connections.max.reauth.ms`, SaslAuthenticate tells
//! the client how long its session lasts; it authenticates again on the same connection
//! (same user, same mechanism) before then, or the connection is closed at its next
//! request. Clients may re-authenticate at any time.
//!
//! Users come from `user_<name>="<password>"` entries of a `*sasl.jaas.config` setting
//! (the broker keeps SCRAM credentials derived from them at start, never the passwords)
//! and from the SCRAM credentials in the metadata log (AlterUserScramCredentials); PLAIN
//! passwords are checked against the same salted keys.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::header::{decode_body, decode_request_header, encode_response, RequestPrefix};
use strom_protocol::sasl::{parse_plain, Mechanism, SaslError, ScramCredential, ScramServer};
use strom_protocol::{ErrorCode, ProtocolError};

use crate::controller::image::MetadataImage;
use crate::controller::quorum::Quorum;

/// PBKDF2 iterations of the credentials the broker derives (Kafka's minimum for SCRAM).
const ITERATIONS: u32 = 4096;

/// The mechanisms a listener offers and its users' credentials.
#[derive(Debug)]
pub(crate) struct SaslUsers {
    mechanisms: Vec<Mechanism>,
    credentials: HashMap<(Mechanism, String), ScramCredential>,
    /// How long a session lasts before the client must authenticate again
    /// (`connections.max.reauth.ms`); `None` for as long as the connection.
    pub(crate) session_lifetime: Option<std::time::Duration>,
}

impl SaslUsers {
    /// Credentials for `users` (name, password) under `mechanisms`.
    pub(crate) fn new<'a>(
        mechanisms: Vec<Mechanism>,
        users: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> SaslUsers {
        let mut credentials = HashMap::new();
        for (user, password) in users {
            for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
                let credential = ScramCredential::new(mechanism, password.as_bytes(), ITERATIONS);
                credentials.insert((mechanism, user.to_owned()), credential);
            }
        }
        SaslUsers {
            mechanisms,
            credentials,
            session_lifetime: None,
        }
    }

    /// `user`'s credential: configured, or in the metadata `image`.
    fn credential(
        &self,
        mechanism: Mechanism,
        user: &str,
        image: Option<&MetadataImage>,
    ) -> Option<ScramCredential> {
        self.credentials
            .get(&(mechanism, user.to_owned()))
            .or_else(|| image?.scram.get(user)?.get(mechanism.name()))
            .cloned()
    }

    /// Whether `password` is `user`'s (checked against the salted SCRAM keys).
    fn check_password(&self, user: &str, password: &str, image: Option<&MetadataImage>) -> bool {
        [Mechanism::ScramSha256, Mechanism::ScramSha512]
            .into_iter()
            .find_map(|m| Some((m, self.credential(m, user, image)?)))
            .is_some_and(|(m, stored)| {
                let given = ScramCredential::with_salt(
                    m,
                    password.as_bytes(),
                    &stored.salt,
                    stored.iterations,
                );
                given.stored_key == stored.stored_key
            })
    }

    fn names(&self) -> Vec<StrBytes> {
        self.mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect()
    }
}

enum State {
    /// Waiting for SaslHandshake.
    Start,
    /// Mechanism chosen, waiting for SaslAuthenticate.
    Handshaken(Mechanism, Option<ScramServer>),
    /// Authenticated as this user.
    Done(String),
}

/// Who a connection authenticated as, with which mechanism, until when.
struct Authenticated {
    user: String,
    mechanism: Mechanism,
    expires: Option<std::time::Instant>,
}

/// What the connection does with a frame.
pub(crate) enum Step {
    /// Served normally (ApiVersions, or anything once authenticated).
    Dispatch,
    /// Answered; the response is in the buffer.
    Answered,
    /// Answered (when the buffer holds a response); then the connection closes, for this
    /// reason.
    Close(String),
}

/// A connection's SASL state.
pub(crate) struct Session<'a> {
    users: &'a SaslUsers,
    quorum: &'a Quorum,
    state: State,
    /// The last successful authentication; kept through a re-authentication.
    authenticated: Option<Authenticated>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(users: &'a SaslUsers, quorum: &'a Quorum) -> Session<'a> {
        Session {
            users,
            quorum,
            state: State::Start,
            authenticated: None,
        }
    }

    /// The authenticated user, once there is one.
    pub(crate) fn principal(&self) -> Option<&str> {
        match &self.state {
            State::Done(user) => Some(user),
            _ => None,
        }
    }

    /// Handles `frame`: the SASL exchange (first or again), or, once authenticated and
    /// while the session lasts, anything.
    pub(crate) fn handle(
        &mut self,
        frame: &Bytes,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        let prefix = RequestPrefix::peek(frame)?;
        if self.principal().is_some() {
            if prefix.api_key == ApiKey::SaslHandshake as i16 {
                // Re-authentication: the exchange again.
                self.state = State::Start;
            } else if self
                .authenticated
                .as_ref()
                .and_then(|a| a.expires)
                .is_some_and(|at| std::time::Instant::now() >= at)
            {
                return Ok(Step::Close(
                    "the SASL session expired without re-authentication (KIP-368)".to_owned(),
                ));
            } else {
                return Ok(Step::Dispatch);
            }
        }
        let version = prefix.api_version;
        let mut frame = frame.clone();
        match ApiKey::try_from(prefix.api_key) {
            Ok(ApiKey::ApiVersions) => Ok(Step::Dispatch),
            Ok(ApiKey::SaslHandshake) if matches!(self.state, State::Start) => {
                if version != 1 {
                    return Ok(Step::Close(
                        "SaslHandshake v0 (raw SASL tokens) is not supported; use v1".to_owned(),
                    ));
                }
                let header = decode_request_header(&mut frame, ApiKey::SaslHandshake, version)?;
                let request: SaslHandshakeRequest =
                    decode_body(&mut frame, version, "SaslHandshake")?;
                let asked = request.mechanism.to_string();
                let chosen = Mechanism::parse(&asked).filter(|m| self.users.mechanisms.contains(m));
                let code = match chosen {
                    Some(m) => {
                        let scram = (m != Mechanism::Plain).then(|| ScramServer::new(m));
                        self.state = State::Handshaken(m, scram);
                        ErrorCode::NONE
                    }
                    None => ErrorCode::UNSUPPORTED_SASL_MECHANISM,
                };
                let response = SaslHandshakeResponse::default()
                    .with_error_code(code.code())
                    .with_mechanisms(self.users.names());
                encode_response(
                    ApiKey::SaslHandshake,
                    version,
                    header.correlation_id,
                    &response,
                    out,
                )?;
                Ok(if chosen.is_some() {
                    Step::Answered
                } else {
                    Step::Close(format!("SASL mechanism {asked} is not enabled"))
                })
            }
            Ok(ApiKey::SaslAuthenticate) if matches!(self.state, State::Handshaken(..)) => {
                let header = decode_request_header(&mut frame, ApiKey::SaslAuthenticate, version)?;
                let request: SaslAuthenticateRequest =
                    decode_body(&mut frame, version, "SaslAuthenticate")?;
                let (outcome, close) = self.authenticate(&request.auth_bytes);
                let lifetime = self
                    .users
                    .session_lifetime
                    .filter(|_| self.principal().is_some() && version >= 1)
                    .map_or(0, |l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX));
                let response = match outcome {
                    Ok(bytes) => SaslAuthenticateResponse::default()
                        .with_auth_bytes(bytes)
                        .with_session_lifetime_ms(lifetime),
                    Err(e) => SaslAuthenticateResponse::default()
                        .with_error_code(ErrorCode::SASL_AUTHENTICATION_FAILED.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Authentication failed: {e}"
                        )))),
                };
                encode_response(
                    ApiKey::SaslAuthenticate,
                    version,
                    header.correlation_id,
                    &response,
                    out,
                )?;
                Ok(match close {
                    Some(reason) => Step::Close(reason),
                    None => Step::Answered,
                })
            }
            Ok(api) => Ok(Step::Close(format!("{api:?} before SASL authentication"))),
            Err(_) => Err(ProtocolError::UnknownApiKey(prefix.api_key)),
        }
    }

    /// One SaslAuthenticate step: the bytes to answer with, and a reason to close the
    /// connection after answering (a failure).
    fn authenticate(&mut self, auth: &[u8]) -> (Result<Bytes, SaslError>, Option<String>) {
        let State::Handshaken(mechanism, scram) = &mut self.state else {
            return (
                Err(SaslError::Malformed("no handshake")),
                Some("no handshake".to_owned()),
            );
        };
        let mechanism_used = *mechanism;
        let users = self.users;
        let image = self.quorum.image();
        let image = Some(image.as_ref());
        let result = match (mechanism, scram) {
            (Mechanism::Plain, _) => parse_plain(auth).and_then(|(user, password)| {
                if users.check_password(&user, &password, image) {
                    Ok((Some(user), Bytes::new()))
                } else {
                    Err(SaslError::BadCredentials)
                }
            }),
            (m, Some(server)) => {
                let m = *m;
                // The first message starts the exchange; the second ends it.
                if server.challenged() {
                    server
                        .last(auth)
                        .map(|(user, verifier)| (Some(user), Bytes::from(verifier)))
                } else {
                    server
                        .first(auth, |user| users.credential(m, user, image))
                        .map(|challenge| (None, Bytes::from(challenge)))
                }
            }
            (_, None) => Err(SaslError::Malformed("no exchange")),
        };
        match result {
            Ok((Some(user), bytes)) => {
                if let Some(before) = &self.authenticated {
                    if before.user != user || before.mechanism != mechanism_used {
                        let reason = format!(
                            "re-authentication as {user} with {} on a connection of {} with {}",
                            mechanism_used.name(),
                            before.user,
                            before.mechanism.name()
                        );
                        return (
                            Err(SaslError::Malformed("a different principal or mechanism")),
                            Some(reason),
                        );
                    }
                }
                let expires = self
                    .users
                    .session_lifetime
                    .map(|l| std::time::Instant::now() + l);
                self.authenticated = Some(Authenticated {
                    user: user.clone(),
                    mechanism: mechanism_used,
                    expires,
                });
                self.state = State::Done(user);
                (Ok(bytes), None)
            }
            Ok((None, bytes)) => (Ok(bytes), None),
            Err(e) => {
                let reason = e.to_string();
                (Err(e), Some(reason))
            }
        }
    }
}

/// The answers to SaslHandshake and SaslAuthenticate outside an exchange (on a listener
/// without SASL).
pub(crate) fn illegal_state(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let code = ErrorCode::ILLEGAL_SASL_STATE.code();
    match api {
        ApiKey::SaslHandshake => {
            let response = SaslHandshakeResponse::default().with_error_code(code);
            encode_response(api, version, correlation_id, &response, out)
        }
        _ => {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_static_str(
                    "SASL is not expected on this connection",
                )));
            encode_response(api, version, correlation_id, &response, out)
        }
    }
}

/// The `username="..."` and `password="..."` of a JAAS configuration: what a broker logs
/// in to other brokers as.
pub(crate) fn jaas_login(jaas: &str) -> Option<(String, String)> {
    let quoted = |key: &str| {
        let mut rest = jaas;
        loop {
            let at = rest.find(key)?;
            let before = rest[..at].chars().last();
            rest = &rest[at + key.len()..];
            // A whole word: not the tail of `user_username`.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let value = rest.trim_start().strip_prefix('=')?.trim_start();
            let value = value.strip_prefix('"')?;
            return value.split_once('"').map(|(v, _)| v.to_owned());
        }
    };
    Some((quoted("username")?, quoted("password")?))
}

/// The users of `user_<name>="<password>"` entries in a JAAS configuration, as Kafka's
/// `PlainLoginModule` takes them.
pub(crate) fn jaas_users(jaas: &str) -> Vec<(String, String)> {
    let mut users = Vec::new();
    let mut rest = jaas;
    while let Some(at) = rest.find("user_") {
        rest = &rest[at + 5..];
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let after = after.trim_start();
        let Some(quoted) = after.strip_prefix('"') else {
            continue;
        };
        let Some((password, tail)) = quoted.split_once('"') else {
            break;
        };
        users.push((name.trim().to_owned(), password.to_owned()));
        rest = tail;
    }
    users
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn jaas_user_entries() {
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
            username="admin" password="admin-secret"
            user_admin="admin-secret" user_alice = "a=b c";"#;
        assert_eq!(
            jaas_users(jaas),
            [
                ("admin".to_owned(), "admin-secret".to_owned()),
                ("alice".to_owned(), "a=b c".to_owned())
            ]
        );
        assert!(jaas_users("user_x=unquoted;").is_empty());
        assert_eq!(
            jaas_login(jaas),
            Some(("admin".to_owned(), "admin-secret".to_owned()))
        );
        assert_eq!(jaas_login(r#"user_password="x" username="u";"#), None);
        assert!(jaas_users("user_broken=\"no end").is_empty());
    }

    #[test]
    fn plain_passwords_are_checked_against_salted_keys() {
        let users = SaslUsers::new(vec![Mechanism::Plain], [("alice", "pw")].into_iter());
        assert!(users.check_password("alice", "pw", None));
        assert!(!users.check_password("alice", "PW", None));
        assert!(!users.check_password("bob", "pw", None));
        // Users of the metadata log too.
        let mut image = MetadataImage::default();
        let bob = ScramCredential::new(Mechanism::ScramSha512, b"bob-pw", 4096);
        image
            .scram
            .entry("bob".to_owned())
            .or_default()
            .insert("SCRAM-SHA-512".to_owned(), bob);
        assert!(users.check_password("bob", "bob-pw", Some(&image)));
        assert!(!users.check_password("bob", "pw", Some(&image)));
        assert!(!format!("{users:?}").contains("\"pw\""));
    }
}
