//! `strom produce TOPIC`: one record per line of standard input, through the producer.
//!
//! As `kcat -P`: with `--key-separator SEP` each line is split at its first `SEP` into key
//! and value, and a line without `SEP` is a value with a null key. Headers given with
//! `--header` go on every record. The summary (records sent, offsets per partition) and
//! any failed record go to stderr; the exit code is non-zero when a record failed.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use strom_client::producer::{DeliveryFuture, Producer, Record, RecordMetadata};
use strom_client::{ClientConfig, ClientError};
use tokio::sync::mpsc;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Broker(s) to bootstrap from, comma-separated HOST:PORT.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `ssl.ca.location`, ...), as Kafka's tools take it.
    #[arg(long, value_name = "FILE")]
    command_config: Option<std::path::PathBuf>,
    /// Split each line at the first SEP into key and value; lines without SEP get a null
    /// key.
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// A header put on every record, e.g. `--header source=cli`; repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Compression codec of produced batches.
    #[arg(long, short = 'z', value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: Option<String>,
    /// Acknowledgements to wait for: all in-sync replicas, the leader only, or none.
    #[arg(long, value_parser = ["all", "-1", "1", "0"])]
    acks: Option<String>,
    /// Write every record to this partition instead of letting the partitioner choose.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Any producer configuration key, e.g. `--property linger.ms=20`; repeatable.
    #[arg(long = "property", short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

/// A `KEY=VALUE` argument, split at the first `=`.
pub fn pair(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("{s:?}: expected KEY=VALUE"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

/// A client configuration: `--bootstrap`, the settings of `--command-config FILE` (a
/// properties file), then each `--property KEY=VALUE`.
pub fn client_config(
    bootstrap: &str,
    command_config: Option<&std::path::Path>,
    properties: &[String],
) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new().bootstrap(bootstrap);
    if let Some(path) = command_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--command-config {}", path.display()))?;
        let settings = strom_connect_runtime::parse_properties(&text)
            .with_context(|| format!("--command-config {}", path.display()))?;
        for (k, v) in &settings {
            config
                .set(k, v)
                .with_context(|| format!("--command-config {}: {k}", path.display()))?;
        }
    }
    for p in properties {
        let (k, v) = pair(p)?;
        config
            .set(&k, &v)
            .with_context(|| format!("--property {p}"))?;
    }
    Ok(config)
}

/// An admin client for `--bootstrap` and `--command-config FILE`.
pub async fn admin(
    bootstrap: &str,
    command_config: Option<&std::path::Path>,
) -> anyhow::Result<strom_client::admin::Admin> {
    let config = client_config(bootstrap, command_config, &[])?;
    Ok(strom_client::admin::Admin::connect(config).await?)
}

