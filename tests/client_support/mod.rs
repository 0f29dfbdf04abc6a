//! A real mixer-server on loopback for the client's end-to-end tests, with a
//! `recorder` adapter that keeps what the server's dispatcher handed it.
//!
//! The server runs on its own runtime so that a test can kill it outright
//! (dropping the runtime drops every connection, as a crash would) and
//! start it again on the same port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mixer_adapters::params::{Fields, ParamErrors};
use mixer_adapters::template::{CheckInstance, Dimensions, QuotaInstance, ReportBatch, Template};
use mixer_adapters::{
    Adapter, Answer, BuildEnv, CheckResult, Error, Handler, HandlerBuilder, Params, QuotaArgs,
    QuotaResult, Registry, Status,
};
use mixer_attributes::Value;
use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
use mixer_server::{Method, MixerService, Server};

/// What the recorder saw, shared with the test.
#[derive(Default, Debug)]
pub(crate) struct Recorded {
    /// `listentry` values of checks, in arrival order.
    pub(crate) checks: Mutex<Vec<Value>>,
    /// `logentry` variables of reports.
    pub(crate) logs: Mutex<Vec<Dimensions>>,
    /// Quota calls and the total granted.
    pub(crate) quota_calls: AtomicU64,
    pub(crate) quota_granted: AtomicI64,
}

struct Recorder(Arc<Recorded>);
#[derive(Debug)]
struct RecorderParams {
    valid: Duration,
    grant_max: Option<i64>,
    rec: Arc<Recorded>,
}
struct RecorderHandler {
    valid: Duration,
    grant_max: Option<i64>,
    rec: Arc<Recorded>,
}

impl Adapter for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn templates(&self) -> &[Template] {
        &[Template::ListEntry, Template::LogEntry, Template::Quota]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let valid = root
            .duration("validDuration", &mut errs)
            .unwrap_or(Duration::from_secs(10));
        let grant_max = root.int("grantMax", &mut errs);
        root.finish(&mut errs);
        errs.into_result(
            "recorder",
            Box::new(RecorderParams {
                valid,
                grant_max,
                rec: self.0.clone(),
            }) as _,
        )
    }
}

impl HandlerBuilder for RecorderParams {
    fn build(self: Box<Self>, _env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(RecorderHandler {
            valid: self.valid,
            grant_max: self.grant_max,
            rec: self.rec,
        }))
    }
}

impl Handler for RecorderHandler {
    fn check<'a>(&'a self, instance: &'a CheckInstance) -> Answer<'a, CheckResult> {
        if let CheckInstance::ListEntry(e) = instance {
            self.rec.checks.lock().unwrap().push(e.value.clone());
        }
        Answer::ok(CheckResult::ok(self.valid, 1_000_000))
    }

    fn quota<'a>(&'a self, _: &'a QuotaInstance, args: &'a QuotaArgs) -> Answer<'a, QuotaResult> {
        let max = self.grant_max.unwrap_or(i64::MAX);
        let granted = if args.amount <= max {
            args.amount
        } else if args.best_effort {
            max
        } else {
            0
        };
        self.rec.quota_calls.fetch_add(1, Ordering::SeqCst);
        self.rec.quota_granted.fetch_add(granted, Ordering::SeqCst);
        let status = if granted < args.amount {
            Status::new(8, "recorder: less than asked")
        } else {
            Status::OK
        };
        Answer::ok(QuotaResult {
            granted,
            valid_duration: self.valid,
            status,
        })
    }

    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        if let ReportBatch::LogEntry(entries) = batch {
            let mut logs = self.rec.logs.lock().unwrap();
            logs.extend(entries.into_iter().map(|e| e.variables));
        }
        Ok(())
    }
}

