//! TLS for Kafka connections with rustls: certificates and keys from PEM files, as
//! Kafka's `ssl.*` keys name them, for clients (`ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.key.location`) and brokers (`ssl.keystore.location`,
//! `ssl.truststore.location`, `ssl.client.auth`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What can be wrong with TLS settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file that cannot be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
    /// A client certificate verifier could not be built.
    #[error("client certificate verification: {0}")]
    Verifier(String),
}

/// ring's provider with AES-128-GCM first: as secure for Kafka's traffic, and a third
/// cheaper per byte than AES-256-GCM, which is most of what TLS costs a busy fetch.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| match suite.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
            _ => 3,
        });
    Arc::new(provider)
}

/// The certificates in a PEM file.
///
/// # Errors
/// [`TlsError::File`] when it cannot be read or holds no certificate.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// [`TlsError::File`] when it cannot be read or holds no key.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        path: path.to_owned(),
        reason: format!("no private key: {e}"),
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::File {
            path: path.to_owned(),
            reason: format!("not a CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// A client's TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates the broker's certificate must chain to (`ssl.ca.location`).
    pub ca: Option<PathBuf>,
    /// The client's certificate chain, for brokers that ask for one
    /// (`ssl.certificate.location`).
    pub certificate: Option<PathBuf>,
    /// The client certificate's private key (`ssl.key.location`).
    pub key: Option<PathBuf>,
    /// Whether the broker's certificate must name the host connected to
    /// (`ssl.endpoint.identification.algorithm=https`, the default).
    pub verify_hostname: bool,
}

impl ClientTls {
    /// A rustls client configuration from these settings.
    ///
    /// # Errors
    /// Files that cannot be read; a certificate without its key.
    pub fn config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let Some(ca) = &self.ca else {
            return Err(TlsError::Verifier(
                "ssl.ca.location is needed to check the broker's certificate".to_owned(),
            ));
        };
        let roots = Arc::new(roots(ca)?);
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = if self.verify_hostname {
            builder.with_root_certificates(roots)
        } else {
            let inner =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
        };
        let config = match (&self.certificate, &self.key) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(certificates(cert)?, private_key(key)?)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Verifier(
                    "ssl.certificate.location and ssl.key.location go together".to_owned(),
                ))
            }
        };
        Ok(Arc::new(config))
    }
}

