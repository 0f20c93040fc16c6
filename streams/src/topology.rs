//! A topology: the graph the DSL built, as node descriptions plus a way to build each
//! node for a task.
//!
//! Each node keeps a build function that, given its children as built for a task, returns
//! itself built (type-erased as `Box<dyn Any>` holding a typed [`Node`], downcast once per
//! task at build time, never per record). [`Topology::describe`] prints Kafka Streams'
//! format, sub-topology by sub-topology.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use std::cell::RefCell;
use std::rc::Rc;

use crate::processor::RecordContext;
use crate::state::{SharedStore, StateStore, StoreEnv, StoreError, StoreSpec};

/// A built node, type-erased: a `Node<K, V>` of its input types, or for a source a
/// `SourceNode`.
pub(crate) type Built = Box<dyn Any>;

/// Builds a node from its children as built (in the order they were added), with the
/// task's state stores (created by whichever node needs one first).
pub(crate) type BuildFn = Arc<dyn Fn(&[&Built], &mut Stores) -> Option<Built> + Send + Sync>;

/// A task's state stores, opened on first use by the nodes that share them.
pub(crate) struct Stores {
    env: StoreEnv,
    specs: HashMap<String, StoreSpec>,
    opened: BTreeMap<String, SharedStore>,
    /// The first store that failed to open.
    error: Option<StoreError>,
    /// Nodes with punctuations (the processor API's).
    pub(crate) punctuators: Vec<Punctuator>,
}

/// A node the task punctuates.
pub(crate) type Punctuator = Rc<RefCell<dyn crate::dsl::Punctuate>>;

impl Stores {
    /// Store `name` of the topology, opened if no node opened it yet; `None` when it is
    /// not one of the topology's (a DSL bug) or failed to open (kept for the task).
    pub(crate) fn get(&mut self, name: &str) -> Option<SharedStore> {
        if let Some(store) = self.opened.get(name).or_else(|| self.env.globals.get(name)) {
            return Some(store.clone());
        }
        let spec = self.specs.get(name)?;
        match self.env.open(spec) {
            Ok(backend) => {
                let store = Rc::new(RefCell::new(StateStore::new(name, backend)));
                self.opened.insert(name.to_owned(), store.clone());
                Some(store)
            }
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }
}

/// A topology built for one task: its sources by topic and its stores by name.
pub(crate) struct Instance {
    pub(crate) sources: HashMap<String, Vec<SourceNode>>,
    pub(crate) stores: BTreeMap<String, SharedStore>,
    pub(crate) punctuators: Vec<Punctuator>,
}

/// What a node is, for `describe` and the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Source { topics: Vec<String> },
    Processor,
    Sink { topic: String },
}

/// One node of the graph.
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) children: Vec<usize>,
    /// The state stores it uses, by name.
    pub(crate) stores: Vec<String>,
    /// Whether it may change record keys (`map`, `flat_map`, `select_key`): grouping below
    /// it goes through a repartition topic.
    pub(crate) changes_key: bool,
    pub(crate) build: BuildFn,
}

/// A source as built for a task: turns a topic's bytes into typed records.
pub(crate) trait SourceInput {
    fn process(&mut self, ctx: &mut RecordContext, key: Option<&[u8]>, value: Option<&[u8]>);
}

/// A built source.
pub(crate) type SourceNode = std::rc::Rc<std::cell::RefCell<dyn SourceInput>>;

/// A processing topology, built with [`StreamsBuilder`](crate::StreamsBuilder) and run by
/// [`TopologyTestDriver`](crate::TopologyTestDriver) (and the streams runtime).
pub struct Topology {
    pub(crate) nodes: Vec<NodeSpec>,
    /// The state stores its nodes use.
    pub(crate) stores: Vec<StoreSpec>,
    /// Its repartition topics, named without the `<application.id>-` prefix the runtime
    /// gives them.
    pub(crate) internal_topics: BTreeSet<String>,
    /// Global tables: their topic and store (read in full by every instance).
    pub(crate) globals: BTreeMap<String, String>,
}

