//! Telemetry adapters: recording a 5-label metric instance into the
//! prometheus handler against raw prometheus-client increments doing the
//! same label lookup (same run), and instances per second into each of the
//! four telemetry adapters, seen from the caller of `report`.

#[allow(unreachable_pub)]
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mixer_adapters::fluentd::{FluentdHandler, FluentdParams};
use mixer_adapters::prometheus::{PrometheusHandler, PrometheusParams};
use mixer_adapters::statsd::{StatsdHandler, StatsdParams};
use mixer_adapters::stdio::{StdioHandler, StdioParams};
use mixer_adapters::template::{Dimensions, LogEntryInstance, MetricInstance, ReportBatch};
use mixer_adapters::{BuildEnv, Handler, Params};
use mixer_attributes::{Timestamp, Value};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

const LABELS: [&str; 5] = [
    "source_service",
    "destination_service",
    "request_method",
    "response_code",
    "protocol",
];

/// 64 distinct label sets, as a busy mesh sends them.
fn metric_instances() -> Vec<MetricInstance> {
    (0..64)
        .map(|i| MetricInstance {
            name: "requestcount.instance.istio-system".into(),
            value: Value::Int64(1),
            dimensions: [
                (LABELS[0], Value::String(format!("svc-{}.default", i % 8))),
                (
                    LABELS[1],
                    Value::String(format!("reviews-{}.default", i / 8)),
                ),
                (LABELS[2], Value::String("GET".into())),
                (LABELS[3], Value::Int64(200 + (i % 3) * 100)),
                (LABELS[4], Value::String("http".into())),
            ]
            .into_iter()
            .map(|(k, v)| (Arc::from(k), v))
            .collect::<Dimensions>(),
            monitored_resource_type: String::new(),
            monitored_resource_dimensions: Dimensions::new(),
        })
        .collect()
}

fn log_instances(n: usize) -> Vec<LogEntryInstance> {
    (0..n)
        .map(|i| LogEntryInstance {
            name: "accesslog.instance.istio-system".into(),
            variables: [
                (
                    "sourceIp",
                    Value::IpAddress([10, 0, 0, (i % 250) as u8].into()),
                ),
                ("url", Value::String(format!("/reviews/{i}"))),
                ("responseCode", Value::Int64(200)),
                ("latency", Value::Duration(Duration::from_micros(1234))),
                ("userAgent", Value::String("curl/8.0".into())),
            ]
            .into_iter()
            .map(|(k, v)| (Arc::from(k), v))
            .collect::<Dimensions>(),
            timestamp: Timestamp::new(1_700_000_000, i as i32),
            severity: "info".into(),
            monitored_resource_type: String::new(),
            monitored_resource_dimensions: Dimensions::new(),
        })
        .collect()
}

fn prometheus_handler(env: &BuildEnv) -> PrometheusHandler {
    let p = PrometheusParams::parse(&Params::new(json!({
        "host": "127.0.0.1", "port": 0,
        "metrics": [{"instanceName": "requestcount.instance.istio-system",
                     "name": "requests_total", "kind": "COUNTER", "labelNames": LABELS}],
    })))
    .unwrap();
    PrometheusHandler::build(p, env).unwrap()
}

fn prometheus_vs_raw(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = BuildEnv::new(rt.handle().clone());
    let h = prometheus_handler(&env);
    let instances = metric_instances();

    let family = Family::<Vec<(String, String)>, Counter>::default();
    let mut registry = Registry::default();
    registry.register("requests", "requests", family.clone());

    let mut g = c.benchmark_group("prometheus_5_labels");
    g.throughput(Throughput::Elements(instances.len() as u64));
    g.bench_function("mixer_prometheus_handler", |b| {
        b.iter(|| {
            for i in &instances {
                h.record(i);
            }
        })
    });
    // The same lookup by hand: each label's value found in the instance's
    // dimensions and rendered to text, then the family's get_or_create.
    let raw = |i: &MetricInstance| {
        let labels: Vec<(String, String)> = LABELS
            .iter()
            .map(|l| {
                let v = i
                    .dimensions
                    .get(*l)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                (l.to_string(), v)
            })
            .collect();
        family.get_or_create(&labels).inc();
    };
    g.bench_function("raw_prometheus_client", |b| {
        b.iter(|| {
            for i in &instances {
                raw(i);
            }
        })
    });
    g.finish();
    eprintln!(
        "allocations per 5-label record into an existing series: mixer {:.2}, raw prometheus-client {:.2}",
        counting_alloc::per_call(1000, || h.record(&instances[7])),
        counting_alloc::per_call(1000, || raw(&instances[7])),
    );
}

