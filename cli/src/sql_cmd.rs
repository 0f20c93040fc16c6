//! `strom sql "..."`: SQL over the cluster's topics, each one a table named as the topic
//! (quote names with dashes: `"page-views"`). JSON values get a column per top-level field,
//! inferred from the topic's first records; `--values csv:<fields>` or `--avro-schema`
//! declare other formats.
//!
//! - `SELECT ...`: a bounded query over what the topics hold now.
//! - `SELECT ... --follow`: a continuous query over one topic, printing rows as records
//!   arrive (windowed aggregates grouped by `tumble(...)` print each window as it closes).
//! - `CREATE STREAM out AS SELECT ...`: the continuous query's rows written to topic `out`
//!   until stopped.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use strom_client::admin::Admin;
use strom_client::consumer::Consumer;
use strom_client::producer::Producer;
use strom_client::ClientConfig;
use strom_sql::arrow::array::{Array, ArrayRef};
use strom_sql::arrow::record_batch::RecordBatch;
use strom_sql::arrow::util::display::{ArrayFormatter, FormatOptions};
use strom_sql::arrow::util::pretty::pretty_format_batches;
use strom_sql::{
    dead_letter, infer_json_format, json_rows, source_table, ContinuousQuery, FieldKind,
    JobOptions, SqlSession, Statement, StreamJob, TopicTable, ValueField, ValueFormat,
};

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// The statement: a query, or CREATE STREAM <topic> AS <query>.
    query: String,
    /// Broker to bootstrap from.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// A properties file of client settings for a secured cluster (`security.protocol`,
    /// `ssl.ca.location`, ...), as Kafka's tools take it.
    #[arg(long, value_name = "FILE")]
    command_config: Option<std::path::PathBuf>,
    /// How values are read: json (fields inferred), string, bytes, or
    /// csv:<name>:<text|integer|float|boolean>,... (fields by position).
    #[arg(long, default_value = "json")]
    values: String,
    /// An Avro record schema (a file) the values were written with; overrides --values.
    #[arg(long)]
    avro_schema: Option<std::path::PathBuf>,
    /// Avro values carry Confluent's header (magic byte and schema id).
    #[arg(long)]
    confluent: bool,
    /// Records per topic the JSON columns are inferred from.
    #[arg(long, default_value_t = 100)]
    sample: usize,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Keep running: print rows as records arrive (a query over one topic).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Where --follow starts: the beginning of the topic or its end.
    #[arg(long, value_enum, default_value_t = From::Beginning)]
    from: From,
    /// Stop after this many rows (--follow and CREATE STREAM).
    #[arg(long)]
    max_rows: Option<u64>,
    /// Milliseconds windows stay open after their end for late records.
    #[arg(long, default_value_t = 0)]
    grace_ms: u64,
    /// Topic for records whose value does not decode (--follow and CREATE STREAM).
    #[arg(long)]
    dead_letter: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum From {
    Beginning,
    End,
}

pub async fn run(args: SqlArgs) -> anyhow::Result<()> {
    let client =
        crate::produce_cmd::client_config(&args.bootstrap, args.command_config.as_deref(), &[])?;
    let admin = Admin::connect(client.clone())
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    match Statement::parse(&args.query)? {
        Statement::CreateStream { name, query } => {
            create_stream(&args, &client, &name, &query).await
        }
        Statement::Query(query) if args.follow => follow(&args, &client, &admin, &query).await,
        Statement::Query(query) => {
            let session = SqlSession::new()?;
            let mut tables = Vec::new();
            for topic in admin.list_topics(false).await? {
                let format = value_format(&args, &client, &topic).await?;
                let table = TopicTable::new(client.clone(), &topic, format)?;
                tables.push(session.register(&topic, table)?);
            }
            let batches = session.query(&query).await?;
            Printer::new(args.output).print(&batches)?;
            for bad in tables.iter().flat_map(|t| t.undecodable()) {
                eprintln!(
                    "undecodable record {}-{}@{} skipped: {}",
                    bad.topic, bad.partition, bad.offset, bad.reason
                );
            }
            Ok(())
        }
    }
}

/// How `topic`'s values are read, from the options (inferred from a sample for JSON).
async fn value_format(
    args: &SqlArgs,
    client: &ClientConfig,
    topic: &str,
) -> anyhow::Result<ValueFormat> {
    if let Some(path) = &args.avro_schema {
        let schema =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(ValueFormat::avro(&schema, args.confluent)?);
    }
    Ok(match args.values.as_str() {
        "json" => infer_json_format(client, topic, args.sample).await?,
        "string" => ValueFormat::String,
        "bytes" => ValueFormat::Bytes,
        csv if csv.starts_with("csv:") => ValueFormat::Csv(csv_fields(&csv[4..])?),
        other => bail!("--values {other}: expected json, string, bytes or csv:<name>:<type>,..."),
    })
}

/// `name:type,name:type` as CSV fields.
fn csv_fields(spec: &str) -> anyhow::Result<Vec<ValueField>> {
    spec.split(',')
        .map(|field| {
            let (name, kind) = field.split_once(':').unwrap_or((field, "text"));
            let kind = match kind {
                "text" | "string" => FieldKind::Text,
                "integer" | "int" | "long" => FieldKind::Integer,
                "float" | "double" => FieldKind::Float,
                "boolean" | "bool" => FieldKind::Boolean,
                other => bail!("CSV field {name}: unknown type {other}"),
            };
            if name.is_empty() {
                bail!("CSV field without a name in {spec:?}");
            }
            Ok(ValueField::new(name, kind))
        })
        .collect()
}