impl Topology {
    /// The topics read by the topology's sources.
    pub fn source_topics(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Source { topics } => Some(topics.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The repartition topics the topology writes and reads, as named in it (the
    /// runtime prefixes them with `<application.id>-`).
    pub fn internal_topics(&self) -> &BTreeSet<String> {
        &self.internal_topics
    }

    /// The names of the topology's state stores (those of its tasks), in the order they
    /// were added.
    pub fn state_stores(&self) -> Vec<&str> {
        self.stores.iter().map(|s| s.name.as_str()).collect()
    }

    /// The global tables' topics, with the name of each one's store.
    pub fn global_topics(&self) -> &BTreeMap<String, String> {
        &self.globals
    }

    /// The topics written by its sinks.
    pub fn sink_topics(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Sink { topic } => Some(topic.clone()),
                _ => None,
            })
            .collect()
    }

    /// The source topics of each sub-topology that keeps state: topics that must be
    /// co-partitioned, since one task reads their same-numbered partitions together.
    pub(crate) fn copartitioned_sources(&self) -> Vec<BTreeSet<String>> {
        self.sub_topologies()
            .into_iter()
            .filter(|ids| ids.iter().any(|&i| !self.nodes[i].stores.is_empty()))
            .map(|ids| {
                ids.iter()
                    .filter_map(|&i| match &self.nodes[i].kind {
                        NodeKind::Source { topics } => Some(topics.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect()
            })
            .collect()
    }

    /// The topology in Kafka Streams' `describe()` format.
    pub fn describe(&self) -> TopologyDescription {
        TopologyDescription {
            text: self.describe_text(),
        }
    }

    /// Builds every node for one task, its stores where `env` says.
    ///
    /// # Errors
    /// A persistent store that cannot be opened.
    pub(crate) fn instantiate(&self, env: &StoreEnv) -> Result<Instance, StoreError> {
        let mut built: HashMap<usize, Built> = HashMap::new();
        let mut stores = Stores {
            env: env.clone(),
            specs: self
                .stores
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
            opened: BTreeMap::new(),
            error: None,
            punctuators: Vec::new(),
        };
        let mut sources: HashMap<String, Vec<SourceNode>> = HashMap::new();
        for id in self.post_order() {
            let spec = &self.nodes[id];
            let children: Vec<&Built> = spec.children.iter().filter_map(|c| built.get(c)).collect();
            let Some(node) = (spec.build)(&children, &mut stores) else {
                continue;
            };
            if let NodeKind::Source { topics } = &spec.kind {
                if let Some(source) = node.downcast_ref::<SourceNode>() {
                    for topic in topics {
                        sources
                            .entry(topic.clone())
                            .or_default()
                            .push(source.clone());
                    }
                }
            }
            built.insert(id, node);
        }
        if let Some(e) = stores.error {
            return Err(e);
        }
        Ok(Instance {
            sources,
            stores: stores.opened,
            punctuators: stores.punctuators,
        })
    }

    /// Node ids, every node after all its children.
    fn post_order(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut seen = vec![false; self.nodes.len()];
        fn visit(t: &Topology, id: usize, seen: &mut [bool], order: &mut Vec<usize>) {
            if seen[id] {
                return;
            }
            seen[id] = true;
            for &c in &t.nodes[id].children {
                visit(t, c, seen, order);
            }
            order.push(id);
        }
        for id in 0..self.nodes.len() {
            visit(self, id, &mut seen, &mut order);
        }
        order
    }

    /// Parents of each node.
    fn parents(&self) -> Vec<Vec<usize>> {
        let mut parents = vec![Vec::new(); self.nodes.len()];
        for (id, node) in self.nodes.iter().enumerate() {
            for &c in &node.children {
                parents[c].push(id);
            }
        }
        parents
    }

    /// Connected components of the graph (Kafka's sub-topologies), each in node order:
    /// nodes linked as parent and child, or sharing a state store (a join and the table
    /// it looks up), are in the same one.
    fn sub_topologies(&self) -> Vec<Vec<usize>> {
        let parents = self.parents();
        let mut by_store: HashMap<&str, Vec<usize>> = HashMap::new();
        for (id, node) in self.nodes.iter().enumerate() {
            for store in &node.stores {
                by_store.entry(store.as_str()).or_default().push(id);
            }
        }
        let mut component = vec![usize::MAX; self.nodes.len()];
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for start in 0..self.nodes.len() {
            if component[start] != usize::MAX {
                continue;
            }
            let mut stack = vec![start];
            while let Some(id) = stack.pop() {
                if component[id] != usize::MAX {
                    continue;
                }
                component[id] = start;
                stack.extend(self.nodes[id].children.iter().copied());
                stack.extend(parents[id].iter().copied());
                for store in &self.nodes[id].stores {
                    stack.extend(by_store.get(store.as_str()).into_iter().flatten().copied());
                }
            }
        }
        for (id, &c) in component.iter().enumerate() {
            groups.entry(c).or_default().push(id);
        }
        groups.into_values().collect()
    }

    fn describe_text(&self) -> String {
        let parents = self.parents();
        let names = |ids: &[usize]| {
            ids.iter()
                .map(|&i| self.nodes[i].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::from("Topologies:\n");
        for (n, ids) in self.sub_topologies().into_iter().enumerate() {
            out.push_str(&format!("   Sub-topology: {n}\n"));
            for id in ids {
                let node = &self.nodes[id];
                let head = match &node.kind {
                    NodeKind::Source { topics } => {
                        format!("Source: {} (topics: [{}])", node.name, topics.join(", "))
                    }
                    NodeKind::Processor => format!(
                        "Processor: {} (stores: [{}])",
                        node.name,
                        node.stores.join(", ")
                    ),
                    NodeKind::Sink { topic } => format!("Sink: {} (topic: {topic})", node.name),
                };
                out.push_str(&format!("    {head}\n"));
                if !matches!(node.kind, NodeKind::Sink { .. }) {
                    let children = names(&node.children).if_empty("none");
                    out.push_str(&format!("      --> {children}\n"));
                }
                if !parents[id].is_empty() {
                    out.push_str(&format!("      <-- {}\n", names(&parents[id])));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// `text`, or `fallback` when it is empty.
trait IfEmpty {
    fn if_empty(self, fallback: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, fallback: &str) -> String {
        if self.is_empty() {
            fallback.to_owned()
        } else {
            self
        }
    }
}

/// What [`Topology::describe`] returns: printable in Kafka Streams' format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyDescription {
    text: String,
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
