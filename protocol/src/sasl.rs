//! SASL mechanisms Kafka speaks inside `SaslAuthenticate`: PLAIN (RFC 4616) and
//! SCRAM-SHA-256/512 (RFC 5802, RFC 7677), for both sides of the exchange.
//!
//! ```
//! use strom_protocol::sasl::{Mechanism, ScramClient, ScramCredential, ScramServer};
//! let stored = ScramCredential::new(Mechanism::ScramSha512, b"alice-secret", 4096);
//! let mut client = ScramClient::new(Mechanism::ScramSha512, "alice", "alice-secret");
//! let mut server = ScramServer::new(Mechanism::ScramSha512);
//! let first = client.first();
//! let challenge = server.first(&first, |user| (user == "alice").then(|| stored.clone())).unwrap();
//! let last = client.last(&challenge).unwrap();
//! let (user, verifier) = server.last(&last).unwrap();
//! client.verify(&verifier).unwrap();
//! assert_eq!(user, "alice");
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256, Sha512};

/// A SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `PLAIN`: user name and password in the clear (use it over TLS).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl Mechanism {
    /// Every mechanism, in the order a broker offers them.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    /// Kafka's name: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (case-insensitively).
    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::ScramSha512 => {
                let mut mac =
                    Hmac::<Sha512>::new_from_slice(key).unwrap_or_else(|_| unreachable_key());
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            _ => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable_key());
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
            _ => Sha256::digest(data).to_vec(),
        }
    }

    /// `Hi()`: PBKDF2 with this mechanism's HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::ScramSha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
            _ => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// HMAC takes keys of any length, so this never runs.
fn unreachable_key<T>() -> T {
    unreachable!("HMAC accepts keys of every length")
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The peer's message does not follow the mechanism.
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),
    /// Wrong user name or password (deliberately not saying which).
    #[error("authentication failed: invalid credentials")]
    BadCredentials,
    /// The server's proof of knowing the password did not match.
    #[error("the server's SCRAM signature does not match: not the server the password was set on")]
    BadServerSignature,
    /// The server said no.
    #[error("the server refused: {0}")]
    Refused(String),
}

/// PLAIN's one message: `[authzid] NUL user NUL password`.
pub fn plain_message(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// The user name and password of a PLAIN message (an authorization id, if any, must be
/// the user itself).
///
/// # Errors
/// [`SaslError::Malformed`].
pub fn parse_plain(message: &[u8]) -> Result<(String, String), SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::Malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authz), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(
            "PLAIN is authzid NUL user NUL password",
        ));
    };
    if user.is_empty() || (!authz.is_empty() && authz != user) {
        return Err(SaslError::Malformed(
            "PLAIN needs a user (and no other authzid)",
        ));
    }
    Ok((user.to_owned(), password.to_owned()))
}

/// What a server keeps of a SCRAM password: the salt, the iteration count and two keys
/// derived from the salted password, never the password itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    /// Random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations (Kafka's minimum is 4096).
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// A credential for `password` with a fresh random salt.
    pub fn new(mechanism: Mechanism, password: &[u8], iterations: u32) -> ScramCredential {
        let salt: [u8; 24] = rand::rng().random();
        ScramCredential::with_salt(mechanism, password, &salt, iterations)
    }

    /// A credential from a password already salted (`Hi(password, salt, iterations)`), as
    /// AlterUserScramCredentials carries it.
    pub fn from_salted(
        mechanism: Mechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        }
    }

    /// `Hi(password, salt, iterations)`: what AlterUserScramCredentials sends.
    pub fn salt_password(
        mechanism: Mechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Vec<u8> {
        mechanism.salted_password(password, salt, iterations)
    }

    /// A credential for `password` with `salt`.
    pub fn with_salt(
        mechanism: Mechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password, salt, iterations);
        ScramCredential::from_salted(mechanism, &salted, salt, iterations)
    }
}

