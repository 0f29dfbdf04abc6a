//! The statsd handler: formats each metric instance as a line, packs lines
//! into datagrams and sends them without ever waiting.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mixer_attributes::{Value, ValueRef};
use parking_lot::Mutex;

use crate::template::{MetricInstance, MetricRef, ReportBatch, ReportRefs, Template};
use crate::{Answer, BuildEnv, Counter, Error, Handler};

use super::packer::Packer;
use super::params::{MetricInfo, MetricType, StatsdParams};

/// A built statsd handler.
pub struct StatsdHandler {
    inner: Arc<Inner>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Inner {
    prefix: String,
    rate: f64,
    metrics: HashMap<String, MetricInfo>,
    packer: Mutex<Packer>,
    socket: OnceLock<UdpSocket>,
    rng: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    invalid: AtomicU64,
    unknown: AtomicU64,
    send_errors: AtomicU64,
    resolve_errors: AtomicU64,
}

thread_local! {
    // Scratch for one line, so that formatting allocates nothing.
    static LINE: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

fn connect(to: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let s = UdpSocket::bind(local)?;
    s.connect(to)?;
    // Sends never wait: a full socket buffer drops the datagram (counted).
    s.set_nonblocking(true)?;
    Ok(s)
}

impl StatsdHandler {
    /// Builds the handler. An address that is an IP literal is connected
    /// now; a host name is resolved in the background (lines sent before
    /// that are buffered up to one datagram, then dropped and counted).
    pub fn build(p: StatsdParams, env: &BuildEnv) -> Result<StatsdHandler, Error> {
        let seed = env
            .clock()
            .wall()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        let inner = Arc::new(Inner {
            prefix: p.prefix,
            rate: p.sampling_rate,
            metrics: p.metrics,
            packer: Mutex::new(Packer::new(p.flush_bytes)),
            socket: OnceLock::new(),
            rng: AtomicU64::new(seed),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            resolve_errors: AtomicU64::new(0),
        });
        if let Ok(addr) = p.address.parse::<SocketAddr>() {
            let s = connect(addr).map_err(|e| {
                Error::Build(format!("statsd: cannot open a socket to {addr}: {e}"))
            })?;
            let _ = inner.socket.set(s);
        }
        let task = {
            let inner = inner.clone();
            let address = p.address;
            let every = p.flush_duration;
            env.runtime().spawn(async move {
                while inner.socket.get().is_none() {
                    match resolve(&address).await {
                        Ok(s) => {
                            let _ = inner.socket.set(s);
                        }
                        Err(e) => {
                            inner.resolve_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%address, error = %e, "statsd: cannot resolve; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    inner.flush();
                }
            })
        };
        Ok(StatsdHandler {
            inner,
            task: Mutex::new(Some(task)),
        })
    }

    /// Formats and buffers one instance.
    pub fn record(&self, inst: &MetricInstance) {
        self.inner.record_owned(inst);
    }
}

async fn resolve(address: &str) -> std::io::Result<UdpSocket> {
    let addr = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    connect(addr)
}

/// A metric value as statsd writes it.
enum Num {
    Int(i64),
    Float(f64),
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}

impl Num {
    fn of(v: ValueRef<'_>) -> Option<(Num, bool)> {
        let n = match v {
            ValueRef::Int64(i) => Num::Int(i),
            ValueRef::Double(d) if d.is_finite() => Num::Float(d),
            // Durations go out in milliseconds, sub-millisecond kept.
            ValueRef::Duration(d) => {
                let ms = d.as_nanos() as f64 / 1e6;
                return Some((Num::Float(ms), true));
            }
            ValueRef::String(s) => {
                let s = s.trim();
                match s.parse::<i64>() {
                    Ok(i) => Num::Int(i),
                    Err(_) => Num::Float(s.parse::<f64>().ok().filter(|x| x.is_finite())?),
                }
            }
            _ => return None,
        };
        Some((n, false))
    }

    fn is_negative(&self) -> bool {
        match self {
            Num::Int(i) => *i < 0,
            Num::Float(x) => *x < 0.0,
        }
    }
}

/// Protocol characters in a name would split or corrupt the line.
fn push_name(out: &mut String, name: &str) {
    out.extend(name.chars().map(|c| match c {
        ':' | '|' | '@' | '\n' | '\r' => '_',
        c => c,
    }));
}

impl Inner {
    fn sample(&self) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        // xorshift64*: cheap and good enough to thin a stream; races
        // between threads only reuse a state, which is harmless here.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        let r = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        r < self.rate
    }

    fn record_owned(&self, inst: &MetricInstance) {
        let dims = &inst.dimensions;
        self.record(&inst.name, inst.value.as_ref(), |k| {
            dims.get(k).map(Value::as_ref)
        });
    }

    fn record_borrowed(&self, inst: &MetricRef<'_>) {
        let dims = inst.dimensions;
        self.record(inst.name, inst.value, |k| dims.get(k));
    }

    /// Formats and buffers one instance, owned or borrowed (the one path of
    /// both `report` and `report_refs`), reading dimensions through `dim`.
    fn record<'a>(
        &self,
        inst_name: &str,
        value: ValueRef<'_>,
        dim: impl Fn(&str) -> Option<ValueRef<'a>>,
    ) {
        let Some(info) = self.metrics.get(inst_name) else {
            self.unknown.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some((num, is_duration)) = Num::of(value) else {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if !self.sample() {
            return;
        }
        let kind = match info.kind {
            MetricType::Counter => "c",
            MetricType::Gauge => "g",
            MetricType::Distribution if is_duration => "ms",
            MetricType::Distribution => "h",
        };
        LINE.with(|scratch| {
            let mut fresh = (String::new(), String::new());
            let mut guard = scratch.try_borrow_mut();
            let (line, name) = match guard.as_deref_mut() {
                Ok(s) => s,
                Err(_) => &mut fresh,
            };
            line.clear();
            name.clear();
            name.push_str(&self.prefix);
            match &info.name_template {
                Some(t) => t.render_by(dim, name),
                None => name.push_str(inst_name),
            }
            let rate = (self.rate < 1.0).then_some(self.rate);
            let mut lines = 1;
            // A signed gauge value is a delta in statsd: set a negative
            // gauge by zeroing it first, in the same datagram.
            if info.kind == MetricType::Gauge && num.is_negative() {
                push_line(line, name, &Num::Int(0), kind, rate);
                line.push('\n');
                lines = 2;
            }
            push_line(line, name, &num, kind, rate);
            let mut packer = self.packer.lock();
            if !packer.push(line.as_bytes(), lines, |d, n| self.send(d, n)) {
                self.dropped.fetch_add(lines as u64, Ordering::Relaxed);
            }
        });
    }

    fn send(&self, datagram: &[u8], lines: usize) {
        let Some(s) = self.socket.get() else {
            self.dropped.fetch_add(lines as u64, Ordering::Relaxed);
            return;
        };
        match s.send(datagram) {
            Ok(_) => {
                self.sent.fetch_add(lines as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.dropped.fetch_add(lines as u64, Ordering::Relaxed);
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    self.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn flush(&self) {
        let mut packer = self.packer.lock();
        if self.socket.get().is_some() {
            packer.flush(|d, n| self.send(d, n));
        }
    }
}

fn unsupported(template: Template) -> Error {
    Error::Unsupported {
        adapter: super::NAME.into(),
        what: format!("template {}", template.name()),
    }
}

fn push_line(line: &mut String, name: &str, num: &Num, kind: &str, rate: Option<f64>) {
    push_name(line, name);
    let _ = write!(line, ":{num}|{kind}");
    if let Some(r) = rate {
        let _ = write!(line, "|@{r}");
    }
}

impl Handler for StatsdHandler {
    /// Cheap and never blocks: lines go out on a non-blocking UDP socket; a full socket buffer drops and counts.
    fn report_inline(&self) -> bool {
        true
    }

    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        let ReportBatch::Metric(instances) = batch else {
            return Err(unsupported(batch.template()));
        };
        for i in &instances {
            self.inner.record_owned(i);
        }
        Ok(())
    }

    /// Formats straight from the borrowed instances: no string is copied,
    /// and a line allocates nothing.
    fn report_refs(&self, batch: ReportRefs<'_>) -> Result<(), Error> {
        let ReportRefs::Metric(instances) = batch else {
            return Err(unsupported(batch.template()));
        };
        for i in instances {
            self.inner.record_borrowed(i);
        }
        Ok(())
    }

    fn counters(&self) -> Vec<Counter> {
        let i = &self.inner;
        let c = |name, help, v: &AtomicU64| Counter {
            name,
            help,
            value: v.load(Ordering::Relaxed),
        };
        vec![
            c("sent", "lines sent", &i.sent),
            c(
                "dropped",
                "lines dropped: socket buffer full, send failed, or no address yet",
                &i.dropped,
            ),
            c("send_errors", "datagrams whose send failed", &i.send_errors),
            c(
                "invalid_values",
                "instances whose value was not a number, duration or numeric string",
                &i.invalid,
            ),
            c(
                "unknown_instances",
                "instances of no configured metric",
                &i.unknown,
            ),
            c(
                "resolve_errors",
                "failed resolutions of the statsd address",
                &i.resolve_errors,
            ),
        ]
    }

    fn close(&self) -> Answer<'_, ()> {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
        self.inner.flush();
        Answer::ok(())
    }
}

impl Drop for StatsdHandler {
    fn drop(&mut self) {
        if let Some(t) = self.task.get_mut().take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_break_the_line_protocol() {
        let mut s = String::new();
        push_name(&mut s, "a:b|c@d\ne\rf.g-h");
        assert_eq!(s, "a_b_c_d_e_f.g-h");
    }

    #[test]
    fn values() {
        let f = |v: Value| Num::of(v.as_ref()).map(|(n, d)| (n.to_string(), d));
        assert_eq!(f(Value::Int64(-3)), Some(("-3".into(), false)));
        assert_eq!(f(Value::Double(0.1)), Some(("0.1".into(), false)));
        assert_eq!(f(Value::Double(f64::INFINITY)), None);
        assert_eq!(f(Value::String(" 12 ".into())), Some(("12".into(), false)));
        assert_eq!(f(Value::String("1e3".into())), Some(("1000".into(), false)));
        assert_eq!(f(Value::String("NaN".into())), None);
        assert_eq!(
            f(Value::Duration(Duration::from_nanos(1_250_000))),
            Some(("1.25".into(), true))
        );
        assert_eq!(f(Value::Bool(true)), None);
    }
}