/// Checks the chain and signatures as usual but accepts any name in the certificate
/// (`ssl.endpoint.identification.algorithm=` empty, as Kafka clients allow).
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Whether a broker asks clients for certificates (`ssl.client.auth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `none`: no client certificate.
    #[default]
    None,
    /// `requested`: checked when given.
    Requested,
    /// `required`: a connection without a valid one is refused.
    Required,
}

impl ClientAuth {
    /// Kafka's spelling: `none`, `requested` or `required`.
    pub fn parse(value: &str) -> Option<ClientAuth> {
        match value {
            "none" => Some(ClientAuth::None),
            "requested" => Some(ClientAuth::Requested),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }
}

/// A broker's TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerTls {
    /// A PEM file with the broker's certificate chain and its private key
    /// (`ssl.keystore.location` with `ssl.keystore.type=PEM`).
    pub keystore: Option<PathBuf>,
    /// CA certificates client certificates must chain to (`ssl.truststore.location`).
    pub truststore: Option<PathBuf>,
    /// Whether clients must show certificates.
    pub client_auth: ClientAuth,
}

impl ServerTls {
    /// A rustls server configuration from these settings.
    ///
    /// # Errors
    /// A missing keystore; files that cannot be read; client authentication without a
    /// truststore.
    pub fn config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let Some(keystore) = &self.keystore else {
            return Err(TlsError::Verifier(
                "an SSL listener needs ssl.keystore.location (a PEM file with the certificate chain and key)"
                    .to_owned(),
            ));
        };
        let chain = certificates(keystore)?;
        let key = private_key(keystore)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match (self.client_auth, &self.truststore) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (auth, Some(truststore)) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(truststore)?),
                    provider(),
                );
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|e| TlsError::Verifier(e.to_string()))?,
                )
            }
            (_, None) => {
                return Err(TlsError::Verifier(
                    "ssl.client.auth needs ssl.truststore.location".to_owned(),
                ))
            }
        };
        let mut config = builder.with_single_cert(chain, key)?;
        // Our order (AES-128-GCM first), whatever the client prefers.
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

/// Encrypted bytes a TLS session may hold before writing them (rustls' default is 64 KiB):
/// a 1 MiB fetch response or produce request then leaves in a few large writes, not
/// sixteen.
pub const SEND_BUFFER_BYTES: usize = 1 << 20;

/// Bytes read from the socket at a time on a TLS connection.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// `stream` read through a buffer of [`READ_BUFFER_BYTES`], for rustls to read from: rustls
/// asks for at most 4 KiB more than it holds, so reading its 16 KiB records straight from
/// the socket costs several system calls each; through the buffer one call brings in
/// several records. Writes go straight to `stream`.
pub fn buffered<S: tokio::io::AsyncRead>(stream: S) -> tokio::io::BufReader<S> {
    tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, stream)
}

/// The principal of a client certificate: its subject's distinguished name as Kafka
/// writes it (`CN=alice,O=acme`), or `ANONYMOUS` without one.
pub fn principal(peer: Option<&[CertificateDer<'_>]>) -> String {
    peer.and_then(|certs| certs.first())
        .and_then(|cert| subject_name(cert.as_ref()))
        .unwrap_or_else(|| "ANONYMOUS".to_owned())
}

/// The subject of a DER certificate as `CN=...,O=...` (printable attributes only).
fn subject_name(der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial, sigalg,
    //   issuer, validity, subject, ... } ... }
    let (_, cert, _) = der_item(der)?;
    let (_, tbs, _) = der_item(cert)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() && fields.len() < 6 {
        let (tag, body, after) = der_item(rest)?;
        fields.push((tag, body));
        rest = after;
    }
    let skip = usize::from(fields.first()?.0 == 0xa0);
    let (_, subject) = fields.get(skip + 4)?;
    let mut parts = Vec::new();
    let mut rdns = *subject;
    while !rdns.is_empty() {
        let (_, set, after) = der_item(rdns)?;
        rdns = after;
        let (_, attribute, _) = der_item(set)?;
        let (_, oid, value) = der_item(attribute)?;
        let (_, text, _) = der_item(value)?;
        let name = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x06] => "C",
            [0x55, 0x04, 0x07] => "L",
            [0x55, 0x04, 0x08] => "ST",
            [0x55, 0x04, 0x0a] => "O",
            [0x55, 0x04, 0x0b] => "OU",
            _ => continue,
        };
        parts.push(format!("{name}={}", String::from_utf8_lossy(text)));
    }
    Some(parts.join(","))
}

/// One DER item: its tag, its contents and what follows it.
fn der_item(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *bytes.first()?;
    let first = *bytes.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in bytes.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let body = bytes.get(header..header.checked_add(len)?)?;
    Some((tag, body, &bytes[header + len..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_principal_is_the_subject_of_the_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "acme");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        assert_eq!(principal(Some(&[der])), "CN=alice,O=acme");
        assert_eq!(principal(None), "ANONYMOUS");
        // Garbage is no principal, and no panic.
        let junk = CertificateDer::from(vec![0x30, 0x85, 1, 2]);
        assert_eq!(principal(Some(&[junk])), "ANONYMOUS");
    }

    #[test]
    fn missing_files_and_settings_are_named() {
        let missing = ClientTls {
            ca: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..ClientTls::default()
        };
        let e = missing.config().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e = ServerTls::default().config().unwrap_err().to_string();
        assert!(e.contains("ssl.keystore.location"), "{e}");
    }
}