fn instances_per_second(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = BuildEnv::new(rt.handle().clone());
    let metrics = metric_instances();
    let logs = log_instances(64);
    let mut g = c.benchmark_group("telemetry_report_64");
    g.throughput(Throughput::Elements(64));

    let prom = prometheus_handler(&env);
    g.bench_function("prometheus", |b| {
        b.iter_batched(
            || ReportBatch::Metric(metrics.clone()),
            |batch| prom.report(batch).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // A receiver that never reads: the kernel drops what overflows its
    // buffer, as with a real statsd under load; sends never wait.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = StatsdParams::parse(&Params::new(json!({
        "address": sink.local_addr().unwrap().to_string(),
        "metrics": {"requestcount.instance.istio-system":
            {"type": "COUNTER", "nameTemplate": "{{.destination_service}}.{{.response_code}}"}},
    })))
    .unwrap();
    let statsd = StatsdHandler::build(p, &env).unwrap();
    g.bench_function("statsd", |b| {
        b.iter_batched(
            || ReportBatch::Metric(metrics.clone()),
            |batch| statsd.report(batch).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // A receiver that reads and discards.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let p = FluentdParams::parse(&Params::new(json!({
        "address": addr.to_string(), "instanceBufferSize": 1_000_000,
        "pushIntervalDuration": "100ms",
    })))
    .unwrap();
    let fluentd = FluentdHandler::build(p, &env).unwrap();
    g.bench_function("fluentd", |b| {
        b.iter_batched(
            || ReportBatch::LogEntry(logs.clone()),
            |batch| {
                let _ = fluentd.report(batch);
            },
            BatchSize::SmallInput,
        )
    });

    let dir = tempfile::tempdir().unwrap();
    let p = StdioParams::parse(&Params::new(json!({
        "logStream": "ROTATED_FILE",
        "outputPath": dir.path().join("access.log").to_str().unwrap(),
        "maxMegabytesBeforeRotation": 64, "maxRotatedFiles": 2,
    })))
    .unwrap();
    let stdio = StdioHandler::build(p, &env).unwrap();
    g.bench_function("stdio", |b| {
        b.iter_batched(
            || ReportBatch::LogEntry(logs.clone()),
            |batch| {
                let _ = stdio.report(batch);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // Seen from the backend: report, then wait until the worker has written
    // everything accepted (`sent` / `written` caught up). Fluentd flushes
    // every 64 KiB here so that the wait measures the pipeline, not the
    // batching interval.
    let p = FluentdParams::parse(&Params::new(json!({
        "address": addr.to_string(), "instanceBufferSize": 1_000_000,
        "maxBatchSizeBytes": 65_536, "pushIntervalDuration": "1ms",
    })))
    .unwrap();
    let fluentd_e2e = FluentdHandler::build(p, &env).unwrap();
    let mut g = c.benchmark_group("telemetry_end_to_end_64");
    g.throughput(Throughput::Elements(64));
    for (name, h, done) in [
        ("fluentd", &fluentd_e2e as &dyn Handler, "sent"),
        ("stdio", &stdio, "written"),
    ] {
        let count = |h: &dyn Handler, name: &str| {
            h.counters()
                .iter()
                .find(|c| c.name == name)
                .map_or(0, |c| c.value)
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                let mut target = count(h, done);
                for _ in 0..iters {
                    target += 64;
                    // Back-pressure by hand: wait for room rather than drop.
                    while count(h, done) + 4096 < target {
                        std::thread::yield_now();
                    }
                    if let Err(mixer_adapters::Error::QueueFull { dropped }) =
                        h.report(ReportBatch::LogEntry(logs.clone()))
                    {
                        target -= dropped as u64;
                    }
                }
                while count(h, done) < target {
                    std::thread::yield_now();
                }
                start.elapsed()
            })
        });
    }
    g.finish();

    for (name, h) in [
        ("statsd", &statsd as &dyn Handler),
        ("fluentd", &fluentd),
        ("stdio", &stdio),
    ] {
        rt.block_on(h.close().resolve()).unwrap();
        let counters: Vec<String> = h
            .counters()
            .iter()
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        eprintln!("{name}: {}", counters.join(" "));
    }
}

criterion_group!(benches, prometheus_vs_raw, instances_per_second);
criterion_main!(benches);