async fn bind(rec: Arc<Recorded>, yaml: String, addr: SocketAddr) -> Server {
    let mut registry = Registry::builtin();
    registry.register(Arc::new(Recorder(rec))).unwrap();
    let dispatcher = Dispatcher::new(
        registry,
        tokio::runtime::Handle::current(),
        DispatchOptions::default().without_cache(),
    );
    let mut docs = Documents::new();
    docs.add_yaml("test.yaml", &yaml);
    dispatcher.load(docs).expect("test config loads");
    // The port may still be held for a moment after a kill.
    let mut tries = 0;
    loop {
        match Server::builder(dispatcher.clone())
            .address(addr)
            .bind()
            .await
        {
            Ok(s) => return s,
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

/// A mixer-server with the built-in adapters plus `recorder`.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) rec: Arc<Recorded>,
    yaml: String,
    runtime: Option<tokio::runtime::Runtime>,
    service: Option<MixerService>,
}

impl TestServer {
    /// Serves `yaml` on a free loopback port.
    pub(crate) fn start(yaml: &str) -> TestServer {
        let mut s = TestServer {
            addr: "127.0.0.1:0".parse().unwrap(),
            rec: Arc::new(Recorded::default()),
            yaml: yaml.to_string(),
            runtime: None,
            service: None,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let rec = self.rec.clone();
        let yaml = self.yaml.clone();
        let addr = self.addr;
        // Built on a thread of its own: a test's runtime cannot block on
        // another runtime.
        let (runtime, addr, service) = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let server = runtime.block_on(bind(rec, yaml, addr));
            let addr = server.local_addr();
            let service = server.service().clone();
            runtime.spawn(server.serve_until(std::future::pending()));
            (runtime, addr, service)
        })
        .join()
        .expect("test server starts");
        self.addr = addr;
        self.service = Some(service);
        self.runtime = Some(runtime);
    }

    /// Kills the server: every connection drops at once.
    pub(crate) fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        self.service = None;
    }

    /// Starts it again on the same port.
    pub(crate) fn restart(&mut self) {
        self.launch();
    }

    /// Requests the server received on `method` since it (re)started.
    pub(crate) fn requests(&self, method: Method) -> u64 {
        self.service
            .as_ref()
            .map_or(0, |s| s.stats().methods[method as usize].requests)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The configuration of the client tests: a recorder echoing
/// `request.path` on checks, a denial for `/deny`, a logentry echoing
/// attributes of every type on reports, and a recorded quota.
pub(crate) fn config(valid: &str, grant_max: Option<i64>) -> String {
    let grant = grant_max
        .map(|g| format!(", grantMax: {g}"))
        .unwrap_or_default();
    format!(
        r#"
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {{name: rec, namespace: istio-system}}
spec: {{compiledAdapter: recorder, params: {{validDuration: {valid}{grant}}}}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: echo, namespace: istio-system}}
spec: {{compiledTemplate: listentry, params: {{value: request.path | "none"}}}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: check-all, namespace: istio-system}}
spec:
  match: (request.path | "") != "/deny"
  actions: [{{handler: rec, instances: [echo]}}]
---
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {{name: no, namespace: istio-system}}
spec: {{compiledAdapter: denier, params: {{status: {{code: 7, message: denied}}, validDuration: {valid}, validUseCount: 1000}}}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: nothing, namespace: istio-system}}
spec: {{compiledTemplate: checknothing}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: deny, namespace: istio-system}}
spec:
  match: (request.path | "") == "/deny"
  actions: [{{handler: no, instances: [nothing]}}]
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: log, namespace: istio-system}}
spec:
  compiledTemplate: logentry
  params:
    severity: '"info"'
    variables:
      path: request.path | "none"
      size: request.size | -1
      time: request.time | timestamp("2000-01-01T00:00:00Z")
      duration: response.duration | "0s"
      method: request.headers[":method"] | "none"
      agent: request.headers["user-agent"] | "none"
      ip: source.ip | ip("0.0.0.0")
      mtls: connection.mtls | false
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: report-all, namespace: istio-system}}
spec:
  actions: [{{handler: rec, instances: [log]}}]
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: requestcount, namespace: istio-system}}
spec:
  compiledTemplate: quota
  params: {{dimensions: {{destination: destination.service | "unknown"}}}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: quota-all, namespace: istio-system}}
spec:
  actions: [{{handler: rec, instances: [requestcount]}}]
"#
    )
}
