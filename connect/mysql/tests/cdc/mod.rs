//! Change capture from a real MariaDB: snapshot, then inserts, updates, deletes and DDL
//! from the binlog, every listed type, resuming without loss or duplicates.

use serde_json::{json, Value as Json};

use crate::support::{config_of, plain_json, setup, topic_size, wait_for_records};

/// The `after` (or `before`) rows of change events, and their ops.
fn ops(records: &[(Json, Json)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, v)| v["op"].as_str().unwrap_or("tombstone").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_then_the_binlog_capture_every_change() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40) NOT NULL, qty INT);
         CREATE TABLE shop.ignored (id INT PRIMARY KEY);
         INSERT INTO shop.orders VALUES (1, 'apple', 3), (2, 'pear', NULL), (3, 'fig', 7);
         INSERT INTO shop.ignored VALUES (1);",
    );
    let worker = s.worker().await;
    worker
        .add_connector("mysql", s.cdc_config("shop.orders", &[]))
        .await
        .unwrap();
    let topic = "app.shop.orders";
    let snap = wait_for_records(&s.client, topic, 3, Some(&worker)).await;
    assert_eq!(ops(&snap), ["r", "r", "r"]);
    assert_eq!(snap[0].0, json!({"id": 1}));
    assert_eq!(
        snap[1].1["after"],
        json!({"id": 2, "item": "pear", "qty": null})
    );
    assert_eq!(snap[0].1["before"], Json::Null);
    assert_eq!(snap[0].1["source"]["snapshot"], "true");
    assert_eq!(snap[2].1["source"]["snapshot"], "last");
    assert_eq!(snap[2].1["source"]["db"], "shop");
    assert_eq!(snap[2].1["source"]["table"], "orders");
    assert_eq!(snap[2].1["source"]["connector"], "mysql");

    s.sql(
        "INSERT INTO shop.orders VALUES (4, 'kiwi', 1);
         UPDATE shop.orders SET qty = 5 WHERE id = 2;
         DELETE FROM shop.orders WHERE id = 1;
         INSERT INTO shop.ignored VALUES (2);
         START TRANSACTION;
         INSERT INTO shop.orders VALUES (5, 'plum', 2);
         INSERT INTO shop.orders VALUES (6, 'lime', 2);
         COMMIT;",
    );
    let all = wait_for_records(&s.client, topic, 9, Some(&worker)).await;
    assert_eq!(ops(&all[3..]), ["c", "u", "d", "tombstone", "c", "c"]);
    let (insert, update, delete, tomb) = (&all[3].1, &all[4].1, &all[5].1, &all[6]);
    assert_eq!(insert["after"], json!({"id": 4, "item": "kiwi", "qty": 1}));
    assert_eq!(insert["before"], Json::Null);
    assert_eq!(
        update["before"],
        json!({"id": 2, "item": "pear", "qty": null})
    );
    assert_eq!(update["after"], json!({"id": 2, "item": "pear", "qty": 5}));
    assert_eq!(
        delete["before"],
        json!({"id": 1, "item": "apple", "qty": 3})
    );
    assert_eq!(delete["after"], Json::Null);
    assert_eq!(tomb.0, json!({"id": 1}));
    assert_eq!(tomb.1, Json::Null);
    let source = &insert["source"];
    assert_eq!(source["snapshot"], Json::Null);
    assert!(
        source["file"].as_str().unwrap().starts_with("binlog."),
        "{source}"
    );
    assert!(source["pos"].as_i64().unwrap() > 4, "{source}");
    assert_eq!(source["server_id"], 1);
    let gtid = source["gtid"].as_str().unwrap();
    assert!(
        gtid.starts_with("0-1-"),
        "MariaDB GTID domain-server-seq: {gtid}"
    );
    assert!(insert["ts_ms"].as_i64().unwrap() >= source["ts_ms"].as_i64().unwrap() - 1000);
    // The two inserts of one transaction share its GTID; the one before has another.
    assert_eq!(all[7].1["source"]["gtid"], all[8].1["source"]["gtid"]);
    assert_ne!(all[7].1["source"]["gtid"], insert["source"]["gtid"]);
    assert_eq!(topic_size(&s.client, "app.shop.ignored").await, 0);

    // A column added: later rows have it, and a row written before it is read with it.
    s.sql(
        "ALTER TABLE shop.orders ADD COLUMN note TEXT;
         INSERT INTO shop.orders VALUES (7, 'date', 1, 'ripe');
         UPDATE shop.orders SET note = 'old' WHERE id = 4;
         ALTER TABLE shop.orders DROP COLUMN qty;
         INSERT INTO shop.orders VALUES (8, 'nut', NULL);",
    );
    let all = wait_for_records(&s.client, topic, 12, Some(&worker)).await;
    assert_eq!(
        all[9].1["after"],
        json!({"id": 7, "item": "date", "qty": 1, "note": "ripe"})
    );
    assert_eq!(
        all[10].1["before"],
        json!({"id": 4, "item": "kiwi", "qty": 1, "note": null})
    );
    assert_eq!(
        all[11].1["after"],
        json!({"id": 8, "item": "nut", "note": null})
    );
    let history = topic_size(&s.client, "app.history").await;
    assert_eq!(history, 3, "the snapshot and two ALTERs");
    // The ALTERs are also schema change events on the topic named by the prefix.
    let changes = crate::support::records(&s.client, "app").await;
    let ddl: Vec<&str> = changes
        .iter()
        .map(|(_, v)| v["ddl"].as_str().unwrap())
        .collect();
    assert_eq!(
        ddl,
        [
            "ALTER TABLE shop.orders ADD COLUMN note TEXT",
            "ALTER TABLE shop.orders DROP COLUMN qty"
        ]
    );
    assert_eq!(changes[0].0, json!({"databaseName": "shop"}));
    let columns = &changes[1].1["tableChanges"][0]["table"]["columns"];
    assert_eq!(columns.as_array().unwrap().len(), 3, "{columns}");
    worker.shutdown().await;
}

