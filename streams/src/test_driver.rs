//! [`TopologyTestDriver`]: runs a topology synchronously, without a broker, as Kafka
//! Streams' test driver does: records piped into input topics go through the topology at
//! once, and what its sinks write waits in output topics to be read.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::processor::OutputRecord;
use crate::serde::Serde;
use crate::state::{global_store, SharedStore, StoreEnv};
use crate::task::{Input, Task};
use crate::topology::Topology;
use crate::StreamsError;

/// The driver's state, shared with its topics.
struct Inner {
    task: Task,
    /// The driver's wall clock (ms), moved by the test.
    wall_clock: i64,
    /// Global tables' stores by topic: what is piped there goes straight in.
    globals: BTreeMap<String, SharedStore>,
    /// The topology's repartition topics: what goes there comes straight back in.
    internal: std::collections::BTreeSet<String>,
    /// The topics the topology reads: what it writes to one of them (`through`) is also
    /// read back.
    sources: std::collections::BTreeSet<String>,
    outputs: HashMap<String, VecDeque<OutputRecord>>,
    /// Next offset per input topic.
    offsets: HashMap<String, i64>,
    /// Records that failed (serde errors), oldest first.
    errors: Vec<String>,
}

/// Runs a [`Topology`] on records piped in by the test.
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
}

impl TopologyTestDriver {
    /// A driver with the topology built for one task.
    pub fn new(topology: &Topology) -> Self {
        // Stores are in memory here: opening them cannot fail, but if it did the error
        // would be the first of `errors()`.
        let globals: BTreeMap<String, SharedStore> = topology
            .global_topics()
            .iter()
            .map(|(topic, store)| (topic.clone(), global_store(store)))
            .collect();
        let env = StoreEnv {
            dir: None,
            globals: topology
                .global_topics()
                .iter()
                .filter_map(|(topic, store)| Some((store.clone(), globals.get(topic)?.clone())))
                .collect(),
        };
        let (task, errors) = match Task::new(topology, &env) {
            Ok(task) => (task, Vec::new()),
            Err(e) => (Task::empty(), vec![e.to_string()]),
        };
        let mut task = task;
        // Wall-clock schedules start now.
        let started = task.punctuate_wall_clock(0);
        let mut errors = errors;
        errors.extend(started.errors);
        TopologyTestDriver {
            inner: Rc::new(RefCell::new(Inner {
                wall_clock: 0,
                globals,
                task,
                internal: topology.internal_topics().clone(),
                sources: topology.source_topics(),
                outputs: HashMap::new(),
                offsets: HashMap::new(),
                errors,
            })),
        }
    }

    /// An input topic that writes keys and values with these serdes.
    pub fn input_topic<K, V>(
        &self,
        topic: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: self.inner.clone(),
            topic: topic.to_owned(),
            key: Arc::new(key),
            value: Arc::new(value),
            next_timestamp: RefCell::new(0),
        }
    }

    /// An output topic that reads keys and values with these serdes.
    pub fn output_topic<K, V>(
        &self,
        topic: &str,
        key: impl Serde<K>,
        value: impl Serde<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: self.inner.clone(),
            topic: topic.to_owned(),
            key: Arc::new(key),
            value: Arc::new(value),
            _types: PhantomData,
        }
    }

    /// Every entry of store `name` (see [`KTable::store_name`](crate::KTable::store_name)),
    /// as bytes in key order; `None` when the topology has no such store.
    ///
    /// # Errors
    /// [`StreamsError::Store`] when the store cannot be read.
    pub fn store_entries(&self, name: &str) -> Result<Option<Vec<(Bytes, Bytes)>>, StreamsError> {
        let inner = self.inner.borrow();
        let Some(store) = inner.task.stores().get(name) else {
            return Ok(None);
        };
        let entries = store.borrow_mut().all()?;
        Ok(Some(entries))
    }

    /// Moves the driver's wall clock (which starts at 0) by `by`, firing the wall-clock
    /// punctuations that come due.
    pub fn advance_wall_clock_time(&self, by: std::time::Duration) {
        let mut inner = self.inner.borrow_mut();
        inner.wall_clock = inner
            .wall_clock
            .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
        let now = inner.wall_clock;
        let processed = inner.task.punctuate_wall_clock(now);
        inner.collect(processed);
    }

    /// The records that could not be processed so far (undecodable input, unencodable
    /// output), as messages naming the topic and offset.
    pub fn errors(&self) -> Vec<String> {
        self.inner.borrow().errors.clone()
    }
}

