//! Table operations: `filter`, `map_values`, and table-table joins (inner, left, outer),
//! each a table whose rows follow their inputs' rows, deletions included.
//!
//! ```text
//!  left row k updated ──▶ look up k in the right table's store ──▶ joined row, or a
//!  left row k deleted ─┘                                           deletion (retraction)
//!  right rows: the same, mirrored; both sides feed one MERGE node
//! ```
//!
//! Both tables must keep a store (tables from topics and aggregations do) and be
//! co-partitioned.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::grouped::{KTable, Lookup};
use super::stream::children;
use crate::processor::{Children, Downstream, Node, PassThrough, RecordContext};
use crate::state::SharedStore;
use crate::topology::{BuildFn, Built, NodeKind, Stores};

/// A table row's two sides to the joined row (`None`: no row).
type Joiner<V, VO, VR> = Arc<dyn Fn(Option<V>, Option<VO>) -> Option<VR> + Send + Sync>;

impl<K, V> KTable<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    /// The rows for which `predicate` holds; a row that stops matching is deleted.
    pub fn filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let predicate = Arc::new(predicate);
        let build: BuildFn = Arc::new(move |built: &[&Built], _: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(TableFilter {
                predicate: predicate.clone(),
                children: children::<K, V>(built),
            }));
            Some(Box::new(node) as Built)
        });
        self.add_child("KTABLE-FILTER", build)
    }

    /// Each row's value mapped.
    pub fn map_values<V2>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> KTable<K, V2>
    where
        V2: Clone + 'static,
    {
        let f = Arc::new(f);
        let build: BuildFn = Arc::new(move |built: &[&Built], _: &mut Stores| {
            let node: Node<K, V> = Rc::new(RefCell::new(TableMapValues {
                f: f.clone(),
                children: children::<K, V2>(built),
            }));
            Some(Box::new(node) as Built)
        });
        self.add_child("KTABLE-MAPVALUES", build)
    }

    /// Rows of both tables with the same key, joined.
    pub fn join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(V, VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v: Option<V>, o: Option<VO>| match (v, o) {
            (Some(v), Some(o)) => Some(joiner(v, o)),
            _ => None,
        });
        self.table_join(other, joiner)
    }

    /// Every row of this table, joined with the other's row of its key if there is one.
    pub fn left_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(V, Option<VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v: Option<V>, o: Option<VO>| v.map(|v| joiner(v, o)));
        self.table_join(other, joiner)
    }

    /// Every key of either table, with the rows each has.
    pub fn outer_join<VO, VR>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<V>, Option<VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(move |v: Option<V>, o: Option<VO>| {
            (v.is_some() || o.is_some()).then(|| joiner(v, o))
        });
        self.table_join(other, joiner)
    }

    fn table_join<VO, VR>(&self, other: &KTable<K, VO>, joiner: Joiner<V, VO, VR>) -> KTable<K, VR>
    where
        VO: Clone + 'static,
        VR: Clone + 'static,
    {
        let (left_lookup, right_lookup) = (self.lookup.clone(), other.lookup.clone());
        let graph = self.graph.clone();
        let mut g = graph.borrow_mut();
        let merge_build: BuildFn = Arc::new(|built: &[&Built], _: &mut Stores| {
            let node: Node<K, VR> = Rc::new(RefCell::new(PassThrough(children::<K, VR>(built))));
            Some(Box::new(node) as Built)
        });
        let merge = g.add("KTABLE-MERGE", NodeKind::Processor, merge_build);
        let (left_joiner, right_joiner) = (joiner.clone(), joiner);
        let lookup = right_lookup.clone();
        let left_build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let other = opened(&lookup, stores)?;
            let node: Node<K, V> = Rc::new(RefCell::new(LeftRows {
                other,
                joiner: left_joiner.clone(),
                children: children::<K, VR>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let lookup = left_lookup.clone();
        let right_build: BuildFn = Arc::new(move |built: &[&Built], stores: &mut Stores| {
            let other = opened(&lookup, stores)?;
            let node: Node<K, VO> = Rc::new(RefCell::new(RightRows {
                other,
                joiner: right_joiner.clone(),
                children: children::<K, VR>(built),
            }));
            Some(Box::new(node) as Built)
        });
        let left = g.add("KTABLE-JOINTHIS", NodeKind::Processor, left_build);
        let right = g.add("KTABLE-JOINOTHER", NodeKind::Processor, right_build);
        if let Some(l) = &right_lookup {
            g.nodes[left].stores.push(l.store.clone());
        }
        if let Some(l) = &left_lookup {
            g.nodes[right].stores.push(l.store.clone());
        }
        for id in [left, right] {
            g.nodes[id].children.push(merge);
        }
        g.nodes[self.node].children.push(left);
        g.nodes[other.node].children.push(right);
        drop(g);
        KTable::of(graph, merge, None)
    }
}

/// The other table's lookup and its store in this task (`None`: it keeps none, and every
/// lookup misses with an error).
type Other<K, V> = Option<(Lookup<K, V>, SharedStore)>;

fn opened<K, V>(lookup: &Option<Lookup<K, V>>, stores: &mut Stores) -> Option<Other<K, V>> {
    match lookup {
        Some(l) => Some(Some((l.clone(), stores.get(&l.store)?))),
        None => Some(None),
    }
}

/// The other table's current row of `key`.
fn row<K: 'static, V: 'static>(other: &Other<K, V>, ctx: &mut RecordContext, key: &K) -> Option<V> {
    match other {
        Some((lookup, store)) => lookup.get(store, ctx, key),
        None => {
            ctx.errors
                .push("a table join with a table that keeps no store".to_owned());
            None
        }
    }
}

/// Emits the joined row, or its deletion when the join has none.
fn emit<K: Clone, VR: Clone>(
    children: &Children<K, VR>,
    ctx: &mut RecordContext,
    key: K,
    joined: Option<VR>,
) {
    match joined {
        Some(joined) => children.forward(ctx, key, joined),
        None => children.retract(ctx, key),
    }
}

/// The left table's rows as a join takes them.
struct LeftRows<K, V, VO, VR> {
    other: Other<K, VO>,
    joiner: Joiner<V, VO, VR>,
    children: Children<K, VR>,
}

impl<K: Clone + 'static, V, VO: 'static, VR: Clone> Downstream<K, V> for LeftRows<K, V, VO, VR> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let other = row(&self.other, ctx, &key);
        emit(&self.children, ctx, key, (self.joiner)(Some(value), other));
    }

    fn retract(&mut self, ctx: &mut RecordContext, key: K) {
        let other = row(&self.other, ctx, &key);
        emit(&self.children, ctx, key, (self.joiner)(None, other));
    }
}

