//! The load generator: N concurrent Generation-1 streams of realistic
//! attribute deltas against a `mixs` server process, and the same shape
//! against a bare bidirectional echo service built with the same tonic, as
//! the baseline of the same run.
//!
//! ```text
//! cargo build --release --example mixs --example loadgen
//! target/release/examples/loadgen [--streams 1,16,64] [--seconds 5] [--requests N]
//!     [--depth 1] [--methods check,report] [--config-dir examples/config] [--mixs PATH]
//! ```
//!
//! Each stream is one proxy: its own connection, a delta encoder fed a
//! rotating set of request bags (sources, destinations, paths, headers,
//! response codes), `--depth` requests outstanding. Deltas are encoded
//! before the clock starts, so the generator spends its CPU on the wire,
//! not on encoding. Reported per run: requests per second, latency p50 and
//! p99, and the server process's CPU seconds per 1000 requests (from
//! `/proc/<pid>/stat`, utime + stime, over the measured window only), and
//! how much of it is above the echo's (the server's own work).
//!
//! Depth 1 is a proxy with one request at a time; a proxy's client sends
//! its batched reports pipelined (a batch is 100 by default), which
//! `--depth 100 --methods report` models.

// A command-line tool prints its results.
#![allow(clippy::print_stdout)]

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use mixer_attributes::{Encoder, OwnedBag, StringMap, Timestamp, Value};
use mixer_proto::istio::mixer::v1 as proto;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder as TonicEncoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const USAGE: &str = "\
usage: loadgen [--streams 1,16,64] [--seconds 5 | --requests N] [--depth 1]
               [--methods check,report] [--config-dir examples/config] [--mixs PATH]
  --streams     concurrent streams per point, each on its own connection
  --seconds     measured time per point (after a 0.5 s warm-up)
  --requests    or a request count per point instead
  --depth       requests outstanding per stream (100: a client's report batch)
  --methods     which streams to load (check, report)
  --config-dir  the config mixs serves
  --mixs        the mixs binary (default: beside this one)
Runs each point against a bare echo service, then against mixs, and prints throughput,
latency p50/p99 and each server's CPU seconds per 1000 requests.";

struct Settings {
    streams: Vec<usize>,
    seconds: f64,
    requests: Option<u64>,
    depth: usize,
    methods: Vec<String>,
    config_dir: PathBuf,
    mixs: PathBuf,
}

fn parse() -> Result<Settings, String> {
    let exe_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut s = Settings {
        streams: vec![1, 16, 64],
        seconds: 5.0,
        requests: None,
        depth: 1,
        methods: vec!["check".into(), "report".into()],
        config_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/config"),
        mixs: exe_dir.join("mixs"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--streams" => {
                s.streams = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--streams: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => s.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--requests" => {
                s.requests = Some(value()?.parse().map_err(|e| format!("--requests: {e}"))?)
            }
            "--depth" => s.depth = value()?.parse().map_err(|e| format!("--depth: {e}"))?,
            "--methods" => s.methods = value()?.split(',').map(String::from).collect(),
            "--config-dir" => s.config_dir = value()?.into(),
            "--mixs" => s.mixs = value()?.into(),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if s.depth == 0 || s.streams.contains(&0) {
        return Err("--depth and --streams must be at least 1".into());
    }
    Ok(s)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("echo-server") {
        let addr = args.next().and_then(|a| a.parse().ok());
        return match addr {
            Some(addr) => echo::serve(addr),
            None => {
                eprintln!("usage: loadgen echo-server HOST:PORT");
                ExitCode::from(2)
            }
        };
    }
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let settings = match parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(1)
        }
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// A server process, killed on drop.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn start(mut cmd: Command, addr: SocketAddr) -> Result<Process, String> {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let p = Process { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{cmd:?} did not listen on {addr}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(p)
    }

    /// utime + stime of the process, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / clock_ticks()
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// This process's own CPU seconds (the generator's cost).
fn self_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

async fn run(s: Settings) -> Result<(), String> {
    if !s.mixs.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release --example mixs --example loadgen) or pass --mixs",
            s.mixs.display()
        ));
    }
    let mixs_addr = free_port();
    let mut cmd = Command::new(&s.mixs);
    cmd.arg("server")
        .arg("--config-dir")
        .arg(&s.config_dir)
        .arg("--address")
        .arg(mixs_addr.to_string())
        .arg("--monitoring-address")
        .arg(free_port().to_string());
    let mixs = Process::start(cmd, mixs_addr)?;
    let echo_addr = free_port();
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.arg("echo-server").arg(echo_addr.to_string());
    let echo = Process::start(cmd, echo_addr)?;

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# loadgen: {cpus} CPUs shared by the server and the generator; load average before: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "# each run: {} per point, depth {} per stream, one connection per stream",
        match s.requests {
            Some(n) => format!("{n} requests"),
            None => format!("{} s", s.seconds),
        },
        s.depth
    );
    println!();
    println!(
        "| target | method | streams | requests | req/s | p50 µs | p99 µs | server CPU s / 1000 req | generator CPU s / 1000 req |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for method in &s.methods {
        for &n in &s.streams {
            let e = measure(&echo, method, n, &s).await?;
            print_row("echo", method, n, &e);
            let m = measure(&mixs, method, n, &s).await?;
            print_row("mixs", method, n, &m);
            let above = m.cpu_per_1000() - e.cpu_per_1000();
            ratios.push((method.clone(), n, m.rate / e.rate, above));
        }
    }
    // The server's own work: its CPU above the bare echo's for the same
    // shape of traffic, which costs both the same transport (reads,
    // writes, HTTP/2 framing, wakeups).
    println!();
    println!(
        "| method | streams | mixs / echo throughput | mixs CPU above the echo, s / 1000 req |"
    );
    println!("|---|---:|---:|---:|");
    for (m, n, r, above) in ratios {
        println!("| {m} | {n} | {r:.2}x | {above:.4} |");
    }
    Ok(())
}

