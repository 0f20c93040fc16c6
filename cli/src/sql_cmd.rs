//! `strom sql "SELECT ..."`: a bounded query over the cluster's topics, each one a table
//! (named as the topic; quote names with dashes: `"page-views"`). JSON values get a
//! column per top-level field, inferred from the topic's first records.

use std::io::Write;

use anyhow::Context;
use clap::{Args, ValueEnum};
use strom_client::admin::Admin;
use strom_client::ClientConfig;
use strom_sql::arrow::array::{Array, ArrayRef};
use strom_sql::arrow::datatypes::DataType;
use strom_sql::arrow::record_batch::RecordBatch;
use strom_sql::arrow::util::display::{ArrayFormatter, FormatOptions};
use strom_sql::arrow::util::pretty::pretty_format_batches;
use strom_sql::{infer_json_format, SqlSession, TopicTable, ValueFormat};

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The query.
    query: String,
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// How values are read.
    #[arg(long, value_enum, default_value_t = Values::Json)]
    values: Values,
    /// Records per topic the JSON columns are inferred from.
    #[arg(long, default_value_t = 100)]
    sample: usize,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Values {
    Json,
    String,
    Bytes,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

pub async fn run(args: SqlArgs) -> anyhow::Result<()> {
    let client = ClientConfig::new().bootstrap(&args.bootstrap);
    let admin = Admin::connect(client.clone())
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    let session = SqlSession::new()?;
    for topic in admin.list_topics(false).await? {
        let format = match args.values {
            Values::Json => infer_json_format(&client, &topic, args.sample).await?,
            Values::String => ValueFormat::String,
            Values::Bytes => ValueFormat::Bytes,
        };
        session.register(&topic, TopicTable::new(client.clone(), &topic, format)?)?;
    }
    let batches = session.query(&args.query).await?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Table => writeln!(out, "{}", pretty_format_batches(&batches)?)?,
        Output::Json => write_json(&mut out, &batches)?,
        Output::Csv => write_csv(&mut out, &batches)?,
    }
    Ok(())
}

/// Each cell as text (`None`: null).
fn cells(column: &ArrayRef) -> anyhow::Result<Vec<Option<String>>> {
    let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?;
    Ok((0..column.len())
        .map(|i| (!column.is_null(i)).then(|| formatter.value(i).to_string()))
        .collect())
}

/// Every column of `batch` as text cells.
fn batch_cells(batch: &RecordBatch) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    batch.columns().iter().map(cells).collect()
}

/// One JSON object per row; numbers and booleans as such, everything else as text.
fn write_json(out: &mut impl Write, batches: &[RecordBatch]) -> anyhow::Result<()> {
    for batch in batches {
        let schema = batch.schema();
        let columns = batch_cells(batch)?;
        for row in 0..batch.num_rows() {
            let mut object = serde_json::Map::new();
            for (column, field) in columns.iter().zip(schema.fields().iter()) {
                let value = match &column[row] {
                    None => serde_json::Value::Null,
                    Some(text)
                        if field.data_type().is_numeric()
                            || field.data_type() == &DataType::Boolean =>
                    {
                        serde_json::from_str(text)
                            .unwrap_or_else(|_| serde_json::Value::String(text.clone()))
                    }
                    Some(text) => serde_json::Value::String(text.clone()),
                };
                object.insert(field.name().clone(), value);
            }
            writeln!(out, "{}", serde_json::Value::Object(object))?;
        }
    }
    Ok(())
}

/// A header row, then one line per row (fields quoted when they need it).
fn write_csv(out: &mut impl Write, batches: &[RecordBatch]) -> anyhow::Result<()> {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut header = false;
    for batch in batches {
        if !header {
            let names: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| quote(f.name()))
                .collect();
            writeln!(out, "{}", names.join(","))?;
            header = true;
        }
        let columns = batch_cells(batch)?;
        for row in 0..batch.num_rows() {
            let line: Vec<String> = columns
                .iter()
                .map(|c| c[row].as_deref().map(quote).unwrap_or_default())
                .collect();
            writeln!(out, "{}", line.join(","))?;
        }
    }
    Ok(())
}
