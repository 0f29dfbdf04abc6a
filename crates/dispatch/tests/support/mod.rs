//! Shared by the dispatcher's integration tests: a controllable test
//! adapter (`probe`), config builders, and bag helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mixer_adapters::template::{CheckInstance, QuotaInstance, ReportBatch, ReportRefs, Template};
use mixer_adapters::{
    Adapter, Answer, BuildEnv, CheckResult, Counter, Error, Handler, HandlerBuilder, Params,
    QuotaArgs, QuotaResult, Registry, Status,
};
use mixer_attributes::{OwnedBag, Value};
use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, Options, ReloadSummary};
use parking_lot::{Condvar, Mutex};

/// What probe handlers did, a gate that blocks `report` when closed, and
/// the barrier of `barrier` answers.
pub(crate) struct Probe {
    pub(crate) events: Mutex<Vec<String>>,
    gate: Mutex<bool>,
    opened: Condvar,
    /// Pending answers of `barrier` handlers wait here until two are
    /// waiting: they finish only if the dispatcher awaits them together.
    barrier: tokio::sync::Barrier,
    /// `barrier` answers that reached the barrier.
    pub(crate) arrived: AtomicUsize,
    /// Every report batch taken, with the taking handler's name.
    pub(crate) batches: Mutex<Vec<(Arc<str>, ReportBatch)>>,
    /// Calls of `report_refs` (the borrowed path), by any probe handler.
    pub(crate) refs_calls: AtomicUsize,
}

impl Probe {
    pub(crate) fn new() -> Arc<Probe> {
        Arc::new(Probe {
            events: Mutex::default(),
            gate: Mutex::default(),
            opened: Condvar::new(),
            barrier: tokio::sync::Barrier::new(2),
            arrived: AtomicUsize::new(0),
            batches: Mutex::default(),
            refs_calls: AtomicUsize::new(0),
        })
    }

    fn log(&self, e: String) {
        self.events.lock().push(e);
    }

    /// Events starting with `prefix`.
    pub(crate) fn events(&self, prefix: &str) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Lets blocked `report` calls go, now and from now on.
    pub(crate) fn open_gate(&self) {
        *self.gate.lock() = true;
        self.opened.notify_all();
    }

    fn wait_gate(&self) {
        let mut open = self.gate.lock();
        while !*open {
            self.opened.wait(&mut open);
        }
    }
}

struct ProbeAdapter(Arc<Probe>);

#[derive(Debug, Clone)]
struct ProbeParams {
    mode: String,
    code: i32,
    message: String,
    delay: Duration,
    valid_duration: Duration,
    valid_use_count: i32,
    report: String,
    /// `report_inline` answers this.
    inline: bool,
    close_delay: Duration,
}

struct ProbeBuilder(ProbeParams, Arc<Probe>);

impl std::fmt::Debug for ProbeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

struct ProbeHandler {
    name: Arc<str>,
    p: ProbeParams,
    probe: Arc<Probe>,
}

impl Adapter for ProbeAdapter {
    fn name(&self) -> &str {
        "probe"
    }
    fn templates(&self) -> &[Template] {
        &Template::ALL
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        let v = params.value();
        let s = |k: &str, d: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or(d).to_string();
        let n = |k: &str, d: i64| v.get(k).and_then(|x| x.as_i64()).unwrap_or(d);
        let mode = s("mode", "allow");
        if mode == "invalid" {
            return Err(Error::InvalidParams {
                adapter: "probe".into(),
                errors: vec![mixer_adapters::FieldError {
                    path: "mode".into(),
                    message: "'invalid' is not a mode".into(),
                }],
            });
        }
        Ok(Box::new(ProbeBuilder(
            ProbeParams {
                mode,
                code: n("code", 7) as i32,
                message: s("message", ""),
                delay: Duration::from_millis(n("delayMs", 0) as u64),
                valid_duration: Duration::from_millis(n("validMs", 5000) as u64),
                valid_use_count: n("validUseCount", 100) as i32,
                report: s("report", "ok"),
                inline: v.get("inline").and_then(|x| x.as_bool()).unwrap_or(false),
                close_delay: Duration::from_millis(n("closeDelayMs", 0) as u64),
            },
            self.0.clone(),
        )))
    }
}

impl HandlerBuilder for ProbeBuilder {
    fn build(self: Box<Self>, env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        let name = env.handler_name().clone();
        self.1.log(format!("build {name}"));
        if self.0.mode == "failbuild" {
            // As a handler whose port is taken fails: valid params, no handler.
            return Err(Error::Internal(format!("{name} cannot be built")));
        }
        Ok(Arc::new(ProbeHandler {
            name,
            p: self.0,
            probe: self.1,
        }))
    }
}

impl ProbeHandler {
    fn decide(&self) -> Result<CheckResult, Error> {
        let p = &self.p;
        match p.mode.trim_start_matches("pending-") {
            "allow" => Ok(CheckResult::ok(p.valid_duration, p.valid_use_count)),
            "deny" => Ok(CheckResult {
                status: Status::new(p.code, p.message.clone()),
                valid_duration: p.valid_duration,
                valid_use_count: p.valid_use_count,
            }),
            "error" => Err(Error::Unavailable("backend down".into())),
            "panic" => panic!("probe handler {} panics", self.name),
            other => Err(Error::Internal(format!("unknown mode {other}"))),
        }
    }
}