fn print_row(target: &str, method: &str, streams: usize, r: &RunResult) {
    println!(
        "| {target} | {method} | {streams} | {} | {:.0} | {} | {} | {:.4} | {:.4} |",
        r.requests,
        r.rate,
        r.p50.as_micros(),
        r.p99.as_micros(),
        r.cpu_per_1000(),
        r.generator_cpu / r.requests.max(1) as f64 * 1000.0,
    );
}

impl RunResult {
    /// The server's CPU seconds per 1000 requests.
    fn cpu_per_1000(&self) -> f64 {
        self.server_cpu / self.requests.max(1) as f64 * 1000.0
    }
}

struct RunResult {
    requests: u64,
    rate: f64,
    p50: Duration,
    p99: Duration,
    server_cpu: f64,
    generator_cpu: f64,
}

async fn measure(
    server: &Process,
    method: &str,
    streams: usize,
    s: &Settings,
) -> Result<RunResult, String> {
    let path = match method {
        "check" => "/istio.mixer.v1.Mixer/Check",
        "report" => "/istio.mixer.v1.Mixer/Report",
        other => return Err(format!("unknown method {other} (check or report)")),
    };
    let url = format!("http://{}", server.addr);
    let mut channels = Vec::new();
    for _ in 0..streams {
        channels.push(
            Channel::from_shared(url.clone())
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| format!("connect {url}: {e}"))?,
        );
    }
    // Warm up (connections, dictionaries, caches), then measure.
    let warm = Duration::from_millis(500);
    let per_stream = s.requests.map(|n| n.div_ceil(streams as u64));
    let window = Duration::from_secs_f64(s.seconds);
    let start_gate = Arc::new(tokio::sync::Barrier::new(streams + 1));
    let mut tasks = Vec::new();
    for (i, ch) in channels.into_iter().enumerate() {
        let gate = start_gate.clone();
        let depth = s.depth;
        tasks.push(tokio::spawn(async move {
            drive(ch, path, i, depth, warm, window, per_stream, gate).await
        }));
    }
    start_gate.wait().await;
    tokio::time::sleep(warm).await;
    let (cpu0, gen0, t0) = (server.cpu_seconds(), self_cpu_seconds(), Instant::now());
    let mut latencies = Vec::new();
    let mut requests = 0;
    let mut measured_end = Instant::now();
    for t in tasks {
        let r = t.await.map_err(|e| e.to_string())??;
        requests += r.count;
        latencies.extend(r.latencies_us);
        measured_end = measured_end.max(r.ended);
    }
    let (cpu1, gen1) = (server.cpu_seconds(), self_cpu_seconds());
    let elapsed = measured_end
        .saturating_duration_since(t0)
        .as_secs_f64()
        .max(1e-9);
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        Duration::from_micros(latencies.get(i).copied().unwrap_or(0) as u64)
    };
    Ok(RunResult {
        requests,
        rate: requests as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        server_cpu: cpu1 - cpu0,
        generator_cpu: gen1 - gen0,
    })
}

struct StreamResult {
    count: u64,
    latencies_us: Vec<u32>,
    ended: Instant,
}

