//! Continuous queries: filters emit at once, windowed aggregates emit each window when
//! stream time passes its end (plus grace), late records are counted; statements.

use bytes::Bytes;
use strom_client::consumer::ConsumerRecord;
use strom_sql::arrow::record_batch::RecordBatch;
use strom_sql::{
    json_rows, ContinuousQuery, FieldKind, SqlError, Statement, ValueField, ValueFormat,
};

const MINUTE: i64 = 60_000;
/// 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200_000;

fn click(offset: i64, at: i64, page: &str) -> ConsumerRecord {
    ConsumerRecord {
        topic: "clicks".to_owned(),
        partition: (offset % 2) as i32,
        offset,
        timestamp: T0 + at,
        key: Some(Bytes::from(format!("user-{}", offset % 3))),
        value: Some(Bytes::from(format!(
            r#"{{"page":"{page}","event_ms":{}}}"#,
            T0 + at
        ))),
        headers: Vec::new(),
        leader_epoch: None,
    }
}

fn format() -> ValueFormat {
    ValueFormat::Json(vec![
        ValueField::new("page", FieldKind::Text),
        ValueField::new("event_ms", FieldKind::Integer),
    ])
}

/// Rows as compact JSON text, for comparing.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| json_rows(b).unwrap())
        .map(|row| serde_json::Value::Object(row).to_string())
        .collect()
}

const PER_MINUTE: &str =
    "SELECT tumble(timestamp, INTERVAL '1 minute') AS minute, page, count(*) AS views \
     FROM clicks WHERE page <> 'skip' GROUP BY minute, page ORDER BY page";

#[tokio::test]
async fn a_windowed_aggregate_emits_each_window_once_when_it_closes() {
    let mut query = ContinuousQuery::new(PER_MINUTE, "clicks", format())
        .await
        .unwrap();
    assert!(query.is_windowed());
    let first = query
        .push(&[
            click(0, 0, "a"),
            click(1, 10_000, "b"),
            click(2, 20_000, "a"),
            click(3, 30_000, "skip"),
        ])
        .await
        .unwrap();
    assert!(first.rows.is_empty(), "the first minute is still open");
    assert_eq!(query.pending_offsets().len(), 2);

    // A click in the second minute closes the first.
    let second = query.push(&[click(4, MINUTE + 5_000, "a")]).await.unwrap();
    assert_eq!(
        rows(&second.rows),
        [
            r#"{"minute":"2026-11-01T00:00:00","page":"a","views":2}"#,
            r#"{"minute":"2026-11-01T00:00:00","page":"b","views":1}"#,
        ]
    );
    // Offsets of the first minute are done; the second's first record is pending.
    assert_eq!(
        query.pending_offsets().into_iter().collect::<Vec<_>>(),
        [(("clicks".to_owned(), 0), 4)]
    );

    // A click for the first minute now is late: counted, not emitted again.
    let late = query
        .push(&[click(5, 50_000, "a"), click(6, MINUTE + 9_000, "b")])
        .await
        .unwrap();
    assert_eq!(late.late, 1);
    assert!(late.rows.is_empty());

    // The end of the input emits what is open.
    assert_eq!(
        rows(&query.finish().await.unwrap()),
        [
            r#"{"minute":"2026-11-01T00:01:00","page":"a","views":1}"#,
            r#"{"minute":"2026-11-01T00:01:00","page":"b","views":1}"#,
        ]
    );
}

