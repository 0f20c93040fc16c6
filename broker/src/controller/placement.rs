//! Replica placement for new partitions, after Kafka's assignment: leaders spread evenly
//! over the brokers from a start that differs per topic, followers shifted so that the
//! replicas of consecutive partitions land on different broker sets, and with racks given,
//! brokers ordered alternately by rack and each partition's replicas in as many racks as
//! there are (two replicas share a rack only when every rack already has one).

use std::collections::BTreeMap;

/// A broker that may take replicas: its id and rack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) id: i32,
    pub(crate) rack: Option<String>,
}

/// Replicas (preferred leader first) for partitions `first..first + count`, `factor`
/// each, over `brokers`; `start` picks where the round-robin begins (a per-topic number).
pub(crate) fn place(
    brokers: &[Candidate],
    factor: usize,
    first: i32,
    count: i32,
    start: usize,
) -> Result<Vec<Vec<i32>>, String> {
    if brokers.is_empty() {
        return Err("no live broker to place replicas on".into());
    }
    if factor == 0 || factor > brokers.len() {
        return Err(format!(
            "replication factor {factor} needs as many live brokers; there are {}",
            brokers.len()
        ));
    }
    let order = rack_alternating(brokers);
    let racks = order
        .iter()
        .filter_map(|b| b.rack.as_deref())
        .collect::<Vec<_>>();
    let distinct_racks = {
        let mut r = racks.clone();
        r.sort_unstable();
        r.dedup();
        r.len()
    };
    let n = order.len();
    let mut placed = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for p in first..first + count {
        let p = usize::try_from(p).unwrap_or(0);
        let leader = (start + p) % n;
        // The followers' shift moves on once per round of leaders.
        let shift = if n > 1 { (start + p / n) % (n - 1) } else { 0 };
        let mut replicas = vec![order[leader].id];
        let mut used_racks: Vec<Option<&str>> = vec![order[leader].rack.as_deref()];
        let mut k = 0;
        while replicas.len() < factor {
            // Candidates in follower order: leader + 1 + shift, leader + 2 + shift, ...
            let candidate = &order[(leader + 1 + (shift + k) % (n - 1).max(1)) % n];
            k += 1;
            if replicas.contains(&candidate.id) {
                if k > 2 * n {
                    // Every broker tried: take any left (cannot happen with factor <= n).
                    let left = order.iter().find(|b| !replicas.contains(&b.id));
                    replicas.extend(left.map(|b| b.id));
                }
                continue;
            }
            let rack = candidate.rack.as_deref();
            let rack_taken = rack.is_some() && used_racks.contains(&rack);
            if rack_taken && used_racks.len() < distinct_racks && k <= 2 * n {
                continue;
            }
            replicas.push(candidate.id);
            used_racks.push(rack);
        }
        placed.push(replicas);
    }
    Ok(placed)
}

/// The brokers ordered so consecutive ones are in different racks where possible: one
/// from each rack in turn (racks and brokers by id); brokers without a rack after.
fn rack_alternating(brokers: &[Candidate]) -> Vec<Candidate> {
    let mut by_rack: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    let mut no_rack: Vec<&Candidate> = Vec::new();
    for b in brokers {
        match &b.rack {
            Some(rack) => by_rack.entry(rack.as_str()).or_default().push(b),
            None => no_rack.push(b),
        }
    }
    for list in by_rack.values_mut() {
        list.sort_by_key(|b| b.id);
    }
    no_rack.sort_by_key(|b| b.id);
    let mut order = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while order.len() + no_rack.len() < brokers.len() {
        for list in by_rack.values() {
            if let Some(b) = list.get(round) {
                order.push((*b).clone());
            }
        }
        round += 1;
    }
    order.extend(no_rack.into_iter().cloned());
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(spec: &[(i32, Option<&str>)]) -> Vec<Candidate> {
        spec.iter()
            .map(|&(id, rack)| Candidate {
                id,
                rack: rack.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn leaders_spread_and_replicas_are_distinct() {
        let b = brokers(&[(1, None), (2, None), (3, None)]);
        let placed = place(&b, 3, 0, 6, 0).unwrap();
        for replicas in &placed {
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [1, 2, 3], "{placed:?}");
        }
        let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, [1, 2, 3, 1, 2, 3]);
        // Followers shift between rounds, so partition pairs differ.
        assert_ne!(placed[0], placed[3]);
        assert_eq!(place(&b, 1, 0, 3, 1).unwrap(), [vec![2], vec![3], vec![1]]);
        // Later partitions continue the rotation.
        assert_eq!(place(&b, 1, 3, 1, 1).unwrap(), [vec![2]]);
    }

    #[test]
    fn replicas_span_racks() {
        let b = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let rack_of = |id: i32| b.iter().find(|c| c.id == id).unwrap().rack.clone();
        for start in 0..6 {
            for replicas in place(&b, 3, 0, 12, start).unwrap() {
                let mut racks: Vec<_> = replicas.iter().map(|&id| rack_of(id)).collect();
                racks.sort();
                racks.dedup();
                assert_eq!(racks.len(), 3, "{replicas:?} in racks {racks:?}");
            }
        }
        // Two racks, three replicas: both racks used, one twice.
        let two = brokers(&[(1, Some("a")), (2, Some("a")), (3, Some("b"))]);
        for replicas in place(&two, 3, 0, 3, 0).unwrap() {
            assert!(replicas.contains(&3), "{replicas:?}");
        }
    }

    #[test]
    fn impossible_requests_are_errors() {
        let b = brokers(&[(1, None), (2, None)]);
        assert!(place(&b, 3, 0, 1, 0).is_err());
        assert!(place(&b, 0, 0, 1, 0).is_err());
        assert!(place(&[], 1, 0, 1, 0).is_err());
        let one = brokers(&[(7, None)]);
        assert_eq!(place(&one, 1, 0, 2, 5).unwrap(), [vec![7], vec![7]]);
    }
}