impl ProbeHandler {
    /// The answer of `mode`: `hang` pending for ever; `barrier` pending
    /// until a second `barrier` answer is pending too; `pending-<mode>`
    /// after `delayMs`; the others inline.
    fn answer(&self) -> Answer<'_, CheckResult> {
        match self.p.mode.as_str() {
            "hang" => Answer::pending(std::future::pending()),
            "barrier" => Answer::pending(async move {
                self.probe.arrived.fetch_add(1, Ordering::SeqCst);
                self.probe.barrier.wait().await;
                Ok(CheckResult::ok(
                    self.p.valid_duration,
                    self.p.valid_use_count,
                ))
            }),
            mode if mode.starts_with("pending-") => Answer::pending(async move {
                tokio::time::sleep(self.p.delay).await;
                self.decide()
            }),
            _ => Answer::Ready(self.decide()),
        }
    }
}

impl Handler for ProbeHandler {
    fn check<'a>(&'a self, instance: &'a CheckInstance) -> Answer<'a, CheckResult> {
        self.probe
            .log(format!("check {} {}", self.name, instance.name()));
        self.answer()
    }

    fn quota<'a>(
        &'a self,
        instance: &'a QuotaInstance,
        args: &'a QuotaArgs,
    ) -> Answer<'a, QuotaResult> {
        self.probe.log(format!(
            "quota {} {} {}",
            self.name, instance.name, args.amount
        ));
        let granted = move |r: Result<CheckResult, Error>| {
            r.map(|r| QuotaResult {
                granted: if r.status.is_ok() { args.amount } else { 0 },
                valid_duration: r.valid_duration,
                status: r.status,
            })
        };
        match self.answer() {
            Answer::Ready(r) => Answer::Ready(granted(r)),
            Answer::Pending(f) => Answer::pending(async move { granted(f.await) }),
        }
    }

    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        match self.p.report.as_str() {
            "block" => self.probe.wait_gate(),
            "panic" => panic!("probe report panics"),
            "fail" => return Err(Error::Internal("probe report fails".into())),
            // As a handler whose own queue is full.
            "full" => {
                return Err(Error::QueueFull {
                    dropped: batch.len(),
                });
            }
            _ => {}
        }
        self.probe.log(format!(
            "report {} {} {} on {:?}",
            self.name,
            batch.template(),
            batch.len(),
            std::thread::current().id()
        ));
        self.probe.batches.lock().push((self.name.clone(), batch));
        Ok(())
    }

    fn report_refs(&self, batch: ReportRefs<'_>) -> Result<(), Error> {
        self.probe.refs_calls.fetch_add(1, Ordering::SeqCst);
        self.report(batch.to_owned())
    }

    fn report_inline(&self) -> bool {
        self.p.inline
    }

    fn counters(&self) -> Vec<Counter> {
        vec![Counter {
            name: "probe_calls",
            help: "Probe calls.",
            value: 1,
        }]
    }

    fn close(&self) -> Answer<'_, ()> {
        self.probe.log(format!("close {}", self.name));
        if self.p.close_delay.is_zero() {
            return Answer::ok(());
        }
        // A close that waits on its backend, as a flushing handler does.
        Answer::pending(async move {
            tokio::time::sleep(self.p.close_delay).await;
            self.probe.log(format!("closed {}", self.name));
            Ok(())
        })
    }
}

/// A dispatcher over the built-in adapters plus `probe`.
pub(crate) fn dispatcher(probe: &Arc<Probe>, options: Options) -> Dispatcher {
    let mut registry = Registry::builtin();
    registry
        .register(Arc::new(ProbeAdapter(probe.clone())))
        .unwrap();
    Dispatcher::new(registry, tokio::runtime::Handle::current(), options)
}

/// Loads `yaml` as the whole configuration.
pub(crate) fn load(d: &Dispatcher, yaml: &str) -> Result<ReloadSummary, mixer_dispatch::Error> {
    let mut docs = Documents::new();
    docs.add_yaml("test.yaml", yaml);
    d.load(docs)
}

const API: &str = "apiVersion: config.istio.io/v1alpha2";

/// A handler document; `params` in YAML flow (JSON) style.
pub(crate) fn handler(name: &str, ns: &str, adapter: &str, params: &str) -> String {
    format!(
        "{API}\nkind: handler\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  compiledAdapter: {adapter}\n  params: {params}\n---\n"
    )
}

/// An instance document.
pub(crate) fn instance(name: &str, ns: &str, template: &str, params: &str) -> String {
    format!(
        "{API}\nkind: instance\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  compiledTemplate: {template}\n  params: {params}\n---\n"
    )
}

/// A rule document; `matches` empty for none.
pub(crate) fn rule(name: &str, ns: &str, matches: &str, actions: &[(&str, &[&str])]) -> String {
    let mut s = format!("{API}\nkind: rule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n");
    if !matches.is_empty() {
        s.push_str(&format!(
            "  match: {}\n",
            serde_json::to_string(matches).unwrap()
        ));
    }
    s.push_str("  actions:\n");
    for (h, insts) in actions {
        s.push_str(&format!("  - handler: {h}\n    instances: {insts:?}\n"));
    }
    s.push_str("---\n");
    s
}

/// A bag of string attributes.
pub(crate) fn bag(attrs: &[(&str, &str)]) -> OwnedBag {
    attrs.iter().fold(OwnedBag::new(), |b, (k, v)| {
        b.with(k, Value::String(v.to_string()))
    })
}

/// Options without the cache, for tests that count handler calls.
pub(crate) fn uncached() -> Options {
    Options::default().without_cache()
}