/// One stream: pre-encoded deltas sent with `depth` outstanding.
#[allow(clippy::too_many_arguments)]
async fn drive(
    channel: Channel,
    path: &'static str,
    seed: usize,
    depth: usize,
    warm: Duration,
    window: Duration,
    limit: Option<u64>,
    gate: Arc<tokio::sync::Barrier>,
) -> Result<StreamResult, String> {
    let (first, cycle) = traffic(seed);
    let (tx, rx) = mpsc::channel::<Bytes>(depth + 1);
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let resp = grpc.streaming(
        tonic::Request::new(ReceiverStream::new(rx)),
        PathAndQuery::from_static(path),
        RawCodec,
    );
    let mut index: i64 = 0;
    let mut sent_at: VecDeque<(i64, Instant)> = VecDeque::with_capacity(depth);
    let next = |index: &mut i64| -> Bytes {
        *index += 1;
        let update = if *index == 1 {
            &first
        } else {
            &cycle[(*index as usize - 2) % cycle.len()]
        };
        request(*index, update)
    };
    // Open the stream with the first (dictionary-carrying) request.
    tx.send(next(&mut index)).await.map_err(|e| e.to_string())?;
    sent_at.push_back((index, Instant::now()));
    let mut answers = resp.await.map_err(|e| e.to_string())?.into_inner();
    gate.wait().await;
    let started = Instant::now();
    let measure_from = started + warm;
    let stop_at = measure_from + window;
    for _ in 1..depth {
        tx.send(next(&mut index)).await.map_err(|e| e.to_string())?;
        sent_at.push_back((index, Instant::now()));
    }
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut count = 0u64;
    let mut ended = Instant::now();
    loop {
        let Some(answer) = answers.message().await.map_err(|e| e.to_string())? else {
            return Err("the server ended the stream".into());
        };
        let now = Instant::now();
        if answer.1 != 0 && answer.1 != 8 {
            return Err(format!(
                "request {} answered with code {}",
                answer.0, answer.1
            ));
        }
        let pos = sent_at.iter().position(|(i, _)| *i == answer.0);
        let Some((_, at)) = pos.and_then(|p| sent_at.remove(p)) else {
            return Err(format!("answer to unknown request {}", answer.0));
        };
        if now >= measure_from {
            count += 1;
            latencies.push(now.duration_since(at).as_micros().min(u32::MAX as u128) as u32);
            ended = now;
        }
        let done = match limit {
            Some(n) => count >= n,
            None => now >= stop_at,
        };
        if done {
            break;
        }
        tx.send(next(&mut index)).await.map_err(|e| e.to_string())?;
        sent_at.push_back((index, Instant::now()));
    }
    drop(tx);
    Ok(StreamResult {
        count,
        latencies_us: latencies,
        ended,
    })
}

/// `CheckRequest`/`ReportRequest` bytes: index and a pre-encoded update.
fn request(index: i64, update: &Bytes) -> Bytes {
    let mut b = bytes::BytesMut::with_capacity(update.len() + 16);
    prost::encoding::int64::encode(1, &index, &mut b);
    prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut b);
    prost::encoding::encode_varint(update.len() as u64, &mut b);
    b.put_slice(update);
    b.freeze()
}

/// A proxy's traffic: the first update (with the dictionary), then a cycle
/// of steady-state deltas that can repeat forever (it ends on the bag it
/// starts from).
fn traffic(seed: usize) -> (Bytes, Vec<Bytes>) {
    let bags: Vec<OwnedBag> = (0..64).map(|i| request_bag(seed, i)).collect();
    let mut enc = Encoder::new();
    let encode = |enc: &mut Encoder, b: &OwnedBag| -> Bytes {
        enc.encode(0, b).expect("encodes").encode_to_vec().into()
    };
    // A first pass puts every word in the dictionary, so that it no longer
    // grows.
    for b in &bags {
        encode(&mut enc, b);
    }
    // The opening request: the whole dictionary and the last bag in full.
    enc.reset(0);
    let opening = encode(&mut enc, &bags[bags.len() - 1]);
    // The cycle: each bag as a delta from the one before, starting from the
    // last bag, which is also where it ends.
    let cycle = bags.iter().map(|b| encode(&mut enc, b)).collect();
    (opening, cycle)
}

