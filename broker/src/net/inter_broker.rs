//! How this broker connects to the others (and to itself): to their inter-broker listener
//! (`inter.broker.listener.name`), over TLS when that listener has it. Replication,
//! transaction markers and requests to the controller all go this way.
//!
//! Over TLS the broker checks the other's certificate against `ssl.truststore.location`
//! and shows its own keystore certificate, so with `ssl.client.auth` brokers are known by
//! their certificates' principals. Over SASL it logs in with the `username` and
//! `password` of its JAAS configuration and `sasl.mechanism.inter.broker.protocol`.
//! Either way, put the brokers' principal in `super.users` once ACLs are on.

use std::sync::Arc;

use strom_protocol::connection::Connection;
use strom_protocol::sasl::{AuthenticateError, Mechanism};
use strom_protocol::tls::ClientTls;
use strom_protocol::ProtocolError;
use tracing::warn;

use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// Connects to other brokers' inter-broker listeners.
#[derive(Clone, Default)]
pub(crate) struct InterBroker {
    /// Over TLS: the client configuration, or why there is none (connections then fail
    /// with that reason; a broker alone needs them only for transactions).
    tls: Option<Result<Arc<rustls::ClientConfig>, String>>,
    /// Over SASL: the mechanism, user and password, or why there are none.
    sasl: Option<Result<(Mechanism, String, String), String>>,
}

impl std::fmt::Debug for InterBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterBroker")
            .field("tls", &self.tls.as_ref().map(Result::is_ok))
            .field("sasl", &self.sasl.as_ref().map(Result::is_ok))
            .finish()
    }
}

impl InterBroker {
    /// The connector for `config`'s inter-broker listener.
    ///
    /// # Errors
    /// [`BrokerError::Config`] for an inter-broker listener that cannot be used.
    pub(crate) fn new(config: &BrokerConfig) -> Result<InterBroker, BrokerError> {
        let listener = config.inter_broker_listener()?;
        let sasl = config.listener_sasl(&listener.name).then(|| {
            let mechanism = config.inter_broker_sasl_mechanism;
            match config.inter_broker_credentials.0.first() {
                Some((user, password)) => Ok((mechanism, user.clone(), password.clone())),
                None => Err(format!(
                    "the inter-broker listener {} has SASL, and no sasl.jaas.config gives this broker a username=\"...\" password=\"...\" to log in with",
                    listener.name
                )),
            }
        });
        if let Some(Err(reason)) = &sasl {
            warn!(%reason, "brokers cannot connect to each other (replication, transaction markers)");
        }
        if config.listener_tls(&listener.name)?.is_none() {
            return Ok(InterBroker { tls: None, sasl });
        }
        let tls = match config.ssl.truststore.clone() {
            None => Err(format!(
                "the inter-broker listener {} has TLS, and brokers check each other's certificates by ssl.truststore.location, which is not set",
                listener.name
            )),
            Some(truststore) => ClientTls {
                ca: Some(truststore),
                certificate: config.ssl.keystore.clone(),
                key: config.ssl.keystore.clone(),
                verify_hostname: true,
            }
            .config()
            .map_err(|e| format!("inter-broker TLS: {e}")),
        };
        if let Err(reason) = &tls {
            warn!(%reason, "brokers cannot connect to each other (replication, transaction markers)");
        }
        Ok(InterBroker {
            tls: Some(tls),
            sasl,
        })
    }

    /// Connects to `address` (an inter-broker endpoint) as `client_id`.
    pub(crate) async fn connect(
        &self,
        address: &str,
        client_id: &str,
    ) -> Result<Connection, ProtocolError> {
        let refused = |reason: String| ProtocolError::Io(std::io::Error::other(reason));
        let conn = match &self.tls {
            Some(Ok(tls)) => Connection::connect_tls(address, client_id, tls.clone()).await?,
            Some(Err(reason)) => return Err(refused(reason.clone())),
            None => Connection::connect(address, client_id).await?,
        };
        match &self.sasl {
            None => {}
            Some(Err(reason)) => return Err(refused(reason.clone())),
            Some(Ok((mechanism, user, password))) => {
                match strom_protocol::sasl::authenticate(&conn, *mechanism, user, password).await {
                    // Replaced at 90% of a limited session (KIP-368).
                    Ok(lifetime_ms) if lifetime_ms > 0 => {
                        let lifetime = u64::try_from(lifetime_ms).unwrap_or(u64::MAX);
                        let retire = std::time::Duration::from_millis(lifetime / 10 * 9);
                        conn.retire_at(std::time::Instant::now() + retire);
                    }
                    Ok(_) => {}
                    Err(AuthenticateError::Protocol(e)) => return Err(e),
                    Err(refusal) => return Err(refused(refusal.to_string())),
                }
            }
        }
        Ok(conn)
    }
}
