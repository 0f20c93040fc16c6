//! The examples run as a user runs them, on an embedded broker, and print what they
//! promise: word count, windowed page views and sessions, clicks joined with users; and
//! two word-count instances, one killed or stopped mid-stream.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod failover;

use std::process::Command;

#[test]
fn word_count_counts_the_words_of_its_sentences() {
    let stdout = run(env!("CARGO_BIN_EXE_word-count"));
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.contains("\"kafka\": 3"), "{stdout}");
    assert!(last.contains("\"streams\": 3"), "{stdout}");
    assert!(
        stdout.contains("Sub-topology: 0"),
        "the topology is described: {stdout}"
    );
}

/// Runs example `bin` on an embedded broker; its standard output.
fn run(bin: &str) -> String {
    let output = Command::new(bin).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn page_views_counts_each_minute_once_with_late_views_inside_grace_and_finds_sessions() {
    let stdout = run(env!("CARGO_BIN_EXE_page-views"));
    let windows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("window")).collect();
    assert_eq!(
        windows,
        [
            "window /cart [0s, 60s): 1 views",
            // ann at 1 s, bob at 20 s, and cat's late view at 50 s (within the grace);
            // cat's view at 40 s came after the minute closed.
            "window /home [0s, 60s): 3 views",
            "window /cart [60s, 120s): 2 views",
            "window /home [60s, 120s): 1 views",
        ],
        "{stdout}"
    );
    let sessions: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("session"))
        .collect();
    assert!(
        sessions.contains(&"session ann [1s, 1s]: null"),
        "ann's first session merged into the next: {stdout}"
    );
    assert!(
        sessions.contains(&"session ann [1s, 30s]: 2 views"),
        "{stdout}"
    );
    assert!(
        sessions.contains(&"session bob [65s, 65s]: 1 views"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("session cat"),
        "cat's views were late: {stdout}"
    );
}

#[test]
fn clicks_by_region_joins_clicks_with_users_and_counts_per_region() {
    let stdout = run(env!("CARGO_BIN_EXE_clicks-by-region"));
    let clicks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("click ")).collect();
    assert_eq!(
        clicks,
        [
            "click  ann: europe /home",
            "click  bob: asia /home",
            "click  ann: europe /cart",
            "click  ann: europe /pay",
        ],
        "{stdout}"
    );
    let last = stdout
        .lines()
        .rfind(|l| l.starts_with("region"))
        .unwrap_or_default();
    assert_eq!(last, "region  europe: 3 clicks", "{stdout}");
    assert!(stdout.contains("region    asia: 1 clicks"), "{stdout}");
}