/// One row of every listed type, as written by the test and as each type maps.
const TYPES_TABLE: &str = "CREATE TABLE types.t (
    id INT PRIMARY KEY,
    i8 TINYINT, u8 TINYINT UNSIGNED, u16 SMALLINT UNSIGNED, i24 MEDIUMINT,
    u32 INT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
    f FLOAT, d DOUBLE, money DECIMAL(10,2), big DECIMAL(30,10),
    flag BIT(1), bits BIT(12),
    c CHAR(3), vc VARCHAR(20), txt TEXT, l1 VARCHAR(10) CHARACTER SET latin1,
    bin BINARY(4), vb VARBINARY(8), bl BLOB,
    dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(6), yr YEAR, yr0 YEAR,
    js JSON, en ENUM('small','medium','large'), st SET('a','b','c'),
    nothing INT
)";

const TYPES_ROW: &str = "(ID, -128, 255, 65535, -8388608,
    4294967295, -9223372036854775808, 18446744073709551615,
    1.5, 2.25, -12.34, 12345678901234567890.0123456789,
    b'1', b'101000000101',
    'abc', 'héllo wörld', 'some text', 'café',
    x'00010203', x'ff00', x'deadbeef',
    '2024-02-29', '2024-02-29 13:14:15', '1969-12-31 23:59:59.123456',
    '2023-11-14 22:13:20.125', '-12:34:56.5', 2024, 0000,
    '{\"a\": [1, 2], \"b\": null}', 'medium', 'a,c',
    NULL)";

