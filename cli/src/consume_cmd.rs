//! `strom consume TOPIC`: print a topic's records, through the consumer.
//!
//! Every partition of the topic is assigned (or just `--partition P`), or, with
//! `--group G`, the group's coordinator shares them among G's members. Records start at the
//! end unless `--from-beginning`, `--offset N` or `--from-time` says otherwise (in a group:
//! at the group's committed offsets, and only a new group's partitions start by
//! `--from-beginning`), and are printed with a kcat-style `--format`. `--max-messages N`
//! stops after N records, `--exit-at-end` once every partition read reached the end it had
//! when the command started; Ctrl-C stops cleanly.
//!
//! In a group, the offsets of the printed records are committed after each printed batch
//! and before exiting, then the member leaves the group: the next run continues after the
//! last record printed. (`-X enable.auto.commit=true` also commits positions, which may
//! be past records fetched but not printed.)

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use strom_client::admin::{Admin, OffsetSpec};
use strom_client::consumer::{ConsumerRecord, ListenerFuture, RebalanceListener};
use strom_client::{Cluster, Consumer};

use crate::produce_cmd::client_config;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Broker(s) to bootstrap from, comma-separated HOST:PORT.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `ssl.ca.location`, ...), as Kafka's tools take it.
    #[arg(long, value_name = "FILE")]
    command_config: Option<std::path::PathBuf>,
    /// Read as a member of this consumer group, from its committed offsets, committing
    /// what was printed.
    #[arg(long, short = 'g', conflicts_with_all = ["partition", "offset", "from_time"])]
    group: Option<String>,
    /// Read only this partition (default: all of the topic's partitions).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Start at the first record still in each partition (in a group: in partitions
    /// without a committed offset).
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    from_beginning: bool,
    /// Start at this offset in each partition read; negative counts back from the end.
    #[arg(
        long,
        short = 'o',
        allow_negative_numbers = true,
        conflicts_with = "from_time"
    )]
    offset: Option<i64>,
    /// Start at the first record at or after this time, RFC 3339
    /// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.250+02:00`).
    #[arg(long, value_name = "RFC3339")]
    from_time: Option<String>,
    /// Exit after printing this many records.
    #[arg(long, short = 'c', value_name = "N")]
    max_messages: Option<u64>,
    /// Exit once every partition read reached the end it had when the command started.
    #[arg(long, short = 'e')]
    exit_at_end: bool,
    /// Output format: %k key, %s value, %p partition, %o offset, %T timestamp (ms),
    /// %h headers (k=v,k2=v2), %t topic, %K key length, %S value length, %% a percent
    /// sign; \n, \t, \r and \\ escapes.
    #[arg(long, short = 'f', default_value = "%s\\n")]
    format: String,
    /// Any consumer configuration key, e.g. `--property fetch.max.wait.ms=100`; repeatable.
    #[arg(long = "property", short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,
}