/// One line of input, as read: its number (from 1) and bytes without the line end.
type Line = (u64, Vec<u8>);

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let mut config = client_config(
        &args.bootstrap,
        args.command_config.as_deref(),
        &args.properties,
    )?;
    if let Some(c) = &args.compression {
        config.set("compression.type", c).context("--compression")?;
    }
    if let Some(a) = &args.acks {
        config.set("acks", a).context("--acks")?;
    }
    let headers = args
        .headers
        .iter()
        .map(|h| pair(h).with_context(|| format!("--header {h}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if matches!(&args.key_separator, Some(s) if s.is_empty()) {
        bail!("--key-separator must not be empty");
    }
    let producer = Producer::new(config)
        .await
        .with_context(|| format!("starting a producer for {}", args.bootstrap))?;

    let mut lines = read_stdin();
    // Outcomes are awaited by a task of their own so that reading and sending go on.
    let (pending_tx, pending_rx) = mpsc::unbounded_channel::<(u64, DeliveryFuture)>();
    let outcomes = tokio::spawn(collect(pending_rx));
    let mut summary_errors = 0u64;
    let mut read_error = None;
    while let Some(line) = lines.recv().await {
        let (number, bytes) = match line {
            Ok(line) => line,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        let record = make_record(&args, &headers, bytes);
        match producer.send(record).await {
            Ok(delivery) => {
                if pending_tx.send((number, delivery)).is_err() {
                    bail!("the delivery task stopped");
                }
            }
            Err(e) => {
                summary_errors += 1;
                eprintln!("line {number}: not sent: {e}");
                if matches!(e, ClientError::Closed) {
                    break;
                }
            }
        }
    }
    drop(pending_tx);
    producer.flush().await;
    producer.close().await;
    let mut summary = outcomes.await.context("the delivery task failed")?;
    summary.failed += summary_errors;
    summary.print(&args.topic);
    if let Some(e) = read_error {
        return Err(e).context("reading standard input");
    }
    if summary.failed > 0 {
        bail!("{} record(s) failed", summary.failed);
    }
    Ok(())
}

/// The record for one line.
fn make_record(args: &ProduceArgs, headers: &[(String, String)], line: Vec<u8>) -> Record {
    let mut record = Record::new(args.topic.clone());
    match args
        .key_separator
        .as_deref()
        .and_then(|sep| split(&line, sep))
    {
        Some((key, value)) => {
            record = record
                .key(Bytes::copy_from_slice(key))
                .value(Bytes::copy_from_slice(value));
        }
        None => record = record.value(line),
    }
    for (k, v) in headers {
        record = record.header(k.clone(), v.clone());
    }
    if let Some(p) = args.partition {
        record = record.partition(p);
    }
    record
}

/// Splits `line` at the first `sep`.
fn split<'a>(line: &'a [u8], sep: &str) -> Option<(&'a [u8], &'a [u8])> {
    let sep = sep.as_bytes();
    let at = line.windows(sep.len()).position(|w| w == sep)?;
    Some((&line[..at], &line[at + sep.len()..]))
}

/// Lines of standard input, read by a thread of their own (blocking reads), without their
/// `\n` or `\r\n`. The channel is bounded: reading waits for sending.
fn read_stdin() -> mpsc::Receiver<std::io::Result<Line>> {
    let (tx, rx) = mpsc::channel(1024);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut number = 0u64;
        loop {
            let mut buf = Vec::new();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    number += 1;
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                        if buf.last() == Some(&b'\r') {
                            buf.pop();
                        }
                    }
                    if tx.blocking_send(Ok((number, buf))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// What was delivered, per partition, and what failed.
#[derive(Default)]
struct Summary {
    sent: u64,
    failed: u64,
    /// Per partition: records, first and last offset (-1 with `acks=0`).
    partitions: BTreeMap<i32, (u64, i64, i64)>,
}

impl Summary {
    fn delivered(&mut self, m: &RecordMetadata) {
        self.sent += 1;
        let entry = self
            .partitions
            .entry(m.partition)
            .or_insert((0, m.offset, m.offset));
        entry.0 += 1;
        if m.offset >= 0 {
            if entry.1 < 0 || m.offset < entry.1 {
                entry.1 = m.offset;
            }
            entry.2 = entry.2.max(m.offset);
        }
    }

    fn print(&self, topic: &str) {
        eprintln!(
            "produced {} record(s) to {topic}{}",
            self.sent,
            if self.failed > 0 {
                format!(", {} failed", self.failed)
            } else {
                String::new()
            }
        );
        for (p, (count, first, last)) in &self.partitions {
            if *first < 0 {
                eprintln!("  partition {p}: {count} record(s) (acks=0: offsets unknown)");
            } else {
                eprintln!("  partition {p}: {count} record(s), offsets {first}..={last}");
            }
        }
    }
}

/// Awaits each delivery in turn and reports failures as they come.
async fn collect(mut pending: mpsc::UnboundedReceiver<(u64, DeliveryFuture)>) -> Summary {
    let mut summary = Summary::default();
    while let Some((number, delivery)) = pending.recv().await {
        match delivery.await {
            Ok(m) => summary.delivered(&m),
            Err(e) => {
                summary.failed += 1;
                eprintln!("line {number}: delivery failed: {e}");
            }
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_at_first_separator() {
        assert_eq!(split(b"k:v:w", ":"), Some((&b"k"[..], &b"v:w"[..])));
        assert_eq!(split(b"k::v", "::"), Some((&b"k"[..], &b"v"[..])));
        assert_eq!(split(b"no key", ":"), None);
        assert_eq!(split(b":v", ":"), Some((&b""[..], &b"v"[..])));
    }
}
