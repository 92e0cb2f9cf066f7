//! Duplicate removal and membership for `|`, `distinct()`, `intersect()` and friends.
//! Comparing every pair is quadratic, and a ValueSet's `expansion.contains.code` has
//! thousands of items, so larger collections are hashed on a key that agrees with `=`.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::Value;

use crate::Item;
use crate::ops::{self, Prim, prim};

/// Below this size pairwise comparison is cheaper than hashing.
const SMALL: usize = 8;

#[derive(PartialEq, Eq, Hash)]
enum Key<'x> {
    Bool(bool),
    Int(i64),
    Dec(u64),
    Str(&'x str),
    Json(JsonKey<'x>),
    Ref(&'x str, &'x str),
}

struct JsonKey<'x> {
    hash: u64,
    value: &'x Value,
}

impl PartialEq for JsonKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.value, other.value) || self.value == other.value
    }
}

impl Eq for JsonKey<'_> {}

impl Hash for JsonKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The hash key of an item, or None for dates and times, whose equality depends on
/// precision and time zones, and quantities, whose equality converts units: neither has
/// a canonical key.
fn key<'x>(item: &'x Item<'_>) -> Option<Key<'x>> {
    Some(match prim(item) {
        Prim::Bool(b) => Key::Bool(b),
        Prim::Int(i) => Key::Int(i),
        // 1.0 = 1, so integral decimals share the integer's key.
        Prim::Dec(d) => match ops::in_i64(d) {
            Some(i) => Key::Int(i),
            None if d.is_nan() => return None,
            None => Key::Dec(d.to_bits()),
        },
        Prim::Str(s) => Key::Str(s),
        Prim::Complex(value) => Key::Json(JsonKey {
            hash: json_hash(value),
            value,
        }),
        Prim::Ref(t, id) => Key::Ref(t, id),
        Prim::Temporal(..) | Prim::Quantity(..) => return None,
    })
}

/// A structural hash that agrees with `Value`'s equality (object key order is ignored).
fn json_hash(value: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    match value {
        Value::Null => 0u8.hash(&mut h),
        Value::Bool(b) => (1u8, b).hash(&mut h),
        Value::Number(n) => (2u8, n.as_f64().map(f64::to_bits)).hash(&mut h),
        Value::String(s) => (3u8, s).hash(&mut h),
        Value::Array(items) => {
            (4u8, items.len()).hash(&mut h);
            for item in items {
                json_hash(item).hash(&mut h);
            }
        }
        Value::Object(map) => {
            let mut sum = 0u64;
            for (k, v) in map {
                let mut eh = DefaultHasher::new();
                k.hash(&mut eh);
                json_hash(v).hash(&mut eh);
                sum = sum.wrapping_add(eh.finish());
            }
            (5u8, map.len(), sum).hash(&mut h);
        }
    }
    h.finish()
}

fn keys<'x>(items: &'x [Item<'_>]) -> Option<Vec<Key<'x>>> {
    if items.len() <= SMALL {
        return None;
    }
    items.iter().map(key).collect()
}

/// The items without later duplicates, in their original order.
pub(crate) fn distinct(items: Vec<Item<'_>>) -> Vec<Item<'_>> {
    if items.len() < 2 {
        return items;
    }
    let keep: Vec<bool> = match keys(&items) {
        Some(keys) => {
            let mut seen = HashSet::with_capacity(keys.len());
            keys.into_iter().map(|k| seen.insert(k)).collect()
        }
        None => (0..items.len())
            .map(|i| {
                !items[..i]
                    .iter()
                    .any(|x| ops::item_eq(x, &items[i]) == Some(true))
            })
            .collect(),
    };
    let mut keep = keep.into_iter();
    let mut items = items;
    items.retain(|_| keep.next().unwrap_or(false));
    items
}

/// Membership tests against one collection, hashed when it is large.
pub(crate) struct Lookup<'x> {
    items: &'x [Item<'x>],
    set: Option<HashSet<Key<'x>>>,
}

impl<'x> Lookup<'x> {
    pub fn new(items: &'x [Item<'x>]) -> Self {
        let set = keys(items).map(|k| k.into_iter().collect());
        Lookup { items, set }
    }

    pub fn contains(&self, item: &Item<'_>) -> bool {
        if let (Some(set), Some(k)) = (&self.set, key(item)) {
            return set.contains(&k);
        }
        ops::contains(self.items, item)
    }
}