/// How long one poll waits before the loop looks at its exit conditions again.
const POLL: Duration = Duration::from_millis(200);

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let format = Format::parse(&args.format).context("--format")?;
    let start_time = match &args.from_time {
        Some(t) => Some(parse_rfc3339(t).with_context(|| format!("--from-time {t}"))?),
        None => None,
    };
    let mut properties = Vec::new();
    if args.group.is_some() {
        // Offsets are committed as records are printed; -X may still turn this on.
        properties.push("enable.auto.commit=false".to_owned());
    }
    properties.extend(args.properties.iter().cloned());
    let mut config = client_config(&args.bootstrap, args.command_config.as_deref(), &properties)?;
    if let Some(group) = &args.group {
        config.set("group.id", group).context("--group")?;
        if args.from_beginning {
            config
                .set("auto.offset.reset", "earliest")
                .context("--from-beginning")?;
        }
    }
    let cluster = Cluster::connect(config)
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    let admin = Admin::new(cluster.clone());
    let topic = &args.topic;
    let partitions = topic_partitions(&admin, topic).await?;
    let ends = if args.exit_at_end || matches!(args.offset, Some(n) if n < 0) {
        admin
            .list_offsets(topic, OffsetSpec::Latest)
            .await
            .with_context(|| format!("listing the end offsets of {topic}"))?
            .into_iter()
            .map(|(p, o)| (p, o.offset))
            .collect()
    } else {
        BTreeMap::new()
    };

    let consumer = Consumer::with_cluster(cluster);
    match &args.group {
        Some(group) => {
            let listener = Arc::new(ReportAssigned {
                topic: topic.clone(),
                group: group.clone(),
            });
            consumer.subscribe_with_listener(&[topic.as_str()], listener)?;
        }
        None => start_assigned(&consumer, &args, &partitions, &ends, start_time).await?,
    }

    let mut out = std::io::BufWriter::new(std::io::stdout());
    let result = read(&consumer, &args, &format, &ends, &mut out).await;
    let flushed = out.flush().map_err(anyhow::Error::from);
    let closed = if args.group.is_some() {
        // Leave the group now, so its partitions move to other members at once.
        consumer.shutdown().await.context("leaving the group")
    } else {
        consumer.close();
        Ok(())
    };
    match result.and(flushed).and(closed) {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// The partitions of `topic`, which must exist.
async fn topic_partitions(admin: &Admin, topic: &str) -> anyhow::Result<Vec<i32>> {
    let described = admin
        .describe_topics(&[topic])
        .await
        .with_context(|| format!("describing {topic}"))?;
    let Some(description) = described.into_iter().find(|d| d.name == topic) else {
        bail!("topic {topic} not found");
    };
    if !description.error.is_ok() {
        bail!("topic {topic}: {}", description.error);
    }
    Ok(description.partitions.iter().map(|p| p.partition).collect())
}

/// Assigns the partitions read (`--partition` or all), moves them to where the options
/// say, and reports the start positions.
async fn start_assigned(
    consumer: &Consumer,
    args: &ConsumeArgs,
    all: &[i32],
    ends: &BTreeMap<i32, i64>,
    start_time: Option<i64>,
) -> anyhow::Result<()> {
    let topic = &args.topic;
    let partitions = match args.partition {
        Some(p) if all.contains(&p) => vec![p],
        Some(p) => bail!("topic {topic} has no partition {p} (it has {})", all.len()),
        None => all.to_vec(),
    };
    let assignment: Vec<(String, i32)> = partitions.iter().map(|&p| (topic.clone(), p)).collect();
    consumer.assign(&assignment)?;
    if args.from_beginning {
        consumer.seek_to_beginning(&[])?;
    } else if let Some(offset) = args.offset {
        for &p in &partitions {
            let at = if offset < 0 {
                ends.get(&p).map_or(0, |end| (end + offset).max(0))
            } else {
                offset
            };
            consumer.seek(topic, p, at)?;
        }
    } else if let Some(ms) = start_time {
        consumer
            .seek_to_timestamp(&[], ms)
            .await
            .with_context(|| format!("looking up offsets for time {ms} ms"))?;
    } else {
        consumer.seek_to_end(&[])?;
    }
    // Resolve every start position now and say where reading starts (on stderr, so scripts
    // can wait for it before producing).
    let mut starts = Vec::with_capacity(partitions.len());
    for &p in &partitions {
        starts.push(format!("{p}@{}", consumer.position(topic, p).await?));
    }
    eprintln!("consuming {topic} from {}", starts.join(" "));
    Ok(())
}

/// Polls and prints until `--max-messages`, `--exit-at-end` or Ctrl-C says to stop; in a
/// group, commits the offsets after the printed records once they are written out.
async fn read(
    consumer: &Consumer,
    args: &ConsumeArgs,
    format: &Format,
    ends: &BTreeMap<i32, i64>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let topic = &args.topic;
    let mut printed = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if args.max_messages.is_some_and(|max| printed >= max) {
            return Ok(());
        }
        if args.exit_at_end && reached_ends(consumer, ends).await? {
            return Ok(());
        }
        let records = tokio::select! {
            records = consumer.poll(POLL) => records?,
            // A failed signal handler disables this branch.
            Ok(()) = &mut ctrl_c => return Ok(()),
        };
        // The offset after the last record printed, per partition.
        let mut next = BTreeMap::new();
        for record in &records {
            if args.max_messages.is_some_and(|max| printed >= max) {
                break;
            }
            format.write(out, record)?;
            printed += 1;
            next.insert(record.partition, record.offset + 1);
        }
        out.flush()?;
        if args.group.is_some() && !next.is_empty() {
            let offsets: Vec<(String, i32, i64)> = next
                .into_iter()
                .map(|(p, o)| (topic.clone(), p, o))
                .collect();
            // Not fatal: the records are printed, and are read again after a rebalance.
            if let Err(e) = consumer.commit_offsets(&offsets).await {
                eprintln!("strom: committing offsets failed: {e}");
            }
        }
    }
}

