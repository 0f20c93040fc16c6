//! The DSL: [`StreamsBuilder`] makes [`KStream`]s from topics; their operations add
//! processors; [`StreamsBuilder::build`] returns the [`Topology`].
//!
//! ```
//! use strom_streams::serde::StringSerde;
//! use strom_streams::{Consumed, Produced, StreamsBuilder, TopologyTestDriver};
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("sentences", Consumed::with(StringSerde, StringSerde))
//!     .flat_map_values(|line: String| {
//!         line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>()
//!     })
//!     .filter(|_, word| word.len() > 2)
//!     .to("words", Produced::with(StringSerde, StringSerde));
//! let topology = builder.build();
//!
//! let driver = TopologyTestDriver::new(&topology);
//! let input = driver.input_topic("sentences", StringSerde, StringSerde);
//! let output = driver.output_topic("words", StringSerde, StringSerde);
//! input.pipe_input("k".to_owned(), "The quick brown Fox".to_owned());
//! assert_eq!(output.read_values_to_list()?, ["the", "quick", "brown", "fox"]);
//! # Ok::<(), strom_streams::StreamsError>(())
//! ```

mod cogroup;
mod fk_join;
mod global;
mod grouped;
mod join;
mod keyed_time;
mod process;
mod repartition;
mod session;
mod sliding;
mod stream;
mod stream_join;
mod table_join;
mod windowed;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use cogroup::CogroupedKStream;
pub use global::GlobalKTable;
pub use grouped::{Grouped, KGroupedStream, KTable, Materialized};
pub(crate) use process::Punctuate;
pub use process::{Processor, ProcessorContext, PunctuationType, Schedules};
pub use repartition::Repartitioned;
pub use session::{SessionWindowedKStream, SessionWindowedSerde, SessionWindows};
pub use sliding::{SlidingWindowedKStream, SlidingWindows};
pub use stream::{KStream, Predicate};
pub use stream_join::{JoinWindows, StreamJoined};
pub use windowed::{TimeWindowedKStream, TimeWindows, Windowed, WindowedKTable, WindowedSerde};

use crate::serde::Serde;
use crate::state::{StoreKind, StoreSpec};
use crate::topology::{NodeKind, NodeSpec, Topology};

/// How a source reads its topic: the key and value serdes.
pub struct Consumed<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K, V> Consumed<K, V> {
    /// Keys read with `key`, values with `value`.
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Self {
        Consumed {
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }
}

/// How a sink writes its topic: the key and value serdes.
pub struct Produced<K, V> {
    pub(crate) key: Arc<dyn Serde<K>>,
    pub(crate) value: Arc<dyn Serde<V>>,
}

impl<K, V> Produced<K, V> {
    /// Keys written with `key`, values with `value`.
    pub fn with(key: impl Serde<K>, value: impl Serde<V>) -> Self {
        Produced {
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }
}

/// The graph being built, shared by the builder and its streams.
#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<NodeSpec>,
    /// The state stores of the nodes.
    pub(crate) stores: Vec<StoreSpec>,
    /// Repartition topics, named without the application id.
    pub(crate) internal_topics: std::collections::BTreeSet<String>,
    /// Global tables: topic to store name.
    pub(crate) globals: std::collections::BTreeMap<String, String>,
    /// The next index in names (nodes and stores share it, as in Kafka Streams).
    next_index: usize,
}

impl Graph {
    /// Adds a node named Kafka's way (`KSTREAM-FILTER-0000000001`); returns its id.
    pub(crate) fn add(
        &mut self,
        prefix: &str,
        kind: NodeKind,
        build: crate::topology::BuildFn,
    ) -> usize {
        let id = self.nodes.len();
        let name = self.name(prefix);
        self.nodes.push(NodeSpec {
            name,
            kind,
            children: Vec::new(),
            stores: Vec::new(),
            changes_key: false,
            build,
        });
        id
    }

    /// Whether records reaching node `id` may have had their keys changed since they
    /// were read from a topic (a source ends the search: a repartition topic's records
    /// are partitioned by their key).
    pub(crate) fn key_changed_above(&self, id: usize) -> bool {
        let mut stack = vec![id];
        let mut seen = vec![false; self.nodes.len()];
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            if self.nodes[n].changes_key {
                return true;
            }
            let parents = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, p)| p.children.contains(&n));
            stack.extend(parents.map(|(p, _)| p));
        }
        false
    }

    /// Adds a store named `name` (a name the graph gave, or the user's) of `kind`; its
    /// name.
    pub(crate) fn add_store(&mut self, name: String, kind: StoreKind, persistent: bool) -> String {
        if !self.stores.iter().any(|s| s.name == name) {
            self.stores.push(StoreSpec {
                name: name.clone(),
                kind,
                persistent,
            });
        }
        name
    }

    /// The next name with `prefix` (`KSTREAM-AGGREGATE-STATE-STORE-0000000001`).
    pub(crate) fn name(&mut self, prefix: &str) -> String {
        let index = self.next_index;
        self.next_index += 1;
        format!("{prefix}-{index:010}")
    }
}

/// Builds a topology from streams of topics.
#[derive(Default)]
pub struct StreamsBuilder {
    pub(crate) graph: Rc<RefCell<Graph>>,
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        StreamsBuilder::default()
    }

    /// The records of `topic`, read with `consumed`'s serdes.
    pub fn stream<K, V>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + 'static,
        V: Clone + 'static,
    {
        KStream::source(self.graph.clone(), topic, consumed)
    }

    /// The topology built so far.
    pub fn build(self) -> Topology {
        let graph = std::mem::take(&mut *self.graph.borrow_mut());
        Topology {
            nodes: graph.nodes,
            stores: graph.stores,
            internal_topics: graph.internal_topics,
            globals: graph.globals,
        }
    }
}