fn request_bag(seed: usize, i: usize) -> OwnedBag {
    const SERVICES: [&str; 4] = [
        "productpage.default.svc.cluster.local",
        "reviews.default.svc.cluster.local",
        "ratings.default.svc.cluster.local",
        "details.default.svc.cluster.local",
    ];
    const PATHS: [&str; 4] = ["/productpage", "/reviews/0", "/ratings/0", "/details/0"];
    let mut headers = StringMap::new();
    headers.insert(":authority".into(), SERVICES[(i + 1) % 4].into());
    headers.insert(
        "user-agent".into(),
        "Mozilla/5.0 (X11; Linux x86_64)".into(),
    );
    headers.insert("x-request-id".into(), format!("{seed:04}-{i:08x}-4b1e"));
    headers.insert("accept".into(), "application/json".into());
    let mut source_labels = StringMap::new();
    source_labels.insert("app".into(), "productpage".into());
    source_labels.insert("version".into(), ["v1", "v2"][i % 2].into());
    OwnedBag::new()
        .with("source.service", Value::String(SERVICES[i % 4].into()))
        .with(
            "source.ip",
            Value::IpAddress([10, 0, (seed % 250) as u8, (i % 250) as u8].into()),
        )
        .with("source.labels", Value::StringMap(source_labels))
        .with(
            "destination.service",
            Value::String(SERVICES[(i + 1) % 4].into()),
        )
        .with("request.path", Value::String(PATHS[i % 4].into()))
        .with("request.method", Value::String("GET".into()))
        .with("request.headers", Value::StringMap(headers))
        .with("request.size", Value::Int64(0))
        .with(
            "request.time",
            Value::Timestamp(Timestamp::new(1_700_000_000 + i as i64, 0).expect("in range")),
        )
        .with("response.code", Value::Int64([200, 200, 200, 404][i % 4]))
        .with("response.size", Value::Int64(1000 + (i as i64) * 17))
        .with(
            "response.duration",
            Value::Duration(Duration::from_micros(800 + (i as u64) * 31)),
        )
        .with("context.protocol", Value::String("http".into()))
}

/// Requests go out as pre-encoded bytes; answers are read as
/// `(request_index, result.code)` (Check and Report answers share those
/// field numbers).
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = (i64, i32);
    type Encoder = RawEncoder;
    type Decoder = AnswerDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> AnswerDecoder {
        AnswerDecoder
    }
}

struct RawEncoder;

impl TonicEncoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct AnswerDecoder;

impl Decoder for AnswerDecoder {
    type Item = (i64, i32);
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<(i64, i32)>, tonic::Status> {
        let r = proto::CheckResponse::decode(src)
            .map_err(|e| tonic::Status::internal(format!("bad answer: {e}")))?;
        Ok(Some((r.request_index, r.result.map_or(0, |s| s.code))))
    }
}

/// The baseline: the same service shape with nothing behind it, built with
/// the same tonic (generated server, prost decoding).
mod echo {
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::process::ExitCode;

    use futures_util::{Stream, StreamExt};
    use mixer_proto::istio::mixer::v1 as proto;
    use mixer_proto::istio::mixer::v1::mixer_server::{Mixer, MixerServer};
    use tonic::{Request, Response, Status, Streaming};

    type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

    struct Echo;

    fn ok() -> Option<mixer_proto::google::rpc::Status> {
        Some(mixer_proto::google::rpc::Status::default())
    }

    #[tonic::async_trait]
    impl Mixer for Echo {
        type CheckStream = Answers<proto::CheckResponse>;
        type ReportStream = Answers<proto::ReportResponse>;
        type QuotaStream = Answers<proto::QuotaResponse>;

        async fn check(
            &self,
            req: Request<Streaming<proto::CheckRequest>>,
        ) -> Result<Response<Self::CheckStream>, Status> {
            Ok(Response::new(Box::pin(req.into_inner().map(|r| {
                r.map(|r| proto::CheckResponse {
                    request_index: r.request_index,
                    result: ok(),
                    ..Default::default()
                })
            }))))
        }

        async fn report(
            &self,
            req: Request<Streaming<proto::ReportRequest>>,
        ) -> Result<Response<Self::ReportStream>, Status> {
            Ok(Response::new(Box::pin(req.into_inner().map(|r| {
                r.map(|r| proto::ReportResponse {
                    request_index: r.request_index,
                    result: ok(),
                    ..Default::default()
                })
            }))))
        }

        async fn quota(
            &self,
            req: Request<Streaming<proto::QuotaRequest>>,
        ) -> Result<Response<Self::QuotaStream>, Status> {
            Ok(Response::new(Box::pin(req.into_inner().map(|r| {
                r.map(|r| proto::QuotaResponse {
                    request_index: r.request_index,
                    result: ok(),
                    amount: r.amount,
                    ..Default::default()
                })
            }))))
        }
    }

    pub(super) fn serve(addr: SocketAddr) -> ExitCode {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let served = runtime.block_on(
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(MixerServer::new(Echo))
                .serve(addr),
        );
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echo-server: {e}");
                ExitCode::from(1)
            }
        }
    }
}
