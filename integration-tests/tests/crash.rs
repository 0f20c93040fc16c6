//! Durability the hard way: a `strom broker` process SIGKILLed under load keeps every
//! record it acknowledged, and a damaged segment tail is cut back on restart.
//!
//! Records are written and read by confluent-kafka-python (librdkafka), see
//! `integration-tests/peers/confluent_kafka_peer.py`.

#[path = "interop/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use strom_testkit::{wait_until, BrokerProcess};
use support::{parse_acks, Peer, TestBroker};

const CRASH_TOPIC: &str = "crash";
const MIN_ACKS_BEFORE_KILL: usize = 2000;

/// What the peer's `dump TOPIC` printed: `OFFSET KEY VALUE` lines, then `end HIGH`.
struct Dump {
    values: BTreeMap<i64, String>,
    high_watermark: i64,
}

fn read_log(peer: &Peer, bootstrap: &str, topic: &str) -> Dump {
    let out = peer.run_ok(bootstrap, &["dump", topic]);
    let mut values = BTreeMap::new();
    let mut high_watermark = None;
    for line in out.stdout.lines() {
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("end"), Some(high), None) => high_watermark = high.parse().ok(),
            (Some(offset), Some(_key), Some(value)) => {
                let offset: i64 = offset
                    .parse()
                    .unwrap_or_else(|_| panic!("bad dump line {line:?}"));
                values.insert(offset, value.to_string());
            }
            _ => panic!("bad dump line {line:?}\n{out}"),
        }
    }
    let high_watermark =
        high_watermark.unwrap_or_else(|| panic!("dump printed no end line\n{out}"));
    Dump {
        values,
        high_watermark,
    }
}

/// Asserts the log of `dump` is readable from offset 0 to its high watermark, without gaps.
fn assert_contiguous(dump: &Dump) {
    let offsets: Vec<i64> = dump.values.keys().copied().collect();
    let expected: Vec<i64> = (0..dump.high_watermark).collect();
    if offsets != expected {
        let gap = expected
            .iter()
            .zip(&offsets)
            .find(|(e, o)| e != o)
            .map(|(e, _)| *e);
        panic!(
            "log not readable 0..{}: read {} records, first missing offset {gap:?}",
            dump.high_watermark,
            offsets.len()
        );
    }
}

/// Kills (SIGKILL) and reaps a child process, ignoring one that already exited.
fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn read_acks_file(path: &Path) -> Vec<(u64, i64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // A line without its newline was being written when the producer died: not recorded.
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let mut parts = line.split_whitespace();
            let number = parts.next().and_then(|s| s.parse().ok());
            let offset = parts.next().and_then(|s| s.parse().ok());
            number
                .zip(offset)
                .unwrap_or_else(|| panic!("bad ack line {line:?}"))
        })
        .collect()
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary dir");
    let data_dir = dir.path().join("data");
    let broker_log = dir.path().join("broker.log");
    let acks_path = dir.path().join("acks.txt");

    let mut broker = BrokerProcess::start(&data_dir, &broker_log).expect("start strom broker");
    let producer_out = File::create(dir.path().join("producer.out")).expect("producer stdout file");
    let producer_err = File::create(dir.path().join("producer.err")).expect("producer stderr file");
    let mut producer = peer
        .command(
            &broker.bootstrap(),
            &[
                "produce-until-killed",
                CRASH_TOPIC,
                &acks_path.to_string_lossy(),
            ],
        )
        .stdin(Stdio::null())
        .stdout(producer_out)
        .stderr(producer_err)
        .spawn()
        .expect("start the producer");

    let enough = wait_until(Instant::now() + Duration::from_secs(60), || {
        count_lines(&acks_path) >= MIN_ACKS_BEFORE_KILL
            || matches!(producer.try_wait(), Ok(Some(_)))
    });
    let still_producing = matches!(producer.try_wait(), Ok(None));
    if !enough || !still_producing {
        kill_child(&mut producer);
        let err = std::fs::read_to_string(dir.path().join("producer.err")).unwrap_or_default();
        panic!(
            "producer recorded {} acks (wanted {MIN_ACKS_BEFORE_KILL}) and is {}\n\
             --- producer stderr ---\n{err}\n--- broker log ---\n{}",
            count_lines(&acks_path),
            if still_producing {
                "still running"
            } else {
                "gone"
            },
            broker.log()
        );
    }

    // The broker dies mid-stream; only then does the producer, so every ack it received
    // is in the file.
    broker.kill().expect("SIGKILL the broker");
    kill_child(&mut producer);
    let acks = read_acks_file(&acks_path);
    eprintln!("broker killed after {} acknowledged records", acks.len());

    let broker = BrokerProcess::start(&data_dir, &broker_log).expect("restart strom broker");
    let dump = read_log(&peer, &broker.bootstrap(), CRASH_TOPIC);
    assert_contiguous(&dump);
    for &(number, offset) in &acks {
        match dump.values.get(&offset) {
            Some(value) if *value == number.to_string() => {}
            other => panic!(
                "record {number} was acknowledged at offset {offset}, after the crash that \
                 offset holds {other:?} (high watermark {})\n--- broker log ---\n{}",
                dump.high_watermark,
                broker.log()
            ),
        }
    }
    let last_acked = acks.iter().map(|&(_, o)| o).max().unwrap_or(-1);
    assert!(
        dump.high_watermark > last_acked,
        "high watermark {} <= last ack {last_acked}",
        dump.high_watermark
    );

    // The recovered log takes new records right after its end.
    let out = peer.run_ok(&broker.bootstrap(), &["produce", CRASH_TOPIC, "5"]);
    let offsets: Vec<i64> = parse_acks(&out.stdout).iter().map(|&(_, o)| o).collect();
    let expected: Vec<i64> = (dump.high_watermark..dump.high_watermark + 5).collect();
    assert_eq!(
        offsets, expected,
        "offsets of records produced after recovery\n{out}"
    );
}

