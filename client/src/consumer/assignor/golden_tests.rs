//! Golden assignments: the files in `testdata/` are the spec.
//!
//! Format (one directive per line; `#` starts a comment line; blank lines are ignored):
//!
//! ```text
//! run <assignor> <title...>      starts a case; <assignor> is a name `assignor_for`
//!                                knows, or `eager-sticky` for the sticky assignment
//!                                before the cooperative hold-back
//! topics <topic>=<count> ...     partitions_per_topic
//! member <id> [instance=<group.instance.id>] [topics=<t>,<t>] [owned=<t>-<p>,<t>-<p>]
//!        [generation=<n>]        one member's subscription (generation defaults to -1)
//! expect <id> <t>-<p> ...        the partitions <id> must get, sorted; every member of
//!                                the case needs exactly one expect line
//! ```
//!
//! A topic-partition is written `<topic>-<partition>`, split at the last `-`. Each case
//! also runs with its members in reverse order, which must not change the result. On a
//! mismatch the test prints the actual `expect` lines, ready to paste after review.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{assignor_for, sticky, Assignment, MemberSubscription, Subscription};

#[derive(Debug, Default)]
struct Case {
    line: usize,
    assignor: String,
    title: String,
    topics: BTreeMap<String, i32>,
    members: Vec<MemberSubscription>,
    expected: Assignment,
}

#[test]
fn golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/consumer/assignor/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {}", dir.display());
    let mut failures = String::new();
    let mut cases = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for case in parse(&text) {
            cases += 1;
            if let Some(failure) = check(&case) {
                let name = file.file_name().unwrap().to_string_lossy();
                writeln!(failures, "{name}:{}: {}\n{failure}", case.line, case.title).unwrap();
            }
        }
    }
    assert!(cases >= 10, "only {cases} golden cases");
    assert!(failures.is_empty(), "golden mismatches:\n{failures}");
}

fn run(
    assignor: &str,
    topics: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> Assignment {
    if assignor == "eager-sticky" {
        return sticky::eager_assign(topics, members);
    }
    let assignor = assignor_for(assignor).unwrap_or_else(|| panic!("unknown assignor {assignor}"));
    assignor.assign(topics, members)
}

/// The mismatch report, if the case fails.
fn check(case: &Case) -> Option<String> {
    let actual = run(&case.assignor, &case.topics, &case.members);
    let mut reversed = case.members.clone();
    reversed.reverse();
    let actual_reversed = run(&case.assignor, &case.topics, &reversed);
    if actual == case.expected && actual_reversed == actual {
        return None;
    }
    let mut report = String::new();
    if actual_reversed != actual {
        writeln!(
            report,
            "  member order changed the result: {actual_reversed:?}"
        )
        .unwrap();
    }
    for (member, partitions) in &actual {
        let mut line = format!("expect {member}");
        for (topic, partition) in partitions {
            write!(line, " {topic}-{partition}").unwrap();
        }
        writeln!(report, "{line}").unwrap();
    }
    Some(report)
}

fn parse(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (directive, rest) = line.split_once(' ').unwrap_or((line, ""));
        if directive == "run" {
            let (assignor, title) = rest.split_once(' ').unwrap_or((rest, ""));
            cases.push(Case {
                line: index + 1,
                assignor: assignor.to_owned(),
                title: title.trim().to_owned(),
                ..Case::default()
            });
            continue;
        }
        let case = cases
            .last_mut()
            .unwrap_or_else(|| panic!("line {}: `{directive}` before `run`", index + 1));
        match directive {
            "topics" => case.topics = parse_topics(rest),
            "member" => case.members.push(parse_member(rest)),
            "expect" => {
                let (member, partitions) = parse_expect(rest);
                assert!(
                    case.expected.insert(member, partitions).is_none(),
                    "line {}: second expect for a member",
                    index + 1
                );
            }
            other => panic!("line {}: unknown directive `{other}`", index + 1),
        }
    }
    for case in &cases {
        let members: Vec<&str> = case.members.iter().map(|m| m.member_id.as_str()).collect();
        let expected: Vec<&str> = case.expected.keys().map(String::as_str).collect();
        let mut sorted = members.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted, expected,
            "line {}: one expect per member",
            case.line
        );
    }
    cases
}

fn parse_topics(rest: &str) -> BTreeMap<String, i32> {
    rest.split_whitespace()
        .map(|entry| {
            let (topic, count) = entry.split_once('=').unwrap();
            (topic.to_owned(), count.parse().unwrap())
        })
        .collect()
}

fn parse_member(rest: &str) -> MemberSubscription {
    let mut words = rest.split_whitespace();
    let mut member = MemberSubscription::new(words.next().unwrap(), Subscription::default());
    for word in words {
        let (key, value) = word.split_once('=').unwrap();
        let list = || value.split(',').filter(|s| !s.is_empty());
        let subscription = &mut member.subscription;
        match key {
            "instance" => member.group_instance_id = Some(value.to_owned()),
            "topics" => subscription.topics = list().map(str::to_owned).collect(),
            "owned" => subscription.owned_partitions = list().map(parse_tp).collect(),
            "generation" => subscription.generation_id = value.parse().unwrap(),
            other => panic!("unknown member attribute `{other}`"),
        }
    }
    member
}

fn parse_expect(rest: &str) -> (String, Vec<(String, i32)>) {
    let mut words = rest.split_whitespace();
    let member = words.next().unwrap().to_owned();
    (member, words.map(parse_tp).collect())
}

fn parse_tp(s: &str) -> (String, i32) {
    let (topic, partition) = s.rsplit_once('-').unwrap();
    (topic.to_owned(), partition.parse().unwrap())
}
