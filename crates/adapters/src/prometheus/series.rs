//! Metric families and their series: recording, expiry, and the snapshot the
//! text encoder reads.
//!
//! We keep our own series maps (rather than a prometheus-client registry)
//! because expiry must remove individual idle series, and because the hot
//! path should cost one hash lookup under a read lock plus an atomic update.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

/// A label value as it goes into a series key.
///
/// Anything `Display` is one; the handler's own label type writes strings
/// and integers without the formatting machinery, which cost as much as
/// the series lookup on the recording path.
pub(crate) trait LabelValue {
    /// Appends the value's text to `out`.
    fn push_to(&self, out: &mut String);
}

impl<T: std::fmt::Display> LabelValue for T {
    fn push_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

/// What a family records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Distribution,
}

impl Kind {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Distribution => "histogram",
        }
    }
}

/// One metric family: its exposed name, labels and series.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) kind: Kind,
    pub(crate) label_names: Vec<String>,
    /// Finite upper bounds, strictly increasing (the `+Inf` bucket is
    /// implicit). Empty unless the kind is a distribution.
    pub(crate) bounds: Arc<[f64]>,
    max_series: usize,
    series: RwLock<HashMap<Box<str>, Arc<Series>>>,
}

#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) labels: Box<[Box<str>]>,
    last_update_ms: AtomicU64,
    pub(crate) value: SeriesValue,
}