/// The right table's rows as a join takes them.
struct RightRows<K, V, VO, VR> {
    other: Other<K, V>,
    joiner: Joiner<V, VO, VR>,
    children: Children<K, VR>,
}

impl<K: Clone + 'static, V: 'static, VO, VR: Clone> Downstream<K, VO> for RightRows<K, V, VO, VR> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: VO) {
        let other = row(&self.other, ctx, &key);
        emit(&self.children, ctx, key, (self.joiner)(other, Some(value)));
    }

    fn retract(&mut self, ctx: &mut RecordContext, key: K) {
        let other = row(&self.other, ctx, &key);
        emit(&self.children, ctx, key, (self.joiner)(other, None));
    }
}

/// Whether a row stays in a filtered table.
type RowPredicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// A table filter as built for a task.
struct TableFilter<K, V> {
    predicate: RowPredicate<K, V>,
    children: Children<K, V>,
}

impl<K: Clone, V: Clone> Downstream<K, V> for TableFilter<K, V> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        if (self.predicate)(&key, &value) {
            self.children.forward(ctx, key, value);
        } else {
            self.children.retract(ctx, key);
        }
    }

    fn retract(&mut self, ctx: &mut RecordContext, key: K) {
        self.children.retract(ctx, key);
    }
}

/// A table's `map_values` as built for a task.
struct TableMapValues<V, V2, K> {
    f: Arc<dyn Fn(V) -> V2 + Send + Sync>,
    children: Children<K, V2>,
}

impl<K: Clone, V, V2: Clone> Downstream<K, V> for TableMapValues<V, V2, K> {
    fn process(&mut self, ctx: &mut RecordContext, key: K, value: V) {
        let mapped = (self.f)(value);
        self.children.forward(ctx, key, mapped);
    }

    fn retract(&mut self, ctx: &mut RecordContext, key: K) {
        self.children.retract(ctx, key);
    }
}
