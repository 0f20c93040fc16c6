//! Test certificates made on the spot with rcgen: a CA and what it signs, as PEM files in
//! a temporary folder (never checked in).

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A certificate authority and the files of the certificates it issued.
pub struct Certs {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// One issued certificate's files.
pub struct Issued {
    /// The certificate alone (`ssl.certificate.location`).
    pub cert: PathBuf,
    /// Its private key alone (`ssl.key.location`).
    pub key: PathBuf,
    /// Certificate and key in one file (a broker's PEM keystore).
    pub both: PathBuf,
}

impl Certs {
    /// A new CA named `name`.
    ///
    /// # Panics
    /// When the key or certificate cannot be made or written (a test helper).
    pub fn new(name: &str) -> Certs {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("writing ca.pem");
        Certs { dir, ca, ca_key }
    }

    /// The CA certificate's file (`ssl.ca.location`, `ssl.truststore.location`).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A TLS session over an in-memory transport that holds `capacity` bytes, with a
    /// certificate for `localhost` signed by the CA: the client's end and the server's.
    /// A small capacity keeps each writer waiting on its reader.
    ///
    /// # Panics
    /// When the handshake fails.
    pub async fn tls_over_duplex(
        &self,
        capacity: usize,
    ) -> (
        tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
        tokio_rustls::server::TlsStream<tokio::io::DuplexStream>,
    ) {
        let server = strom_protocol::tls::ServerTls {
            keystore: Some(self.issue("localhost", "localhost", &["localhost"]).both),
            ..Default::default()
        }
        .config()
        .expect("server TLS config");
        let client = strom_protocol::tls::ClientTls {
            ca: Some(self.ca()),
            ..Default::default()
        }
        .config()
        .expect("client TLS config");
        let (near, far) = tokio::io::duplex(capacity);
        let accepted = tokio::spawn(tokio_rustls::TlsAcceptor::from(server).accept(far));
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("server name");
        let near = tokio_rustls::TlsConnector::from(client)
            .connect(name, near)
            .await
            .expect("TLS handshake");
        let far = accepted
            .await
            .expect("accepting task")
            .expect("TLS handshake");
        (near, far)
    }

    /// A certificate named `file` for `names` (host names or IP addresses) with common
    /// name `cn`, signed by the CA.
    ///
    /// # Panics
    /// When it cannot be made or written (a test helper).
    pub fn issue(&self, file: &str, cn: &str, names: &[&str]) -> Issued {
        self.issue_with(file, cn, names, |_| {})
    }

    /// Like [`Certs::issue`], but valid only during 2020: expired.
    ///
    /// # Panics
    /// When it cannot be made or written (a test helper).
    pub fn issue_expired(&self, file: &str, cn: &str, names: &[&str]) -> Issued {
        self.issue_with(file, cn, names, |params| {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        })
    }

    fn issue_with(
        &self,
        file: &str,
        cn: &str,
        names: &[&str],
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Issued {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        adjust(&mut params);
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("signing");
        let path = |ext: &str| self.dir.path().join(format!("{file}.{ext}"));
        let issued = Issued {
            cert: path("crt"),
            key: path("key"),
            both: path("pem"),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("writing the certificate");
        std::fs::write(&issued.key, key.serialize_pem()).expect("writing the key");
        std::fs::write(
            &issued.both,
            format!("{}{}", cert.pem(), key.serialize_pem()),
        )
        .expect("writing the keystore");
        issued
    }
}
