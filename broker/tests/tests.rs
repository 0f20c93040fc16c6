//! Broker tests over real sockets, with Strom's own protocol connection as the client.
//! Third-party clients are driven from `integration-tests/`.
#![allow(clippy::unwrap_used, missing_docs)]

mod apis;
mod bad_input;
mod maintenance;
mod produce_fetch;

use strom_broker::{Broker, BrokerConfig};
use strom_protocol::connection::Connection;
use tempfile::TempDir;

/// A broker on a free port in a temporary folder.
pub struct TestBroker {
    pub broker: Broker,
    pub dir: TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new(dir.path());
        configure(&mut config);
        let broker = Broker::start(config).await.unwrap();
        TestBroker { broker, dir }
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.broker.bootstrap(), "broker-tests")
            .await
            .unwrap()
    }
}
