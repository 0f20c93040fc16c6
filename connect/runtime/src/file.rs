//! Kafka's connect-file example connectors: `FileStreamSource` (lines of a file into a
//! topic: `file`, `topic`, `batch.size`; its position in the file as the offset) and
//! `FileStreamSink` (values as lines appended to a file).

use std::io::SeekFrom;
use std::time::Duration;

use async_trait::async_trait;
use strom_connect_api::{
    ConfigKey, ConfigMap, ConnectError, OffsetMap, Schema, SchemaType, SinkConnector, SinkRecord,
    SinkTask, SourceConnector, SourceRecord, SourceTask, SourceTaskContext, Value,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// The file source connector (one task).
#[derive(Debug, Default)]
pub struct FileStreamSource {
    config: ConfigMap,
}

const KEYS: [ConfigKey; 3] = [
    ConfigKey {
        name: "file",
        required: true,
        default: None,
        doc: "The file to read; lines are records.",
    },
    ConfigKey {
        name: "topic",
        required: true,
        default: None,
        doc: "The topic to write to.",
    },
    ConfigKey {
        name: "batch.size",
        required: false,
        default: Some("2000"),
        doc: "Most lines per poll.",
    },
];

#[async_trait]
impl SourceConnector for FileStreamSource {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        KEYS.to_vec()
    }

    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError> {
        if config.get("topic").is_some_and(|t| t.contains(',')) {
            return Err(ConnectError::Config(
                "FileStreamSource writes one topic; topic has a comma".to_owned(),
            ));
        }
        self.config = config;
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        Ok(vec![self.config.clone()])
    }

    fn task(&self) -> Box<dyn SourceTask> {
        Box::new(FileStreamSourceTask::default())
    }

    async fn stop(&mut self) {}
}

/// Reads a file from the stored position, a batch of whole lines per poll.
#[derive(Debug, Default)]
struct FileStreamSourceTask {
    path: String,
    topic: String,
    batch: usize,
    file: Option<tokio::fs::File>,
    position: u64,
    /// Bytes read past the last whole line.
    partial: Vec<u8>,
}

impl FileStreamSourceTask {
    fn partition(&self) -> OffsetMap {
        let mut partition = OffsetMap::new();
        partition.insert("filename".into(), self.path.clone().into());
        partition
    }
}

#[async_trait]
impl SourceTask for FileStreamSourceTask {
    async fn start(
        &mut self,
        config: ConfigMap,
        context: SourceTaskContext,
    ) -> Result<(), ConnectError> {
        let get = |key: &str| {
            config
                .get(key)
                .cloned()
                .ok_or_else(|| ConnectError::Config(format!("{key} is missing")))
        };
        self.path = get("file")?;
        self.topic = get("topic")?;
        self.batch = config
            .get("batch.size")
            .map_or(Ok(2000), |b| b.parse::<usize>())
            .map_err(|e| ConnectError::Config(format!("batch.size: {e}")))?;
        self.position = context
            .offsets
            .offset(&self.partition())
            .and_then(|o| o.get("position").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if self.file.is_none() {
            match tokio::fs::File::open(&self.path).await {
                Ok(mut file) => {
                    file.seek(SeekFrom::Start(self.position))
                        .await
                        .map_err(|e| ConnectError::Retriable(format!("{}: {e}", self.path)))?;
                    self.file = Some(file);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Err(ConnectError::Retriable(format!("{}: not found", self.path)));
                }
                Err(e) => return Err(ConnectError::Failed(format!("{}: {e}", self.path))),
            }
        }
        let mut records = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        while records.len() < self.batch {
            // Lines already read first.
            if let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=end).collect();
                self.position += line.len() as u64;
                let text = String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim_end_matches('\r')
                    .to_owned();
                let mut offset = OffsetMap::new();
                offset.insert("position".into(), self.position.into());
                let mut record =
                    SourceRecord::new(self.partition(), offset, &self.topic, Value::String(text));
                record.value_schema = Some(std::sync::Arc::new(Schema::of(SchemaType::String)));
                records.push(record);
                continue;
            }
            let Some(file) = self.file.as_mut() else {
                break;
            };
            let n = file
                .read(&mut buffer)
                .await
                .map_err(|e| ConnectError::Retriable(format!("{}: {e}", self.path)))?;
            if n == 0 {
                break;
            }
            self.partial.extend_from_slice(&buffer[..n]);
        }
        if records.is_empty() {
            // Nothing new: the file is followed as it grows, at this pace.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(records)
    }

    async fn stop(&mut self) {
        self.file = None;
    }
}

/// `FileStreamSink`: records' values as lines appended to a file (`file`, `topics`), made
/// durable (fsync) at each flush.
#[derive(Debug, Default)]
pub struct FileStreamSink {
    config: ConfigMap,
}

const SINK_KEYS: [ConfigKey; 2] = [
    ConfigKey {
        name: "file",
        required: true,
        default: None,
        doc: "The file to append to.",
    },
    ConfigKey {
        name: "topics",
        required: true,
        default: None,
        doc: "The topics to read, comma-separated.",
    },
];

#[async_trait]
impl SinkConnector for FileStreamSink {
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_keys(&self) -> Vec<ConfigKey> {
        SINK_KEYS.to_vec()
    }

    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError> {
        self.config = config;
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<ConfigMap>, ConnectError> {
        // One writer of the file.
        Ok(vec![self.config.clone()])
    }

    fn task(&self) -> Box<dyn SinkTask> {
        Box::new(FileStreamSinkTask { file: None })
    }

    async fn stop(&mut self) {}
}

struct FileStreamSinkTask {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
}

#[async_trait]
impl SinkTask for FileStreamSinkTask {
    async fn start(&mut self, config: ConfigMap) -> Result<(), ConnectError> {
        let path = config
            .get("file")
            .ok_or_else(|| ConnectError::Config("file is missing".to_owned()))?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|e| ConnectError::Failed(format!("{path}: {e}")))?;
        self.file = Some(tokio::io::BufWriter::new(file));
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let Some(file) = self.file.as_mut() else {
            return Err(ConnectError::Failed("not started".to_owned()));
        };
        for record in records {
            let line = match record.value {
                Value::String(s) => s,
                Value::Null => "null".to_owned(),
                other => other.to_json().to_string(),
            };
            file.write_all(line.as_bytes())
                .await
                .and(file.write_all(b"\n").await)
                .map_err(|e| ConnectError::Retriable(e.to_string()))?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ConnectError> {
        if let Some(file) = self.file.as_mut() {
            file.flush()
                .await
                .map_err(|e| ConnectError::Retriable(e.to_string()))?;
            file.get_ref()
                .sync_data()
                .await
                .map_err(|e| ConnectError::Retriable(e.to_string()))?;
        }
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(mut file) = self.file.take() {
            let _ = file.flush().await;
        }
    }
}
