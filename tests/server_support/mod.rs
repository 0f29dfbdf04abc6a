//! Shared by the `server_*` end-to-end tests: a server on a loopback port
//! with a probe adapter whose checks take as long as the request asks and
//! whose reports are counted, and stream helpers.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mixer_adapters::params::{Fields, ParamErrors};
use mixer_adapters::template::{CheckInstance, ReportBatch, Template};
use mixer_adapters::{
    Adapter, Answer, BuildEnv, CheckResult, Error, Handler, HandlerBuilder, Params, Registry,
};
use mixer_attributes::{Encoder, OwnedBag, StringMap, Value};
use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
use mixer_proto::istio::mixer::v1::mixer_client::MixerClient;
use mixer_proto::istio::mixer::v1::{Attributes, CheckRequest, CheckResponse};
use mixer_server::{Options, Server, Shutdown};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

pub const API: &str = "apiVersion: config.istio.io/v1alpha2";

/// Reports the probe's handlers received, across every probe handler.
#[derive(Debug, Default)]
pub struct ProbeCounts {
    pub reports: AtomicU64,
}

/// `probe`: a check on a `listentry` whose value is `sleep:<ms>` answers OK
/// after that long (pending, like an I/O adapter); reports are counted
/// after `reportDelayMs` each batch (a slow backend).
struct Probe(Arc<ProbeCounts>);

#[derive(Debug)]
struct ProbeParams(Arc<ProbeCounts>, Duration);

struct ProbeHandler(Arc<ProbeCounts>, Duration);

impl Adapter for Probe {
    fn name(&self) -> &str {
        "probe"
    }
    fn templates(&self) -> &[Template] {
        &[Template::ListEntry, Template::ReportNothing]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let delay = root
            .duration("reportDelay", &mut errs)
            .unwrap_or(Duration::ZERO);
        root.finish(&mut errs);
        errs.into_result(
            self.name(),
            Box::new(ProbeParams(self.0.clone(), delay)) as _,
        )
    }
}

impl HandlerBuilder for ProbeParams {
    fn build(self: Box<Self>, _env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(ProbeHandler(self.0, self.1)))
    }
}

impl Handler for ProbeHandler {
    fn check<'a>(&'a self, instance: &'a CheckInstance) -> Answer<'a, CheckResult> {
        let CheckInstance::ListEntry(i) = instance else {
            return Answer::ok(CheckResult::ok(Duration::from_secs(1), 1));
        };
        let ms = match &i.value {
            Value::String(s) => s.strip_prefix("sleep:").and_then(|v| v.parse::<u64>().ok()),
            _ => None,
        };
        match ms {
            Some(ms) => Answer::pending(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(CheckResult::ok(Duration::from_millis(1000 + ms), 7))
            }),
            None => Answer::ok(CheckResult::ok(Duration::from_secs(1), 1)),
        }
    }

    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        // Runs on the dispatcher's report worker: a slow backend.
        std::thread::sleep(self.1);
        self.0
            .reports
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

/// The built-ins plus the probe.
pub fn registry(counts: &Arc<ProbeCounts>) -> Registry {
    let mut r = Registry::builtin();
    r.register(Arc::new(Probe(counts.clone())))
        .expect("probe registers");
    r
}

/// A handler document.
pub fn handler(name: &str, adapter: &str, params: &str) -> String {
    format!(
        "{API}\nkind: handler\nmetadata: {{name: {name}, namespace: istio-system}}\nspec:\n  compiledAdapter: {adapter}\n  params: {params}\n---\n"
    )
}

/// An instance document.
pub fn instance(name: &str, template: &str, params: &str) -> String {
    format!(
        "{API}\nkind: instance\nmetadata: {{name: {name}, namespace: istio-system}}\nspec:\n  compiledTemplate: {template}\n  params: {params}\n---\n"
    )
}

/// A rule document (`matches` empty: always).
pub fn rule(name: &str, matches: &str, handler: &str, instances: &[&str]) -> String {
    let m = if matches.is_empty() {
        String::new()
    } else {
        format!("  match: {}\n", serde_json::to_string(matches).unwrap())
    };
    format!(
        "{API}\nkind: rule\nmetadata: {{name: {name}, namespace: istio-system}}\nspec:\n{m}  actions:\n  - handler: {handler}\n    instances: {instances:?}\n---\n"
    )
}