#[derive(Debug)]
pub(crate) enum SeriesValue {
    /// f64 bits.
    Scalar(AtomicU64),
    Histogram(Mutex<Histogram>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    /// Per-bucket (not cumulative) counts; one more than the bounds, the
    /// last being `+Inf`.
    pub(crate) counts: Vec<u64>,
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

/// Why a value was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// The family already holds its maximum number of series.
    TooManySeries,
}

impl Family {
    pub(crate) fn new(
        name: String,
        help: String,
        kind: Kind,
        label_names: Vec<String>,
        bounds: Vec<f64>,
        max_series: usize,
    ) -> Family {
        Family {
            name,
            help,
            kind,
            label_names,
            bounds: bounds.into(),
            max_series,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Records `value` into the series with these label values (one per
    /// label name, in order). `key` is scratch space reused across calls so
    /// that an existing series costs no allocation.
    pub(crate) fn record<I, D>(
        &self,
        label_values: I,
        value: f64,
        now_ms: u64,
        key: &mut String,
    ) -> Result<(), RecordError>
    where
        I: IntoIterator<Item = D>,
        D: LabelValue,
    {
        key.clear();
        for v in label_values {
            let start = key.len();
            v.push_to(key);
            let len = key.len() - start;
            // Length suffix keeps the key unambiguous whatever the values
            // contain.
            key.push('\0');
            crate::decimal::push_unsigned(key, len as u64);
            key.push('\0');
        }
        if let Some(s) = self.series.read().get(key.as_str()) {
            s.apply(self.kind, &self.bounds, value, now_ms);
            return Ok(());
        }
        let mut map = self.series.write();
        if let Some(s) = map.get(key.as_str()) {
            s.apply(self.kind, &self.bounds, value, now_ms);
            return Ok(());
        }
        if map.len() >= self.max_series {
            return Err(RecordError::TooManySeries);
        }
        let labels = split_key(key);
        let series = Arc::new(Series {
            labels,
            last_update_ms: AtomicU64::new(now_ms),
            value: match self.kind {
                Kind::Distribution => SeriesValue::Histogram(Mutex::new(Histogram {
                    counts: vec![0; self.bounds.len() + 1],
                    sum: 0.0,
                    count: 0,
                })),
                _ => SeriesValue::Scalar(AtomicU64::new(0f64.to_bits())),
            },
        });
        series.apply(self.kind, &self.bounds, value, now_ms);
        map.insert(key.as_str().into(), series);
        Ok(())
    }

    /// Removes the series last updated before `cutoff_ms`; returns how many.
    pub(crate) fn expire(&self, cutoff_ms: u64) -> usize {
        let mut map = self.series.write();
        let before = map.len();
        map.retain(|_, s| s.last_update_ms.load(Ordering::Relaxed) >= cutoff_ms);
        before - map.len()
    }

    /// The series, sorted by label values (a stable exposition order).
    pub(crate) fn snapshot(&self) -> Vec<Arc<Series>> {
        let mut v: Vec<Arc<Series>> = self.series.read().values().cloned().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.series.read().len()
    }
}

/// Splits a key built by [`Family::record`] back into its label values,
/// reading from the end (each value is followed by `\0<len>\0`).
fn split_key(key: &str) -> Box<[Box<str>]> {
    let mut out = Vec::new();
    let mut end = key.len();
    while end > 0 {
        // key[..end] ends with "\0<len>\0".
        let body = &key[..end - 1];
        let sep = body.rfind('\0').unwrap_or(0);
        let len: usize = body[sep + 1..].parse().unwrap_or(0);
        let start = sep.saturating_sub(len);
        out.push(key[start..sep].into());
        end = start;
    }
    out.reverse();
    out.into_boxed_slice()
}

impl Series {
    fn apply(&self, kind: Kind, bounds: &[f64], value: f64, now_ms: u64) {
        self.last_update_ms.fetch_max(now_ms, Ordering::Relaxed);
        match &self.value {
            SeriesValue::Scalar(bits) => match kind {
                Kind::Gauge => bits.store(value.to_bits(), Ordering::Relaxed),
                _ => {
                    let _ = bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                        Some((f64::from_bits(b) + value).to_bits())
                    });
                }
            },
            SeriesValue::Histogram(h) => {
                // `le` is inclusive: a value equal to a bound falls in it.
                let idx = bounds.partition_point(|b| *b < value);
                let mut h = h.lock();
                h.counts[idx] += 1;
                h.sum += value;
                h.count += 1;
            }
        }
    }

    pub(crate) fn scalar(&self) -> f64 {
        match &self.value {
            SeriesValue::Scalar(bits) => f64::from_bits(bits.load(Ordering::Relaxed)),
            SeriesValue::Histogram(h) => h.lock().sum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(kind: Kind, bounds: Vec<f64>) -> Family {
        Family::new(
            "m".into(),
            String::new(),
            kind,
            vec!["a".into(), "b".into()],
            bounds,
            3,
        )
    }

    #[test]
    fn keys_split_back_whatever_the_values_contain() {
        let f = fam(Kind::Counter, vec![]);
        let mut key = String::new();
        for vals in [["", ""], ["a\0", "3\0"], ["x\u{0}1\u{0}", ""]] {
            f.record(vals, 1.0, 0, &mut key).unwrap();
            let labels = split_key(&key);
            assert_eq!(&*labels[0], vals[0]);
            assert_eq!(&*labels[1], vals[1]);
        }
        assert_eq!(f.len(), 3);
    }

    proptest::proptest! {
        #[test]
        fn keys_are_unambiguous(a in proptest::collection::vec(".*", 0..4),
                                b in proptest::collection::vec(".*", 0..4)) {
            let f = Family::new("m".into(), String::new(), Kind::Counter, vec![], vec![], 10);
            let mut ka = String::new();
            let mut kb = String::new();
            f.record(&a, 1.0, 0, &mut ka).unwrap();
            f.record(&b, 1.0, 0, &mut kb).unwrap();
            proptest::prop_assert_eq!(ka == kb, a == b);
            let back: Vec<String> = split_key(&ka).iter().map(|s| s.to_string()).collect();
            proptest::prop_assert_eq!(back, a);
        }
    }

    #[test]
    fn counter_adds_gauge_sets_histogram_observes() {
        let mut key = String::new();
        let c = fam(Kind::Counter, vec![]);
        c.record(["1", "2"], 2.0, 0, &mut key).unwrap();
        c.record(["1", "2"], 3.5, 0, &mut key).unwrap();
        assert_eq!(c.snapshot()[0].scalar(), 5.5);

        let g = fam(Kind::Gauge, vec![]);
        g.record(["1", "2"], 2.0, 0, &mut key).unwrap();
        g.record(["1", "2"], -1.0, 0, &mut key).unwrap();
        assert_eq!(g.snapshot()[0].scalar(), -1.0);

        let h = fam(Kind::Distribution, vec![1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 9.0] {
            h.record(["1", "2"], v, 0, &mut key).unwrap();
        }
        let s = h.snapshot();
        let SeriesValue::Histogram(m) = &s[0].value else {
            panic!("not a histogram")
        };
        let m = m.lock();
        assert_eq!(m.counts, vec![2, 2, 1]);
        assert_eq!(m.count, 5);
        assert_eq!(m.sum, 14.0);
    }

    #[test]
    fn series_are_bounded_and_expire_when_idle() {
        let f = fam(Kind::Counter, vec![]);
        let mut key = String::new();
        for (i, t) in [(1, 10), (2, 20), (3, 30)] {
            f.record([i, i], 1.0, t, &mut key).unwrap();
        }
        assert_eq!(
            f.record([4, 4], 1.0, 40, &mut key),
            Err(RecordError::TooManySeries)
        );
        // An update refreshes the series' age.
        f.record([1, 1], 1.0, 50, &mut key).unwrap();
        assert_eq!(f.expire(25), 1);
        let left: Vec<_> = f.snapshot().iter().map(|s| s.labels[0].clone()).collect();
        assert_eq!(left, vec!["1".into(), "3".into()] as Vec<Box<str>>);
        f.record([4, 4], 1.0, 60, &mut key).unwrap();
    }
}