impl Inner {
    fn pipe(&mut self, topic: &str, key: Option<Bytes>, value: Option<Bytes>, timestamp: i64) {
        if let Some(store) = self.globals.get(topic) {
            let Some(key) = key else {
                return;
            };
            if let Err(e) = store.borrow_mut().restore(key, value, timestamp) {
                self.errors.push(e.to_string());
            }
            return;
        }
        let offset = self.offsets.entry(topic.to_owned()).or_default();
        let input = Input {
            topic,
            partition: 0,
            offset: *offset,
            timestamp,
            headers: Vec::new(),
            key: key.as_deref(),
            value: value.as_deref(),
        };
        *offset += 1;
        let processed = self.task.process(input);
        self.collect(processed);
    }

    /// Keeps what processing made: outputs for the test, repartitioned records back in.
    fn collect(&mut self, processed: crate::task::Processed) {
        self.errors.extend(processed.errors);
        for record in processed.outputs {
            if self.internal.contains(&record.topic) {
                // A repartition topic: read at once, as the one task owns every partition.
                self.pipe(&record.topic, record.key, record.value, record.timestamp);
                continue;
            }
            if self.sources.contains(&record.topic) {
                let (key, value) = (record.key.clone(), record.value.clone());
                self.pipe(&record.topic, key, value, record.timestamp);
            }
            self.outputs
                .entry(record.topic.clone())
                .or_default()
                .push_back(record);
        }
    }
}

/// Where a test writes a topology's input.
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
    next_timestamp: RefCell<i64>,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Pipes one record, timestamped one millisecond after the previous one.
    ///
    /// # Panics
    /// When the serdes cannot write `key` or `value` (a mistake in the test).
    pub fn pipe_input(&self, key: K, value: V) {
        let timestamp = *self.next_timestamp.borrow();
        self.pipe_input_at(key, value, timestamp);
    }

    /// Pipes one record with `timestamp` (stream time follows record timestamps).
    ///
    /// # Panics
    /// As [`TestInputTopic::pipe_input`].
    pub fn pipe_input_at(&self, key: K, value: V, timestamp: i64) {
        let key = self.key.serialize(&self.topic, &key);
        let value = self.value.serialize(&self.topic, &value);
        let (Ok(key), Ok(value)) = (key, value) else {
            panic!(
                "the test's serdes cannot write its own input to {}",
                self.topic
            );
        };
        self.pipe_raw(key, value, timestamp);
    }

    /// Pipes bytes as they are (to test undecodable input).
    pub fn pipe_raw(&self, key: Option<Bytes>, value: Option<Bytes>, timestamp: i64) {
        *self.next_timestamp.borrow_mut() = timestamp + 1;
        self.inner
            .borrow_mut()
            .pipe(&self.topic, key, value, timestamp);
    }
}

/// Where a test reads a topology's output.
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// Whether nothing waits to be read.
    pub fn is_empty(&self) -> bool {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .is_none_or(VecDeque::is_empty)
    }

    /// The next record, as written (bytes, timestamp, headers).
    pub fn read_record(&self) -> Option<OutputRecord> {
        self.inner
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)
            .and_then(VecDeque::pop_front)
    }

    /// The next record's key and value.
    ///
    /// # Errors
    /// [`StreamsError::Serde`] when they do not read with the topic's serdes.
    pub fn read_key_value(&self) -> Result<Option<(K, V)>, StreamsError> {
        let Some(record) = self.read_record() else {
            return Ok(None);
        };
        let key = self.key.deserialize(&self.topic, record.key.as_deref())?;
        let value = self
            .value
            .deserialize(&self.topic, record.value.as_deref())?;
        Ok(Some((key, value)))
    }

    /// Every waiting record's key and value.
    ///
    /// # Errors
    /// As [`TestOutputTopic::read_key_value`].
    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>, StreamsError> {
        let mut out = Vec::new();
        while let Some(kv) = self.read_key_value()? {
            out.push(kv);
        }
        Ok(out)
    }

    /// Every waiting record's value.
    ///
    /// # Errors
    /// As [`TestOutputTopic::read_key_value`].
    pub fn read_values_to_list(&self) -> Result<Vec<V>, StreamsError> {
        Ok(self
            .read_key_values_to_list()?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }
}