/// The tests' usual config: a header denial, the probe on every check
/// (delay from `request.path`), a memquota of 3 per 10 s on `requestquota`,
/// and every report to the probe.
pub fn standard_config(report_delay: &str) -> String {
    [
        handler(
            "deny",
            "denier",
            r#"{status: {code: 7, message: "x-deny header"}}"#,
        ),
        instance("nothing", "checknothing", "{}"),
        rule(
            "deny-header",
            r#"(request.headers["x-deny"] | "") == "yes""#,
            "deny",
            &["nothing"],
        ),
        handler("probe", "probe", &format!("{{reportDelay: {report_delay}}}")),
        instance("delay", "listentry", r#"{value: request.path | "none"}"#),
        rule("probe-all", "", "probe", &["delay"]),
        handler(
            "q",
            "memquota",
            "{quotas: [{name: requestquota.instance.istio-system, maxAmount: 3, validDuration: 10s}]}",
        ),
        instance(
            "requestquota",
            "quota",
            r#"{dimensions: {path: request.path | "/"}}"#,
        ),
        rule("limit", "", "q", &["requestquota"]),
        instance("seen", "reportnothing", "{}"),
        rule("reports", "", "probe", &["seen"]),
    ]
    .concat()
}

/// A server running in the test's runtime.
pub struct TestServer {
    pub addr: SocketAddr,
    pub monitoring: SocketAddr,
    pub service: mixer_server::MixerService,
    pub counts: Arc<ProbeCounts>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<Shutdown, mixer_server::Error>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Serves `config_yaml` (written to a temp config dir, watched).
    pub async fn start(config_yaml: &str, options: Options) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), config_yaml).unwrap();
        let mut s = TestServer::start_dir(dir.path(), options).await;
        s._dir = Some(dir);
        s
    }

    /// Serves the config directory `dir`.
    pub async fn start_dir(dir: &Path, options: Options) -> TestServer {
        let counts = Arc::new(ProbeCounts::default());
        let dispatcher = Dispatcher::new(
            registry(&counts),
            tokio::runtime::Handle::current(),
            DispatchOptions::default().without_cache(),
        );
        let server = Server::builder(dispatcher)
            .options(options)
            .address("127.0.0.1:0".parse().unwrap())
            .monitoring_address("127.0.0.1:0".parse().unwrap())
            .config_dir(dir)
            .bind()
            .await
            .expect("server binds and loads its config");
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = server.local_addr();
        let monitoring = server.monitoring_addr().unwrap();
        let service = server.service().clone();
        let task = tokio::spawn(server.serve_until(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            monitoring,
            service,
            counts,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> MixerClient<Channel> {
        MixerClient::connect(self.url()).await.expect("connects")
    }

    /// Begins a graceful shutdown and waits for it.
    pub async fn shutdown(&mut self) -> Shutdown {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task.take().unwrap())
            .await
            .expect("shutdown within 30 s")
            .expect("server task")
            .expect("server result")
    }

    /// `GET path` on the monitoring address: (status, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.monitoring, path).await
    }
}

/// A minimal HTTP/1.1 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A bag from `(name, value)` pairs; `request.headers` given as `h:k=v`.
pub fn bag(path: &str, headers: &[(&str, &str)]) -> OwnedBag {
    let mut map = StringMap::new();
    for (k, v) in headers {
        map.insert((*k).into(), (*v).to_string());
    }
    OwnedBag::new()
        .with("request.path", Value::String(path.into()))
        .with("request.headers", Value::StringMap(map))
        .with("destination.service", Value::String("ratings".into()))
}

/// An open Check stream: send requests, read answers.
pub struct CheckStream {
    tx: mpsc::Sender<CheckRequest>,
    rx: tonic::Streaming<CheckResponse>,
    pub encoder: Encoder,
    next_index: i64,
}

impl CheckStream {
    pub async fn open(client: &mut MixerClient<Channel>) -> CheckStream {
        CheckStream::try_open(client).await.expect("stream opens")
    }

    pub async fn try_open(client: &mut MixerClient<Channel>) -> Result<CheckStream, tonic::Status> {
        let (tx, rx) = mpsc::channel(1024);
        let rx = client.check(ReceiverStream::new(rx)).await?.into_inner();
        Ok(CheckStream {
            tx,
            rx,
            encoder: Encoder::new(),
            next_index: 1,
        })
    }

    /// Sends a raw update; returns its request index.
    pub async fn send_raw(&mut self, update: Attributes) -> i64 {
        let index = self.next_index;
        self.next_index += 1;
        self.tx
            .send(CheckRequest {
                request_index: index,
                attribute_update: Some(update),
            })
            .await
            .expect("stream open");
        index
    }

    /// Encodes `bag` as a delta on `context` and sends it.
    pub async fn send(&mut self, context: i32, bag: &OwnedBag) -> i64 {
        let update = self.encoder.encode(context, bag).expect("encodes");
        self.send_raw(update).await
    }

    /// The next answer (panics after 10 s).
    pub async fn recv(&mut self) -> Result<Option<CheckResponse>, tonic::Status> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("an answer within 10 s")
    }

    pub async fn answer(&mut self) -> CheckResponse {
        self.recv()
            .await
            .expect("no stream error")
            .expect("an answer")
    }

    /// Half-closes the request side.
    pub fn close(self) -> tonic::Streaming<CheckResponse> {
        self.rx
    }
}

/// The status code of an answer.
pub fn code(r: &CheckResponse) -> i32 {
    r.result.as_ref().map_or(0, |s| s.code)
}

/// The status message of an answer.
pub fn message(r: &CheckResponse) -> &str {
    r.result.as_ref().map_or("", |s| s.message.as_str())
}
