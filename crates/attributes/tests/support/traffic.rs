//! Deterministic, realistic proxy traffic: the attribute bags the sidecar
//! proxy of one workload (`reviews`) sends for the HTTP requests it serves,
//! mostly from one caller (`productpage`), sometimes from the ingress. Shared by
//! the wire-size test, the benchmarks and the recorded example stream.
//!
//! About 20 attributes per request: identities and addresses that repeat,
//! paths with ids in them, sizes, times, a request id and a trace id that
//! never repeat, and two header maps.
#![allow(dead_code)]

use std::time::Duration;

use mixer_attributes::{OwnedBag, StringMap, Timestamp, Value};

/// A small xorshift generator: reproducible without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Callers: (pod, ip, user agent).
const SOURCES: [(&str, [u8; 4], &str); 3] = [
    (
        "productpage-v1-6b746f74dc-9stvs",
        [10, 44, 3, 21],
        "python-requests/2.31.0",
    ),
    (
        "productpage-v1-6b746f74dc-kq8zp",
        [10, 44, 3, 22],
        "python-requests/2.31.0",
    ),
    (
        "istio-ingressgateway-5d8b7c6f9-x7wq2",
        [10, 44, 9, 2],
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    ),
];
const SERVICE: &str = "reviews.default.svc.cluster.local";
const PATHS: [&str; 3] = ["/reviews/", "/reviews/", "/health"];

fn hex(rng: &mut Rng, n: usize) -> String {
    let mut s = String::with_capacity(n);
    while s.len() < n {
        s.push_str(&format!("{:016x}", rng.next()));
    }
    s.truncate(n);
    s
}

fn uuid(rng: &mut Rng) -> String {
    let h = hex(rng, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `n` requests as one proxy would send them on one stream.
pub(crate) fn requests(n: usize) -> Vec<OwnedBag> {
    let mut rng = Rng::new(0x5eed_1234_abcd);
    let mut now = Timestamp::new(1_700_000_000, 0).expect("in range");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        // Requests arrive 0-20 ms apart; a proxy serves a few sources and
        // destinations, so identities repeat while ids and times do not.
        let gap = rng.below(20_000_000) as i64;
        let nanos = i64::from(now.nanos()) + gap;
        now = Timestamp::new(
            now.seconds() + nanos / 1_000_000_000,
            (nanos % 1_000_000_000) as i32,
        )
        .expect("in range");
        let (source, src_ip, agent) = match rng.below(20) {
            0..=8 => SOURCES[0],
            9..=17 => SOURCES[1],
            _ => SOURCES[2],
        };
        let service = SERVICE;
        let dst_ip = [10, 44, 0, 7];
        let base = rng.pick(&PATHS);
        let path = if base == "/health" {
            base.to_string()
        } else {
            format!("{base}{}", rng.below(500))
        };
        let method = if rng.below(10) < 8 { "GET" } else { "POST" };
        let request_id = uuid(&mut rng);
        let trace_id = hex(&mut rng, 16);
        let code = match rng.below(100) {
            0..=94 => 200,
            95..=97 => 404,
            _ => 503,
        };
        let request_size = if method == "POST" {
            200 + rng.below(2000) as i64
        } else {
            0
        };
        let response_size = 300 + rng.below(5000) as i64;
        let latency = Duration::from_micros(500 + rng.below(50_000));
        let response_time = {
            let n = i64::from(now.nanos()) + latency.as_nanos() as i64;
            Timestamp::new(
                now.seconds() + n / 1_000_000_000,
                (n % 1_000_000_000) as i32,
            )
            .expect("in range")
        };

        let request_headers: StringMap = [
            (
                ":authority",
                service.split('.').next().unwrap_or(service).to_string(),
            ),
            (":path", path.clone()),
            (":method", method.to_string()),
            ("user-agent", agent.to_string()),
            ("x-request-id", request_id.clone()),
            ("x-b3-traceid", trace_id.clone()),
            ("accept", "application/json".to_string()),
        ]
        .into_iter()
        .collect();
        let response_headers: StringMap = [
            ("content-type", "application/json".to_string()),
            ("content-length", response_size.to_string()),
            ("server", "envoy".to_string()),
            (
                "x-envoy-upstream-service-time",
                (latency.as_millis()).to_string(),
            ),
        ]
        .into_iter()
        .collect();

        let bag = OwnedBag::new()
            .with(
                "source.uid",
                Value::String(format!("kubernetes://{source}.default")),
            )
            .with("source.ip", Value::Bytes(src_ip.to_vec()))
            .with("destination.service", Value::String(service.to_string()))
            .with(
                "destination.uid",
                Value::String(format!(
                    "kubernetes://{}-v1.default",
                    service.split('.').next().unwrap_or(service)
                )),
            )
            .with("destination.ip", Value::Bytes(dst_ip.to_vec()))
            .with("destination.port", Value::Int64(9080))
            .with("request.id", Value::String(request_id))
            .with("request.path", Value::String(path))
            .with("request.method", Value::String(method.to_string()))
            .with("request.host", Value::String(service.to_string()))
            .with("request.useragent", Value::String(agent.to_string()))
            .with("request.size", Value::Int64(request_size))
            .with("request.time", Value::Timestamp(now))
            .with("request.headers", Value::StringMap(request_headers))
            .with("response.code", Value::Int64(code))
            .with("response.size", Value::Int64(response_size))
            .with("response.time", Value::Timestamp(response_time))
            .with("response.duration", Value::Duration(latency))
            .with("response.headers", Value::StringMap(response_headers))
            .with("connection.mtls", Value::Bool(source != SOURCES[2].0))
            .with("context.protocol", Value::String("http".to_string()));
        out.push(bag);
    }
    out
}