#[tokio::test]
async fn grace_keeps_a_window_open_for_out_of_order_records() {
    let mut query = ContinuousQuery::with_grace(
        "SELECT tumble(timestamp, INTERVAL '1 minute') AS minute, count(*) AS n FROM clicks GROUP BY minute",
        "clicks",
        format(),
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    let out = query
        .push(&[
            click(0, 0, "a"),
            click(1, MINUTE + 10_000, "a"),
            click(2, 50_000, "a"),
        ])
        .await
        .unwrap();
    assert!(out.rows.is_empty(), "within grace: {:?}", rows(&out.rows));
    assert_eq!(out.late, 0);
    let out = query.push(&[click(3, MINUTE + 30_000, "a")]).await.unwrap();
    assert_eq!(
        rows(&out.rows),
        [r#"{"minute":"2026-11-01T00:00:00","n":2}"#]
    );
}

#[tokio::test]
async fn event_time_can_come_from_the_value() {
    // Record timestamps say nothing here (all the same); the value's event_ms decides.
    let mut records: Vec<ConsumerRecord> = [(0, 0), (1, 70_000), (2, 10_000), (3, 130_000)]
        .into_iter()
        .map(|(o, at)| {
            let mut r = click(o, at, "a");
            r.timestamp = T0;
            r
        })
        .collect();
    records.push(click(4, 200_000, "skip"));
    let mut query = ContinuousQuery::new(
        "SELECT tumble(to_timestamp_millis(event_ms), INTERVAL '1 minute') AS minute, count(*) AS n \
         FROM clicks GROUP BY minute",
        "clicks",
        format(),
    )
    .await
    .unwrap();
    let out = query.push(&records).await.unwrap();
    // Record 2 (0:10) comes after stream time reached 1:10, past minute 0's end: late.
    assert_eq!(out.late, 1);
    assert_eq!(
        rows(&out.rows),
        [
            r#"{"minute":"2026-11-01T00:00:00","n":1}"#,
            r#"{"minute":"2026-11-01T00:01:00","n":1}"#,
            r#"{"minute":"2026-11-01T00:02:00","n":1}"#,
        ]
    );
}

#[tokio::test]
async fn a_filter_emits_matches_at_once() {
    let mut query = ContinuousQuery::new(
        "SELECT key, page FROM clicks WHERE page = 'a' AND offset > 0",
        "clicks",
        format(),
    )
    .await
    .unwrap();
    assert!(!query.is_windowed());
    let mut bad = click(3, 0, "a");
    bad.value = Some(Bytes::from_static(b"{oops"));
    let out = query
        .push(&[click(0, 0, "a"), click(1, 0, "b"), click(2, 0, "a"), bad])
        .await
        .unwrap();
    assert_eq!(rows(&out.rows), [r#"{"key":"user-2","page":"a"}"#]);
    assert_eq!(out.undecodable.len(), 1);
    assert_eq!(out.undecodable[0].offset, 3);
}

#[tokio::test]
async fn unbounded_queries_that_cannot_emit_are_refused_clearly() {
    let not_windowed = ContinuousQuery::new(
        "SELECT page, count(*) FROM clicks GROUP BY page",
        "clicks",
        format(),
    )
    .await;
    let Err(SqlError::Unsupported { reason, .. }) = not_windowed else {
        panic!("{:?}", not_windowed.err());
    };
    assert!(reason.contains("tumble"), "{reason}");
    let months = ContinuousQuery::new(
        "SELECT tumble(timestamp, INTERVAL '1 month') AS m, count(*) FROM clicks GROUP BY m",
        "clicks",
        format(),
    )
    .await;
    assert!(months.is_err());
    let unknown = ContinuousQuery::new("SELECT nope FROM clicks", "clicks", format()).await;
    let message = unknown.err().unwrap().to_string();
    assert!(message.contains("nope"), "{message}");
}

#[test]
fn statements_tell_create_stream_from_queries() {
    assert_eq!(
        Statement::parse("create stream big_orders as SELECT * FROM orders WHERE amount > 1")
            .unwrap(),
        Statement::CreateStream {
            name: "big_orders".to_owned(),
            query: "SELECT * FROM orders WHERE amount > 1".to_owned()
        }
    );
    assert_eq!(
        Statement::parse("CREATE STREAM \"per-minute\"\n  AS\n SELECT 1").unwrap(),
        Statement::CreateStream {
            name: "per-minute".to_owned(),
            query: "SELECT 1".to_owned()
        }
    );
    assert_eq!(
        Statement::parse("SELECT 1").unwrap(),
        Statement::Query("SELECT 1".to_owned())
    );
    for bad in [
        "CREATE STREAM",
        "CREATE STREAM x SELECT 1",
        "CREATE STREAM x AS",
        "CREATE STREAM \"x AS SELECT 1",
    ] {
        let Err(SqlError::Parse(message)) = Statement::parse(bad) else {
            panic!("{bad} parsed");
        };
        assert!(message.contains("CREATE STREAM"), "{message}");
    }
    assert_eq!(
        strom_sql::source_table("SELECT * FROM \"page-views\" WHERE 1 = 1").unwrap(),
        "page-views"
    );
    assert!(strom_sql::source_table("SELECT * FROM a JOIN b ON a.key = b.key").is_err());
}