fn nonce() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    B64.encode(bytes)
}

/// `a=value` attributes of a SCRAM message, in order.
fn attributes(message: &str) -> impl Iterator<Item = (char, &str)> {
    message.split(',').filter_map(|part| {
        let mut chars = part.chars();
        let name = chars.next()?;
        let value = part.get(1..)?.strip_prefix('=')?;
        Some((name, value))
    })
}

fn attribute(message: &str, name: char) -> Option<&str> {
    attributes(message)
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// A SCRAM user name escaped (`,` as `=2C`, `=` as `=3D`).
fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn unescape(user: &str) -> String {
    user.replace("=2C", ",").replace("=3D", "=")
}

/// The client side of a SCRAM exchange.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: Mechanism,
    password: String,
    first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

impl ScramClient {
    /// An exchange for `user` with `password`.
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> ScramClient {
        let nonce = nonce();
        ScramClient {
            mechanism,
            password: password.to_owned(),
            first_bare: format!("n={},r={nonce}", escape(user)),
            nonce,
            server_signature: Vec::new(),
        }
    }

    /// The client-first message.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client-final message, answering the server-first message.
    ///
    /// # Errors
    /// A malformed server message, or one whose nonce does not extend ours.
    pub fn last(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| SaslError::Malformed("server-first is not UTF-8"))?;
        if let Some(error) = attribute(server_first, 'e') {
            return Err(SaslError::Refused(error.to_owned()));
        }
        let nonce = attribute(server_first, 'r').ok_or(SaslError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SaslError::Malformed(
                "the server's nonce does not extend ours",
            ));
        }
        let salt = attribute(server_first, 's')
            .and_then(|s| B64.decode(s).ok())
            .ok_or(SaslError::Malformed("no salt"))?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| *i > 0)
            .ok_or(SaslError::Malformed("no iteration count"))?;
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{server_first},{without_proof}", self.first_bare);
        let salted = self
            .mechanism
            .salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let stored_key = self.mechanism.hash(&client_key);
        let server_key = self.mechanism.hmac(&salted, b"Server Key");
        let signature = self.mechanism.hmac(&stored_key, auth.as_bytes());
        let proof = xor(&client_key, &signature);
        self.server_signature = self.mechanism.hmac(&server_key, auth.as_bytes());
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server knew the password too.
    ///
    /// # Errors
    /// [`SaslError::Refused`] with the server's error, [`SaslError::BadServerSignature`].
    pub fn verify(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let server_final = std::str::from_utf8(server_final)
            .map_err(|_| SaslError::Malformed("server-final is not UTF-8"))?;
        if let Some(error) = attribute(server_final, 'e') {
            return Err(SaslError::Refused(error.to_owned()));
        }
        let signature = attribute(server_final, 'v')
            .and_then(|v| B64.decode(v).ok())
            .ok_or(SaslError::Malformed("no server signature"))?;
        if signature.is_empty() || signature != self.server_signature {
            return Err(SaslError::BadServerSignature);
        }
        Ok(())
    }
}

/// The server side of a SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: Mechanism,
    state: Option<(String, String, String, ScramCredential)>,
}