/// The last `.log` segment of partition 0 of `topic` under `data_dir`.
fn last_segment(data_dir: &Path, topic: &str) -> PathBuf {
    let partition_dir = data_dir.join(format!("{topic}-0"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&partition_dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", partition_dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    logs.pop()
        .unwrap_or_else(|| panic!("no .log segment in {}", partition_dir.display()))
}

/// `(position, base_offset, size)` of each record batch in a segment file (v2 batches:
/// baseOffset i64, batchLength i32, then batchLength bytes).
fn batches(segment: &[u8]) -> Vec<(usize, i64, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= segment.len() {
        let base_offset = i64::from_be_bytes(segment[pos..pos + 8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(segment[pos + 8..pos + 12].try_into().expect("4 bytes"));
        let size = 12 + usize::try_from(length).expect("non-negative batch length");
        if pos + size > segment.len() {
            break;
        }
        out.push((pos, base_offset, size));
        pos += size;
    }
    out
}

#[test]
fn torn_segment_tail_is_truncated_on_restart() {
    let Some(peer) = Peer::confluent() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary data dir");
    let topic = "torn";

    // Three producer runs: at least three batches, the last one holding records 200..299.
    let broker = TestBroker::start_in(dir.path());
    for first in [0, 100, 200] {
        let out = peer.run_ok(
            &broker.bootstrap(),
            &["produce", topic, "100", &first.to_string()],
        );
        let offsets: Vec<i64> = parse_acks(&out.stdout).iter().map(|&(_, o)| o).collect();
        assert_eq!(offsets, (first..first + 100).collect::<Vec<i64>>(), "{out}");
    }
    broker.shutdown();

    let segment_path = last_segment(dir.path(), topic);
    let segment = std::fs::read(&segment_path).expect("read the segment");
    let all = batches(&segment);
    assert!(
        all.len() >= 3,
        "expected at least 3 batches in {}, found {all:?}",
        segment_path.display()
    );
    let &(last_pos, last_base, last_size) = all.last().expect("a last batch");
    assert_eq!(
        last_pos + last_size,
        segment.len(),
        "segment has trailing bytes after its last batch"
    );

    // Tear the last batch in half and leave garbage after it, as a crash mid-write might.
    let file = File::options()
        .write(true)
        .open(&segment_path)
        .expect("open the segment");
    file.set_len((last_pos + last_size / 2) as u64)
        .expect("truncate the segment");
    let mut file = File::options()
        .append(true)
        .open(&segment_path)
        .expect("open the segment");
    file.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(64))
        .expect("append garbage");
    drop(file);

    let broker = TestBroker::start_in(dir.path());
    let dump = read_log(&peer, &broker.bootstrap(), topic);
    assert_contiguous(&dump);
    assert_eq!(
        dump.high_watermark, last_base,
        "the torn batch (base offset {last_base}) and the garbage after it should be cut off"
    );
    for (offset, value) in &dump.values {
        assert_eq!(
            *value,
            offset.to_string(),
            "offset {offset} before the torn batch changed"
        );
    }

    // Writing goes on from the truncation point, and the result reads back whole.
    let out = peer.run_ok(
        &broker.bootstrap(),
        &["produce", topic, "50", &last_base.to_string()],
    );
    let offsets: Vec<i64> = parse_acks(&out.stdout).iter().map(|&(_, o)| o).collect();
    assert_eq!(
        offsets,
        (last_base..last_base + 50).collect::<Vec<i64>>(),
        "{out}"
    );
    let dump = read_log(&peer, &broker.bootstrap(), topic);
    assert_contiguous(&dump);
    assert_eq!(dump.high_watermark, last_base + 50);
    for (offset, value) in &dump.values {
        assert_eq!(
            *value,
            offset.to_string(),
            "offset {offset} after recovery and new writes"
        );
    }
    broker.shutdown();
}
