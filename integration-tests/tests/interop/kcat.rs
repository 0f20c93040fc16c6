//! kcat (librdkafka 2.0.2 from apt) against the broker: produce with each codec, keys and
//! headers, consume from the beginning, and metadata.

use std::path::{Path, PathBuf};

use strom_testkit::{find_in_path, require_peer, run_command, CommandOutput};

use crate::support::{check_stored_codec, peer_command, TestBroker, PEER_TIMEOUT};

const RECORDS: usize = 200;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

pub(crate) fn kcat() -> Option<PathBuf> {
    require_peer(
        "kcat",
        find_in_path("kcat").unwrap_or_else(|| PathBuf::from("/usr/bin/kcat")),
    )
}

fn run(kcat: &Path, args: &[&str]) -> CommandOutput {
    run_command(peer_command(kcat).args(args), PEER_TIMEOUT).expect("run kcat")
}

fn key(i: usize) -> String {
    format!("key-{i:05}")
}

fn value(i: usize) -> String {
    format!("value {i:05} {}", "kcat compresses this ".repeat(i % 30))
}

/// Produces RECORDS keyed records with headers in `codec` to partition 0 of a fresh topic,
/// then reads them back and compares keys, values, headers and order.
fn roundtrip(kcat: &Path, bootstrap: &str, codec: &str, dir: &Path) -> Result<(), String> {
    let topic = format!("kcat-{codec}");
    let input: String = (0..RECORDS)
        .map(|i| format!("{}:{}\n", key(i), value(i)))
        .collect();
    let input_path = dir.join(format!("{topic}.txt"));
    std::fs::write(&input_path, input).map_err(|e| e.to_string())?;
    let input_path = input_path.to_string_lossy().into_owned();
    let codec_header = format!("codec={codec}");
    let produced = run(
        kcat,
        &[
            "-b",
            bootstrap,
            "-P",
            "-t",
            &topic,
            "-p",
            "0",
            "-z",
            codec,
            "-K:",
            "-H",
            &codec_header,
            "-H",
            "run=strom",
            "-X",
            "acks=all",
            "-l",
            &input_path,
        ],
    );
    if !produced.success() {
        return Err(format!("kcat -P with {codec} failed:\n{produced}"));
    }
    let count = RECORDS.to_string();
    let consumed = run(
        kcat,
        &[
            "-b",
            bootstrap,
            "-C",
            "-t",
            &topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-c",
            &count,
            "-e",
            "-q",
            "-f",
            "%k %s %h\n",
        ],
    );
    if !consumed.success() {
        return Err(format!("kcat -C of {codec} records failed:\n{consumed}"));
    }
    let expected: Vec<String> = (0..RECORDS)
        .map(|i| format!("{} {} {codec_header},run=strom", key(i), value(i)))
        .collect();
    let got: Vec<&str> = consumed.stdout.lines().collect();
    if got.len() != RECORDS {
        return Err(format!(
            "{codec}: read {} records, expected {RECORDS}:\n{consumed}",
            got.len()
        ));
    }
    if let Some(i) = (0..RECORDS).find(|&i| got[i] != expected[i]) {
        return Err(format!(
            "{codec}: record {i} read back as\n  {:?}\nexpected\n  {:?}",
            got[i], expected[i]
        ));
    }
    Ok(())
}

#[test]
fn kcat_roundtrip_every_codec() {
    let Some(kcat) = kcat() else { return };
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().expect("temporary dir");
    let failures: Vec<String> = CODECS
        .iter()
        .filter_map(|codec| {
            roundtrip(&kcat, &broker.bootstrap(), codec, dir.path())
                .and_then(|()| {
                    check_stored_codec(broker.data_dir(), &format!("kcat-{codec}-"), codec)
                })
                .err()
        })
        .collect();
    broker.shutdown();
    assert!(
        failures.is_empty(),
        "kcat roundtrips failed:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn kcat_metadata() {
    let Some(kcat) = kcat() else { return };
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().expect("temporary dir");
    let input = dir.path().join("one.txt");
    std::fs::write(&input, "k:v\n").expect("write kcat input");
    let produced = run(
        &kcat,
        &[
            "-b",
            &bootstrap,
            "-P",
            "-t",
            "meta",
            "-K:",
            "-l",
            &input.to_string_lossy(),
        ],
    );
    assert!(produced.success(), "{produced}");

    let listed = run(&kcat, &["-b", &bootstrap, "-L"]);
    assert!(listed.success(), "{listed}");
    for want in [
        format!(" at {bootstrap}"),
        " 1 brokers:".to_string(),
        "topic \"meta\" with 1 partitions:".to_string(),
        "partition 0, leader ".to_string(),
    ] {
        assert!(
            listed.stdout.contains(&want),
            "kcat -L lacks {want:?}:\n{listed}"
        );
    }
    let one = run(&kcat, &["-b", &bootstrap, "-L", "-t", "meta"]);
    assert!(
        one.success() && one.stdout.contains("topic \"meta\" with 1 partitions:"),
        "{one}"
    );
    broker.shutdown();
}