impl ScramServer {
    /// A new exchange.
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: None,
        }
    }

    /// Whether the server-first message went out (the client-final message is next).
    pub fn challenged(&self) -> bool {
        self.state.is_some()
    }

    /// The server-first message for a client-first message; `lookup` finds the user's
    /// credential. An unknown user gets a made-up challenge, so that the failure comes
    /// at the same step as a wrong password.
    ///
    /// # Errors
    /// [`SaslError::Malformed`].
    pub fn first(
        &mut self,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, SaslError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| SaslError::Malformed("client-first is not UTF-8"))?;
        let bare = text
            .strip_prefix("n,,")
            .or_else(|| text.strip_prefix("y,,"))
            .ok_or(SaslError::Malformed(
                "client-first must start with n,, (no channel binding)",
            ))?;
        let user = attribute(bare, 'n').ok_or(SaslError::Malformed("no user name"))?;
        let client_nonce = attribute(bare, 'r').ok_or(SaslError::Malformed("no nonce"))?;
        if user.is_empty() || client_nonce.is_empty() {
            return Err(SaslError::Malformed("empty user name or nonce"));
        }
        let user = unescape(user);
        let credential = lookup(&user).unwrap_or_else(|| {
            // Unknown: a credential no password matches.
            let mut fake =
                ScramCredential::new(self.mechanism, &rand::rng().random::<[u8; 32]>(), 4096);
            fake.stored_key.iter_mut().for_each(|b| *b = !*b);
            fake
        });
        let nonce = format!("{client_nonce}{}", nonce());
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let auth_start = format!("{bare},{server_first}");
        self.state = Some((user, nonce, auth_start, credential));
        Ok(server_first.into_bytes())
    }

    /// The server-final message for a client-final message, and the authenticated user.
    ///
    /// # Errors
    /// [`SaslError::BadCredentials`] for a wrong password or unknown user;
    /// [`SaslError::Malformed`].
    pub fn last(&mut self, client_final: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
        let (user, nonce, auth_start, credential) = self
            .state
            .take()
            .ok_or(SaslError::Malformed("client-final before client-first"))?;
        let text = std::str::from_utf8(client_final)
            .map_err(|_| SaslError::Malformed("client-final is not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(SaslError::Malformed("no proof"))?;
        // Kafka accepts a final nonce that ends with the server's (librdkafka 2.0 sends the
        // client's nonce in front of it once more); the proof covers whatever was sent.
        if !attribute(without_proof, 'r').is_some_and(|r| r.ends_with(nonce.as_str())) {
            return Err(SaslError::Malformed("the nonce changed"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| SaslError::Malformed("the proof is not base64"))?;
        let auth = format!("{auth_start},{without_proof}");
        let signature = self.mechanism.hmac(&credential.stored_key, auth.as_bytes());
        if proof.len() != signature.len() {
            return Err(SaslError::BadCredentials);
        }
        let client_key = xor(&proof, &signature);
        if self.mechanism.hash(&client_key) != credential.stored_key {
            return Err(SaslError::BadCredentials);
        }
        let server_signature = self.mechanism.hmac(&credential.server_key, auth.as_bytes());
        Ok((
            user,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, with its nonces and salt.
    #[test]
    fn the_rfc_7677_example_exchange() {
        let mechanism = Mechanism::ScramSha256;
        let mut client = ScramClient {
            mechanism,
            password: "pencil".to_owned(),
            first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".to_owned(),
            nonce: "rOprNGfwEbeRWgbNEkqO".to_owned(),
            server_signature: Vec::new(),
        };
        assert_eq!(client.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = client.last(server_first).unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(
            client.verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(SaslError::BadServerSignature)
        );
    }

    #[test]
    fn wrong_passwords_unknown_users_and_garbage_fail() {
        for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let stored = ScramCredential::new(mechanism, b"right", 4096);
            let exchange = |user: &str, password: &str| {
                let mut client = ScramClient::new(mechanism, user, password);
                let mut server = ScramServer::new(mechanism);
                let first = server
                    .first(&client.first(), |u| (u == "bob,=x").then(|| stored.clone()))
                    .unwrap();
                let last = client.last(&first).unwrap();
                let (user, verifier) = server.last(&last)?;
                client.verify(&verifier)?;
                Ok::<_, SaslError>(user)
            };
            assert_eq!(exchange("bob,=x", "right").unwrap(), "bob,=x");
            assert_eq!(exchange("bob,=x", "wrong"), Err(SaslError::BadCredentials));
            assert_eq!(exchange("nobody", "right"), Err(SaslError::BadCredentials));
            let mut server = ScramServer::new(mechanism);
            for junk in [&b""[..], b"n,,", b"p=tls,n=a,r=b", b"\xff\xfe", b"n,,n=,r="] {
                assert!(server.first(junk, |_| None).is_err(), "{junk:?}");
            }
            assert!(server.last(b"c=biws,r=x,p=AAAA").is_err());
        }
    }

    #[test]
    fn plain_messages() {
        assert_eq!(
            parse_plain(&plain_message("alice", "pw\u{e9}")).unwrap(),
            ("alice".to_owned(), "pw\u{e9}".to_owned())
        );
        assert_eq!(
            parse_plain(b"alice\0alice\0pw").unwrap().0,
            "alice".to_owned()
        );
        for junk in [
            &b""[..],
            b"\0\0pw",
            b"mallory\0alice\0pw",
            b"a\0b",
            b"\0a\0b\0c",
        ] {
            assert!(parse_plain(junk).is_err(), "{junk:?}");
        }
        assert_eq!(
            Mechanism::parse("scram-sha-512"),
            Some(Mechanism::ScramSha512)
        );
        assert_eq!(Mechanism::parse("GSSAPI"), None);
    }
}

/// Why a client-side SASL exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// The connection failed, or the broker sent something undecodable.
    #[error(transparent)]
    Protocol(#[from] crate::ProtocolError),
    /// The broker refused: the mechanism, the credentials, the exchange.
    #[error("{context}: {code}")]
    Refused {
        /// Kafka's error code.
        code: crate::ErrorCode,
        /// What was tried, and the broker's message.
        context: String,
    },
}

/// Authenticates `conn` as `user`: SaslHandshake v1 naming `mechanism`, then
/// SaslAuthenticate with PLAIN's one message or SCRAM's two (the broker's signature
/// checked). Returns the session lifetime the broker gave, in milliseconds (0 for none;
/// KIP-368).
///
/// # Errors
/// [`AuthenticateError::Refused`] with the broker's code (UNSUPPORTED_SASL_MECHANISM,
/// SASL_AUTHENTICATION_FAILED, ...); [`AuthenticateError::Protocol`] when the
/// connection fails.
pub async fn authenticate(
    conn: &crate::connection::Connection,
    mechanism: Mechanism,
    user: &str,
    password: &str,
) -> Result<i64, AuthenticateError> {
    use crate::ErrorCode;
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    use kafka_protocol::protocol::StrBytes;
    let refused = |code: ErrorCode, context: String| AuthenticateError::Refused { code, context };
    let handshake = conn
        .send(
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(mechanism.name())),
        )
        .await?;
    let code = ErrorCode(handshake.error_code);
    if !code.is_ok() {
        let offered: Vec<String> = handshake
            .mechanisms
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(refused(
            code,
            format!("SASL {}: the broker offers {offered:?}", mechanism.name()),
        ));
    }
    let step = |bytes: Vec<u8>| async move {
        let response = conn
            .send(&SaslAuthenticateRequest::default().with_auth_bytes(bytes.into()))
            .await?;
        let code = ErrorCode(response.error_code);
        if code.is_ok() {
            Ok((response.auth_bytes, response.session_lifetime_ms))
        } else {
            let message = response
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_default();
            Err(refused(
                code,
                format!("SASL {} as {user}: {message}", mechanism.name()),
            ))
        }
    };
    let failed = |e: SaslError| {
        refused(
            ErrorCode::SASL_AUTHENTICATION_FAILED,
            format!("SASL {}: {e}", mechanism.name()),
        )
    };
    match mechanism {
        Mechanism::Plain => Ok(step(plain_message(user, password)).await?.1),
        Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
            let mut scram = ScramClient::new(mechanism, user, password);
            let (challenge, _) = step(scram.first()).await?;
            let last = scram.last(&challenge).map_err(failed)?;
            let (verifier, lifetime_ms) = step(last).await?;
            scram.verify(&verifier).map_err(failed)?;
            Ok(lifetime_ms)
        }
    }
}
