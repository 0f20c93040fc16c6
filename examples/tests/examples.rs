//! The examples run as a user runs them, and print what they promise.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod failover;

use std::process::Command;

#[test]
fn word_count_counts_the_words_of_its_sentences() {
    let output = Command::new(env!("CARGO_BIN_EXE_word-count"))
        .output()
        .expect("run the word-count example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("\"kafka\": 3"), "{stdout}");
    assert!(last.contains("\"streams\": 3"), "{stdout}");
    assert!(
        stdout.contains("Sub-topology: 0"),
        "the topology is described: {stdout}"
    );
}