/// Whether every assigned partition reached the end it had at the start (none are
/// assigned before a group member's first poll).
async fn reached_ends(consumer: &Consumer, ends: &BTreeMap<i32, i64>) -> anyhow::Result<bool> {
    let assignment = consumer.assignment();
    if assignment.is_empty() {
        return Ok(false);
    }
    for (topic, p) in &assignment {
        let end = ends.get(p).copied().unwrap_or(0);
        if consumer.position(topic, *p).await? < end {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Says where reading starts whenever the group assigns partitions (on stderr, as the
/// start positions are reported without a group).
struct ReportAssigned {
    topic: String,
    group: String,
}

impl RebalanceListener for ReportAssigned {
    fn on_partitions_assigned<'a>(
        &'a self,
        consumer: &'a Consumer,
        partitions: &'a [(String, i32)],
    ) -> ListenerFuture<'a> {
        Box::pin(async move {
            let mut starts = Vec::with_capacity(partitions.len());
            for (topic, p) in partitions {
                match consumer.position(topic, *p).await {
                    Ok(offset) => starts.push(format!("{p}@{offset}")),
                    Err(_) => starts.push(format!("{p}@?")),
                }
            }
            let (topic, group) = (&self.topic, &self.group);
            if !starts.is_empty() {
                eprintln!(
                    "consuming {topic} in group {group} from {}",
                    starts.join(" ")
                );
            } else if consumer.assignment().is_empty() {
                eprintln!("consuming {topic} in group {group}: other members hold every partition");
            }
        })
    }
}

/// A closed stdout (`strom consume ... | head`) is a normal way to stop.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// One piece of a parsed `--format`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Key,
    Value,
    KeyLength,
    ValueLength,
    Partition,
    Offset,
    Timestamp,
    Headers,
    Topic,
}

/// A parsed `--format`.
#[derive(Debug, PartialEq, Eq)]
struct Format(Vec<Piece>);

impl Format {
    fn parse(spec: &str) -> anyhow::Result<Format> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = spec.chars();
        while let Some(c) = chars.next() {
            let field = match c {
                '%' => match chars.next() {
                    Some('k') => Piece::Key,
                    Some('s') => Piece::Value,
                    Some('K') => Piece::KeyLength,
                    Some('S') => Piece::ValueLength,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Headers,
                    Some('t') => Piece::Topic,
                    Some('%') => {
                        text.push(b'%');
                        continue;
                    }
                    Some(other) => {
                        bail!("unknown placeholder %{other} (known: %k %s %K %S %p %o %T %h %t %%)")
                    }
                    None => bail!("a lone % at the end (write %% for a percent sign)"),
                },
                '\\' => {
                    match chars.next() {
                        Some('n') => text.push(b'\n'),
                        Some('t') => text.push(b'\t'),
                        Some('r') => text.push(b'\r'),
                        Some('\\') => text.push(b'\\'),
                        Some(other) => {
                            text.push(b'\\');
                            let mut buf = [0; 4];
                            text.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                        }
                        None => text.push(b'\\'),
                    }
                    continue;
                }
                other => {
                    let mut buf = [0; 4];
                    text.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(field);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Format(pieces))
    }

    fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> std::io::Result<()> {
        let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(-1, |b| b.len() as i64);
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.write_all(t)?,
                Piece::Key => out.write_all(r.key.as_deref().unwrap_or_default())?,
                Piece::Value => out.write_all(r.value.as_deref().unwrap_or_default())?,
                Piece::KeyLength => write!(out, "{}", len(&r.key))?,
                Piece::ValueLength => write!(out, "{}", len(&r.value))?,
                Piece::Partition => write!(out, "{}", r.partition)?,
                Piece::Offset => write!(out, "{}", r.offset)?,
                Piece::Timestamp => write!(out, "{}", r.timestamp)?,
                Piece::Topic => out.write_all(r.topic.as_bytes())?,
                Piece::Headers => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(k.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(v.as_deref().unwrap_or_default())?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Parses an RFC 3339 time, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, into milliseconds
/// since the Unix epoch (the fraction is cut to milliseconds). A space or lowercase `t`
/// may separate date and time, and `z` stands for `Z`, as RFC 3339 allows.
pub(crate) fn parse_rfc3339(s: &str) -> anyhow::Result<i64> {
    let b = s.as_bytes();
    let expected = "expected YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)";
    if b.len() < 20 {
        bail!("too short: {expected}");
    }
    let num = |range: std::ops::Range<usize>| -> anyhow::Result<i64> {
        let digits = &b[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            bail!("{expected}");
        }
        Ok(digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b[i] != c) || !matches!(b[10], b'T' | b't' | b' ') {
        bail!("{expected}");
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        bail!("no such date: {year:04}-{month:02}-{day:02}");
    }
    // Second 60 is a leap second; it counts as the next one, as most libraries do.
    if hour > 23 || minute > 59 || second > 60 {
        bail!("no such time: {hour:02}:{minute:02}:{second:02}");
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            bail!("no digits after the decimal point: {expected}");
        }
        let digits = &b[start..i.min(start + 3)];
        millis = digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
            * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_minutes = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                bail!("bad offset: {expected}");
            }
            let minutes = h * 60 + m;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        [] => bail!("missing time zone (Z or ±HH:MM): {expected}"),
        _ => bail!("bad time zone: {expected}"),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc3339_to_epoch_millis() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2024-02-29T12:34:56.789Z").unwrap(),
            1_709_210_096_789
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T14:34:56.7+02:00").unwrap(),
            1_709_210_096_700
        );
        assert_eq!(
            parse_rfc3339("2024-02-29t07:04:56.123456-05:30").unwrap(),
            1_709_210_096_123
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z").unwrap(), -1000);
        assert_eq!(
            parse_rfc3339("2000-03-01 00:00:00z").unwrap(),
            951_868_800_000
        );
        for bad in [
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0200",
            "2024-01-01",
            "2024/01/01T00:00:00Z",
            "2024-01-01T00:00:00Zjunk",
            "２０24-01-01T00:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_placeholders_and_escapes() {
        let f = Format::parse("%k|%s|%p|%o|%T|%h|%t|%K|%S|%%\\t\\n").unwrap();
        let record = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1234,
            key: None,
            value: Some("v".into()),
            headers: vec![("a".into(), Some("1".into())), ("b".into(), None)],
            leader_epoch: None,
        };
        let mut out = Vec::new();
        f.write(&mut out, &record).unwrap();
        assert_eq!(out, b"|v|2|7|1234|a=1,b=|t|-1|1|%\t\n");
        assert!(Format::parse("%x").is_err());
        assert!(Format::parse("50%").is_err());
        assert_eq!(
            Format::parse("é\\q").unwrap(),
            Format(vec![Piece::Text("é\\q".as_bytes().to_vec())])
        );
    }
}
