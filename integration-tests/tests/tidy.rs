//! The crate graph stays as ARCHITECTURE.md draws it: every workspace member's manifest is
//! read and each dependency on another workspace crate is checked against the allowed
//! table (dependencies point down; heavy peers only in bench and integration tests).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

/// Workspace crates each crate may depend on (normal and build dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("strom-protocol", &[]),
    ("strom-client", &["strom-protocol"]),
    ("strom-broker", &["strom-protocol"]),
    ("strom-streams", &["strom-client", "strom-protocol"]),
    (
        "strom-sql",
        &[
            "strom-client",
            "strom-protocol",
            "strom-streams",
            "strom-connect-api",
        ],
    ),
    ("strom-connect-api", &["strom-protocol"]),
    (
        "strom-connect-runtime",
        &["strom-connect-api", "strom-client", "strom-protocol"],
    ),
    (
        "strom-connect-mysql",
        &["strom-connect-api", "strom-client", "strom-protocol"],
    ),
    ("strom-testkit", &["strom-protocol"]),
    ("strom-cli", &["*"]),
    ("strom-examples", &["*"]),
    ("strom-integration-tests", &["*"]),
    ("strom-bench", &["*"]),
];

/// External crates that only benchmarks and cross-crate tests may use.
const HEAVY: &[&str] = &["rdkafka", "testcontainers"];

fn manifest(path: &Path) -> toml::Table {
    std::fs::read_to_string(path).unwrap().parse().unwrap()
}

fn deps(table: &toml::Table, section: &str) -> Vec<String> {
    table
        .get(section)
        .and_then(|d| d.as_table())
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn dependencies_point_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let workspace = manifest(&root.join("Cargo.toml"));
    let members: Vec<String> = workspace["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut names = Vec::new();
    let mut problems = Vec::new();
    for member in &members {
        let table = manifest(&root.join(member).join("Cargo.toml"));
        let name = table["package"]["name"].as_str().unwrap().to_owned();
        let Some(may) = allowed.get(name.as_str()) else {
            problems.push(format!(
                "{name} is not in the allowed table of this test and ARCHITECTURE.md"
            ));
            continue;
        };
        let mut normal = deps(&table, "dependencies");
        normal.extend(deps(&table, "build-dependencies"));
        for dep in &normal {
            if dep.starts_with("strom-") && !may.contains(&"*") && !may.contains(&dep.as_str()) {
                problems.push(format!("{name} depends on {dep}, which is not allowed"));
            }
            if HEAVY.contains(&dep.as_str())
                && !matches!(name.as_str(), "strom-bench" | "strom-integration-tests")
            {
                problems.push(format!("{name} depends on {dep}: heavy peers live only in bench/ and integration-tests/"));
            }
        }
        if name != "strom-testkit" && normal.iter().any(|d| d == "strom-testkit") {
            problems.push(format!(
                "{name} uses strom-testkit outside dev-dependencies"
            ));
        }
        names.push(name);
    }
    assert!(
        names.contains(&"strom-protocol".to_owned()) && names.contains(&"strom-broker".to_owned()),
        "{names:?}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