/// A continuous query over one topic, printing its rows as they come.
async fn follow(
    args: &SqlArgs,
    client: &ClientConfig,
    admin: &Admin,
    query: &str,
) -> anyhow::Result<()> {
    let topic = source_table(query)?;
    let format = value_format(args, client, &topic).await?;
    let grace = Duration::from_millis(args.grace_ms);
    let mut continuous = ContinuousQuery::with_grace(query, &topic, format, grace).await?;
    let described = admin.describe_topics(&[&topic]).await?;
    let partitions: Vec<(String, i32)> = described
        .iter()
        .filter(|d| d.error.is_ok())
        .flat_map(|d| d.partitions.iter().map(|p| (topic.clone(), p.partition)))
        .collect();
    if partitions.is_empty() {
        bail!("no topic {topic}");
    }
    let consumer = Consumer::new(client.clone()).await?;
    consumer.assign(&partitions)?;
    match args.from {
        From::Beginning => consumer.seek_to_beginning(&partitions)?,
        From::End => consumer.seek_to_end(&partitions)?,
    }
    let start = match args.from {
        From::Beginning => "the beginning",
        From::End => "the end",
    };
    eprintln!("following {topic} from {start}; Ctrl-C stops");
    let producer = match &args.dead_letter {
        Some(_) => Some(Producer::new(client.clone()).await?),
        None => None,
    };
    let mut printer = Printer::new(args.output);
    let mut printed = 0u64;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let records = tokio::select! {
            polled = consumer.poll(Duration::from_millis(500)) => polled?,
            _ = &mut stop => break,
        };
        let emitted = continuous.push(&records).await?;
        for bad in &emitted.undecodable {
            eprintln!(
                "undecodable record {}-{}@{}: {}",
                bad.topic, bad.partition, bad.offset, bad.reason
            );
        }
        if let (Some(producer), Some(topic)) = (&producer, &args.dead_letter) {
            for delivery in dead_letter(producer, topic, &records, &emitted.undecodable).await? {
                delivery.await?;
            }
        }
        if emitted.late > 0 {
            eprintln!("{} late records dropped", emitted.late);
        }
        let mut rows = emitted.rows;
        if let Some(max) = args.max_rows {
            rows = take_rows(rows, max - printed);
        }
        printed += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        printer.print(&rows)?;
        if args.max_rows.is_some_and(|max| printed >= max) {
            break;
        }
    }
    consumer.close();
    if let Some(producer) = producer {
        producer.close().await;
    }
    Ok(())
}

/// The first `n` rows of `batches`.
fn take_rows(batches: Vec<RecordBatch>, mut n: u64) -> Vec<RecordBatch> {
    let mut kept = Vec::new();
    for batch in batches {
        if n == 0 {
            break;
        }
        let rows = batch.num_rows() as u64;
        if rows <= n {
            n -= rows;
            kept.push(batch);
        } else {
            kept.push(batch.slice(0, usize::try_from(n).unwrap_or(0)));
            n = 0;
        }
    }
    kept
}

/// `CREATE STREAM`: runs until Ctrl-C (or --max-rows rows written), then says what it did.
async fn create_stream(
    args: &SqlArgs,
    client: &ClientConfig,
    name: &str,
    query: &str,
) -> anyhow::Result<()> {
    let topic = source_table(query)?;
    let format = value_format(args, client, &topic).await?;
    let options = JobOptions {
        grace: Duration::from_millis(args.grace_ms),
        dead_letter: args.dead_letter.clone(),
    };
    let job = StreamJob::start(client.clone(), name, query, format, options).await?;
    eprintln!("writing the rows of {topic} to {name}; Ctrl-C stops");
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {}
        }
        if job.is_finished() || args.max_rows.is_some_and(|max| job.stats().written >= max) {
            break;
        }
    }
    let stats = job.stop().await?;
    eprintln!(
        "{} records read, {} written to {name}, {} undecodable, {} late",
        stats.read, stats.written, stats.undecodable, stats.late
    );
    Ok(())
}

/// Prints batches as a table, JSON lines or CSV (one header).
struct Printer {
    output: Output,
    header: bool,
}

impl Printer {
    fn new(output: Output) -> Printer {
        Printer {
            output,
            header: false,
        }
    }

    fn print(&mut self, batches: &[RecordBatch]) -> anyhow::Result<()> {
        if batches.iter().all(|b| b.num_rows() == 0) && self.header {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        match self.output {
            Output::Table => {
                if batches.iter().any(|b| b.num_rows() > 0) || !self.header {
                    writeln!(out, "{}", pretty_format_batches(batches)?)?;
                }
            }
            Output::Json => {
                for batch in batches {
                    for row in json_rows(batch)? {
                        writeln!(out, "{}", serde_json::Value::Object(row))?;
                    }
                }
            }
            Output::Csv => write_csv(&mut out, batches, &mut self.header)?,
        }
        self.header = true;
        out.flush()?;
        Ok(())
    }
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

/// A header row, then one line per row (fields quoted when they need it).
fn write_csv(
    out: &mut impl Write,
    batches: &[RecordBatch],
    header: &mut bool,
) -> anyhow::Result<()> {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    for batch in batches {
        if !*header {
            let names: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| quote(f.name()))
                .collect();
            writeln!(out, "{}", names.join(","))?;
            *header = true;
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
