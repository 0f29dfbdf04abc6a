//! What every request does first: find its namespace, match rules, and
//! keep track of what it already dispatched.

use std::cell::RefCell;
use std::fmt;

use mixer_adapters::Status;
use mixer_attributes::{AttrId, Bag, Condition, ReferencedAttributes, ValueRef};
use mixer_config::expr::EvalError;
use mixer_proto::code;
use std::time::Duration;

use crate::snapshot::CompiledRule;

thread_local! {
    /// Reused per thread so that recording references allocates only
    /// while the set grows to its steady size.
    pub(crate) static SCRATCH: RefCell<ReferencedAttributes> = RefCell::new(ReferencedAttributes::new());
}

/// The attributes that choose a request's namespace.
#[derive(Copy, Clone, Debug)]
pub(crate) struct NamespaceIds {
    reporter_kind: AttrId,
    source: AttrId,
    destination: AttrId,
}

impl NamespaceIds {
    pub(crate) fn new() -> NamespaceIds {
        NamespaceIds {
            reporter_kind: AttrId::of("context.reporter.kind"),
            source: AttrId::of("source.namespace"),
            destination: AttrId::of("destination.namespace"),
        }
    }

    /// `source.namespace` for outbound reports, `destination.namespace`
    /// otherwise; the attributes read are recorded.
    pub(crate) fn namespace<'b, B: Bag + ?Sized>(
        &self,
        bag: &'b B,
        refs: &mut ReferencedAttributes,
    ) -> Option<&'b str> {
        let kind = get(bag, self.reporter_kind, refs).and_then(|v| v.as_str());
        let id = if kind == Some("outbound") {
            self.source
        } else {
            self.destination
        };
        get(bag, id, refs).and_then(|v| v.as_str())
    }
}

fn get<'b, B: Bag + ?Sized>(
    bag: &'b B,
    id: AttrId,
    refs: &mut ReferencedAttributes,
) -> Option<ValueRef<'b>> {
    let v = bag.get(id);
    refs.record(
        id,
        if v.is_some() {
            Condition::Exact
        } else {
            Condition::Absence
        },
    );
    v
}

/// Whether `rule` applies to `bag`.
pub(crate) fn matches<B: Bag + ?Sized>(
    rule: &CompiledRule,
    bag: &B,
    refs: &mut ReferencedAttributes,
) -> Result<bool, EvalError> {
    match &rule.condition {
        None => Ok(true),
        Some(c) => c.eval_bool(bag, refs),
    }
}

/// The (handler, instance) pairs a request already dispatched, by pair id.
pub(crate) struct Seen {
    small: [u64; 4],
    big: Vec<u64>,
}

impl Seen {
    pub(crate) fn new(pairs: usize) -> Seen {
        Seen {
            small: [0; 4],
            big: if pairs > 256 {
                vec![0; pairs.div_ceil(64)]
            } else {
                Vec::new()
            },
        }
    }

    /// True the first time `id` is seen.
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let (w, b) = ((id / 64) as usize, 1u64 << (id % 64));
        let words: &mut [u64] = if self.big.is_empty() {
            &mut self.small
        } else {
            &mut self.big
        };
        let Some(word) = words.get_mut(w) else {
            return true;
        };
        let fresh = *word & b == 0;
        *word |= b;
        fresh
    }
}

/// Merges check and quota answers in request order (rule order, then
/// action order), whatever order they completed in.
#[derive(Default)]
pub(crate) struct Merge {
    min_duration: Option<Duration>,
    min_uses: Option<i32>,
    first: Option<(u32, i32, bool)>,
    denials: Vec<(u32, String)>,
    pub(crate) errors: bool,
}

impl Merge {
    /// A handler's answer at position `seq`.
    pub(crate) fn answer(
        &mut self,
        seq: u32,
        who: &str,
        status: &Status,
        dur: Duration,
        uses: i32,
    ) {
        self.min_duration = Some(self.min_duration.map_or(dur, |d| d.min(dur)));
        self.min_uses = Some(self.min_uses.map_or(uses, |u| u.min(uses)));
        if !status.is_ok() {
            self.deny(seq, who, status.code, &status.message, false);
        }
    }

    /// A failure at position `seq` (a handler error, timeout or panic; a
    /// field that could not be built): valid for nothing, so never cached.
    pub(crate) fn error(&mut self, seq: u32, who: &str, code: i32, message: impl fmt::Display) {
        self.errors = true;
        self.min_duration = Some(Duration::ZERO);
        self.min_uses = Some(0);
        let code = if code == code::OK {
            code::INTERNAL
        } else {
            code
        };
        self.deny(seq, who, code, &message.to_string(), true);
    }

    /// A denial that is not a handler's answer (a rule failing closed).
    pub(crate) fn reject(&mut self, seq: u32, who: &str, code: i32, message: impl fmt::Display) {
        self.deny(seq, who, code, &message.to_string(), false);
    }

    fn deny(&mut self, seq: u32, who: &str, code: i32, message: &str, from_error: bool) {
        if self.first.is_none_or(|(s, _, _)| seq < s) {
            self.first = Some((seq, code, from_error));
        }
        let text = if message.is_empty() {
            format!("{who}: {}", code::name(code))
        } else {
            format!("{who}: {message}")
        };
        self.denials.push((seq, text));
    }

    /// Whether anything answered or failed.
    pub(crate) fn answered(&self) -> bool {
        self.min_duration.is_some() || self.first.is_some()
    }

    /// The merged status, validity, use count, and whether the status came
    /// from a failure rather than a denial.
    pub(crate) fn finish(
        mut self,
        default_duration: Duration,
        default_uses: i32,
    ) -> (Status, Duration, i32, bool) {
        let duration = self.min_duration.unwrap_or(default_duration);
        let uses = self.min_uses.unwrap_or(default_uses);
        match self.first {
            None => (Status::OK, duration, uses, false),
            Some((_, code, from_error)) => {
                self.denials.sort_by_key(|(s, _)| *s);
                let mut message = String::new();
                for (i, (_, d)) in self.denials.iter().enumerate() {
                    if i > 0 {
                        message.push_str(", ");
                    }
                    message.push_str(d);
                }
                (Status::new(code, message), duration, uses, from_error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_small_and_big() {
        for n in [3, 256, 1000] {
            let mut s = Seen::new(n);
            assert!(s.insert(1));
            assert!(!s.insert(1));
            assert!(s.insert((n - 1) as u32));
            assert!(!s.insert((n - 1) as u32));
        }
    }

    #[test]
    fn merge_orders_by_position_not_arrival() {
        let mut m = Merge::default();
        let s = |c, msg: &str| Status::new(c, msg);
        m.answer(
            2,
            "c",
            &s(code::PERMISSION_DENIED, "late"),
            Duration::from_secs(9),
            5,
        );
        m.answer(0, "a", &Status::OK, Duration::from_secs(3), 50);
        m.answer(
            1,
            "b",
            &s(code::FAILED_PRECONDITION, ""),
            Duration::from_secs(7),
            2,
        );
        let (st, d, u, e) = m.finish(Duration::from_secs(60), 10_000);
        assert_eq!(st.code, code::FAILED_PRECONDITION);
        assert_eq!(st.message, "b: FAILED_PRECONDITION, c: late");
        assert_eq!((d, u, e), (Duration::from_secs(3), 2, false));
    }
}