fn expected_types(id: i64) -> Json {
    json!({
        "id": id,
        "i8": -128, "u8": 255, "u16": 65535, "i24": -8388608,
        "u32": 4294967295_u64, "i64": i64::MIN, "u64": "AP//////////",
        "f": 1.5, "d": 2.25, "money": "+y4=", "big": "AY7pD/bDc+DuDATVFQ==",
        "flag": true, "bits": "BQo=",
        "c": "abc", "vc": "héllo wörld", "txt": "some text", "l1": "café",
        "bin": "AAECAw==", "vb": "/wA=", "bl": "3q2+7w==",
        "dt": 19782, "dtm": 1709212455000_i64, "dtm6": -876544,
        "ts": "2023-11-14T22:13:20.125Z", "tm": -45296500000_i64, "yr": 2024, "yr0": 0,
        "en": "medium", "st": "a,c",
        "nothing": null,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listed_type_maps_the_same_from_the_snapshot_and_the_binlog() {
    let Some(s) = setup().await else { return };
    s.sql(&format!(
        "CREATE DATABASE types CHARACTER SET utf8mb4; {TYPES_TABLE}; INSERT INTO types.t VALUES {};",
        TYPES_ROW.replace("ID", "1")
    ));
    let worker = s.worker().await;
    worker
        .add_connector("mysql", s.cdc_config("types.t", &[]))
        .await
        .unwrap();
    wait_for_records(&s.client, "app.types.t", 1, Some(&worker)).await;
    s.sql(&format!(
        "INSERT INTO types.t VALUES {};",
        TYPES_ROW.replace("ID", "2")
    ));
    let records = wait_for_records(&s.client, "app.types.t", 2, Some(&worker)).await;
    for (i, (_, value)) in records.iter().enumerate() {
        let mut after = value["after"].clone();
        // JSON text is the server's: compare it parsed.
        let js: Json = serde_json::from_str(after["js"].as_str().unwrap()).unwrap();
        assert_eq!(js, json!({"a": [1, 2], "b": null}));
        after.as_object_mut().unwrap().remove("js");
        let id = i64::try_from(i).unwrap() + 1;
        assert_eq!(after, expected_types(id), "row {id} ({})", value["op"]);
    }
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_filter_keeps_only_the_changes_that_meet_its_condition() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40) NOT NULL, qty INT);
         INSERT INTO shop.orders VALUES (1, 'apple', 3), (2, 'pear', 9);",
    );
    let worker = s.worker().await;
    let config = s.cdc_config(
        "shop.orders",
        &[
            ("transforms", "big"),
            (
                "transforms.big.type",
                "io.strom.connect.transforms.SqlFilter",
            ),
            ("transforms.big.condition", "op = 'd' OR after.qty > 5"),
        ],
    );
    worker.add_connector("mysql", config).await.unwrap();
    // The snapshot first (pear passes, apple does not), then changes from the binlog.
    wait_for_records(&s.client, "app.shop.orders", 1, Some(&worker)).await;
    s.sql(
        "INSERT INTO shop.orders VALUES (3, 'fig', 1), (4, 'kiwi', 6);
         DELETE FROM shop.orders WHERE id = 1;
         INSERT INTO shop.orders VALUES (5, 'lime', 50);",
    );
    let all = wait_for_records(&s.client, "app.shop.orders", 5, Some(&worker)).await;
    let ids: Vec<(String, i64)> = all
        .iter()
        .map(|(k, v)| {
            (
                v["op"].as_str().unwrap_or("tombstone").to_owned(),
                k["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("r".to_owned(), 2),
            ("c".to_owned(), 4),
            ("d".to_owned(), 1),
            ("tombstone".to_owned(), 1),
            ("c".to_owned(), 5)
        ]
    );
    // A condition that is not SQL is refused when the connector is created.
    let bad = s.cdc_config(
        "shop.orders",
        &[
            ("transforms", "big"),
            ("transforms.big.type", "SqlFilter"),
            ("transforms.big.condition", "qty >"),
            ("topic.prefix", "bad"),
        ],
    );
    let e = worker.add_connector("bad", bad).await.unwrap_err();
    assert!(e.to_string().contains("transforms.big"), "{e}");
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_flow_from_mysql_through_a_topic_into_a_file() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40) NOT NULL, qty INT);
         INSERT INTO shop.orders VALUES (1, 'apple', 3);",
    );
    let worker = s.worker().await;
    worker
        .add_connector("mysql", s.cdc_config("shop.orders", &[]))
        .await
        .unwrap();
    // The topic exists before the sink subscribes to it.
    wait_for_records(&s.client, "app.shop.orders", 1, Some(&worker)).await;
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("orders.jsonl");
    let mut sink = config_of(&[
        ("connector.class", "FileStreamSink"),
        ("topics", "app.shop.orders"),
        ("file", path.to_str().unwrap()),
    ]);
    plain_json(&mut sink);
    worker.add_connector("file", sink).await.unwrap();
    s.sql(
        "UPDATE shop.orders SET qty = 4 WHERE id = 1;
         INSERT INTO shop.orders VALUES (2, 'pear', 1);
         DELETE FROM shop.orders WHERE id = 2;",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let lines = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= 5 {
            break lines;
        }
        if std::time::Instant::now() >= deadline {
            let status = worker.status("file").await;
            panic!("the file has {lines:?}; {status:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let ops: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: Json = serde_json::from_str(l).unwrap();
            v["op"].as_str().unwrap_or("null").to_owned()
        })
        .collect();
    assert_eq!(ops, ["r", "u", "c", "d", "null"]);
    let update: Json = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(update["after"], json!({"id": 1, "item": "apple", "qty": 4}));
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_primary_key_and_savepoints_are_captured_as_they_happened() {
    let Some(s) = setup().await else { return };
    s.sql(
        "CREATE DATABASE shop;
         CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40) NOT NULL, qty INT);
         INSERT INTO shop.orders VALUES (1, 'apple', 3);",
    );
    let topic = "app.shop.orders";
    let worker = s.worker().await;
    let config = s.cdc_config("shop.orders", &[]);
    worker.add_connector("mysql", config.clone()).await.unwrap();
    wait_for_records(&s.client, topic, 1, Some(&worker)).await;
    s.sql(
        "UPDATE shop.orders SET id = 10 WHERE id = 1;
         START TRANSACTION;
         INSERT INTO shop.orders VALUES (2, 'pear', 1);
         SAVEPOINT a;
         INSERT INTO shop.orders VALUES (3, 'fig', 1);
         ROLLBACK TO SAVEPOINT a;
         INSERT INTO shop.orders VALUES (4, 'kiwi', 1);
         COMMIT;",
    );
    let all = wait_for_records(&s.client, topic, 6, Some(&worker)).await;
    let keys: Vec<(String, i64)> = all
        .iter()
        .map(|(k, v)| {
            (
                v["op"].as_str().unwrap_or("tombstone").to_owned(),
                k["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = [
        ("r", 1),
        ("d", 1),
        ("tombstone", 1),
        ("c", 10),
        ("c", 2),
        ("c", 4),
    ]
    .iter()
    .map(|(o, k)| ((*o).to_owned(), *k))
    .collect();
    assert_eq!(keys, expected);
    assert_eq!(all[3].1["after"]["item"], "apple");
    worker.shutdown().await;

    // Restarted from the offsets stored in that transaction: nothing again.
    s.sql("INSERT INTO shop.orders VALUES (5, 'lime', 1);");
    let worker = s.worker().await;
    worker.add_connector("mysql", config).await.unwrap();
    let all = wait_for_records(&s.client, topic, 7, Some(&worker)).await;
    assert_eq!(all.len(), 7);
    assert_eq!(all[6].0["id"], 5);
    worker.shutdown().await;
}
