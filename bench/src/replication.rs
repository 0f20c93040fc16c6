//! `strom-bench replication`: what replication costs and how fast a partition fails over,
//! on a cluster of three brokers started in this process (each also a controller).
//!
//! ```text
//!  throughput: Strom producer, N records of --size bytes, linger.ms 5, to
//!              rf1 (one replica, acks=1, no idempotence)  vs  rf3 (three replicas, acks=all)
//!  failover:   one record at a time (acks=all) to a 1-partition rf3 topic; its leader is
//!              shut down; time from then to the first record acknowledged afterwards
//!              (default timeouts, then tuned ones: election 100 ms, session 150 ms)
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use strom_broker::{Broker, BrokerConfig};
use strom_client::admin::{Admin, NewTopic};
use strom_client::config::Acks;
use strom_client::producer::{Producer, Record};
use strom_client::ClientConfig;

/// Options of `strom-bench replication`.
#[derive(Args, Debug, Clone)]
pub struct ReplicationArgs {
    /// Records per throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Partitions of the throughput topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    /// Failover runs per timing set.
    #[arg(long, default_value_t = 3)]
    pub failovers: u32,
}

/// Three in-process brokers; `election_ms` / `session_ms` tune failure detection.
struct Cluster {
    brokers: Vec<Option<Broker>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    async fn start(election_ms: u64, session_ms: u64) -> anyhow::Result<Cluster> {
        let listeners = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut voters = Vec::new();
        for (i, l) in listeners.iter().enumerate() {
            voters.push(format!("{}@{}", i + 1, l.local_addr()?));
        }
        let voters = voters.join(",");
        let mut brokers = Vec::new();
        let mut dirs = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let dir = tempfile::tempdir()?;
            let mut config = BrokerConfig::new(dir.path());
            config.node_id = i as i32 + 1;
            config.set("controller.quorum.voters", &voters)?;
            config.set(
                "controller.quorum.election.timeout.ms",
                &election_ms.to_string(),
            )?;
            config.set("broker.session.timeout.ms", &session_ms.to_string())?;
            brokers.push(Some(
                Broker::start_with_controller_listener(config, listener).await?,
            ));
            dirs.push(dir);
        }
        let cluster = Cluster {
            brokers,
            _dirs: dirs,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster
            .brokers
            .iter()
            .flatten()
            .any(|b| b.live_brokers().len() < 3)
        {
            if Instant::now() > deadline {
                bail!("the brokers did not all register");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(cluster)
    }

    /// Every running broker, for bootstrapping.
    fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .flatten()
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn stop(&mut self, node_id: i32) -> anyhow::Result<()> {
        let index = usize::try_from(node_id - 1)?;
        if let Some(broker) = self.brokers[index].take() {
            broker.shutdown().await?;
        }
        Ok(())
    }

    async fn shutdown(self) -> anyhow::Result<()> {
        for broker in self.brokers.into_iter().flatten() {
            broker.shutdown().await?;
        }
        Ok(())
    }
}

fn producer_config(bootstrap: &str, acks: Acks) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new()
        .bootstrap(bootstrap)
        .linger(Duration::from_millis(5))
        .acks(acks);
    config.set("batch.size", "1000000")?;
    config.set("buffer.memory", "268435456")?;
    if acks != Acks::All {
        config.set("enable.idempotence", "false")?;
    }
    Ok(config)
}

/// Records/s of `records` sends to `topic`.
async fn throughput(
    bootstrap: &str,
    topic: &str,
    acks: Acks,
    args: &ReplicationArgs,
) -> anyhow::Result<f64> {
    let producer = Producer::new(producer_config(bootstrap, acks)?).await?;
    let value = vec![b'x'; args.size];
    let _ = producer
        .send(Record::new(topic).value(value.clone()))
        .await?
        .await?;
    let start = Instant::now();
    let mut pending = Vec::with_capacity(262_144);
    for _ in 0..args.records {
        pending.push(
            producer
                .send(Record::new(topic).value(value.clone()))
                .await?,
        );
        if pending.len() == pending.capacity() {
            for d in pending.drain(..) {
                d.await?;
            }
        }
    }
    for d in pending {
        d.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    producer.close().await;
    Ok(args.records as f64 / elapsed)
}

/// Shuts down the leader of a 1-partition rf3 topic while a producer sends one record at a
/// time; returns the time from the shutdown to the first record acknowledged after it, and
/// to the metadata naming a new leader.
async fn failover(
    cluster: &mut Cluster,
    topic: &str,
) -> anyhow::Result<(Duration, Option<Duration>)> {
    let bootstrap = cluster.bootstrap();
    let admin = Admin::connect(ClientConfig::new().bootstrap(&bootstrap)).await?;
    admin
        .create_topic(NewTopic::new(topic).partitions(1).replication_factor(3))
        .await?;
    let mut config = producer_config(&bootstrap, Acks::All)?;
    config.set("linger.ms", "0")?;
    config.set("retry.backoff.ms", "20")?;
    config.set("metadata.max.age.ms", "1000")?;
    let producer = Producer::new(config).await?;
    for _ in 0..10 {
        producer
            .send(Record::new(topic).partition(0).value("before"))
            .await?
            .await?;
    }
    let leader = admin.describe_topics(&[topic]).await?[0].partitions[0].leader;
    let killed = Instant::now();
    // When the metadata names another leader (what the cluster takes; the rest is the
    // client finding it).
    let watcher = {
        let survivor = cluster
            .brokers
            .iter()
            .flatten()
            .find(|b| b.node_id() != leader)
            .map(Broker::bootstrap)
            .unwrap_or_default();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            let admin = Admin::connect(ClientConfig::new().bootstrap(&survivor))
                .await
                .ok()?;
            loop {
                if let Ok(t) = admin.describe_topics(&[topic.as_str()]).await {
                    let now = t[0].partitions[0].leader;
                    if now >= 0 && now != leader {
                        return Some(killed.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    cluster.stop(leader).await?;
    producer
        .send(Record::new(topic).partition(0).value("after"))
        .await?
        .await
        .context("the record sent after the leader stopped")?;
    let took = killed.elapsed();
    let moved = watcher.await.ok().flatten();
    producer.close().await;
    Ok((took, moved))
}

/// Runs the benchmark and prints its results.
pub async fn run(args: &ReplicationArgs) -> anyhow::Result<()> {
    let cluster = Cluster::start(500, 1000).await?;
    let bootstrap = cluster.bootstrap();
    let admin = Admin::connect(ClientConfig::new().bootstrap(&bootstrap)).await?;
    for (topic, factor) in [("rf1", 1), ("rf3", 3)] {
        admin
            .create_topic(
                NewTopic::new(topic)
                    .partitions(args.partitions)
                    .replication_factor(factor),
            )
            .await?;
    }
    let rf1 = throughput(&bootstrap, "rf1", Acks::Leader, args).await?;
    let rf3 = throughput(&bootstrap, "rf3", Acks::All, args).await?;
    println!(
        "throughput, {} records of {} B over {} partitions: rf1 acks=1 {:.0} rec/s, rf3 acks=all {:.0} rec/s, ratio {:.2}",
        args.records,
        args.size,
        args.partitions,
        rf1,
        rf3,
        rf3 / rf1
    );
    cluster.shutdown().await?;
    for (name, election, session) in [("default", 500, 1000), ("tuned", 100, 150)] {
        let mut times = Vec::new();
        for run in 0..args.failovers {
            let mut cluster = Cluster::start(election, session).await?;
            times.push(failover(&mut cluster, &format!("failover-{run}")).await?);
            cluster.shutdown().await?;
        }
        let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
        let acked: Vec<String> = times.iter().map(|(t, _)| ms(*t)).collect();
        let moved: Vec<String> = times
            .iter()
            .map(|(_, m)| m.map_or_else(|| "?".to_owned(), ms))
            .collect();
        println!(
            "failover ({name}: election {election} ms, session {session} ms): acknowledged after {} ms; new leader in the metadata after {} ms",
            acked.join(", "),
            moved.join(", ")
        );
    }
    Ok(())
}
