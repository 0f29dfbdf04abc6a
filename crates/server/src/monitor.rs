//! The monitoring endpoint: `/metrics` (Prometheus text format 0.0.4),
//! `/health` (the process answers) and `/ready` (a configuration is loaded
//! and the server is not shutting down), over plain HTTP/1.1.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mixer_dispatch::{MetricKind, Sample};
use tokio::net::TcpListener;

use crate::shared::{Method, Shared};
use crate::stats::ServerStats;

/// Serves the endpoint on `listener` until `stop` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: impl Future<Output = ()> + Send,
) {
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else {
            // Out of file descriptors and the like: try again shortly
            // rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, req.uri().path())) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn respond(shared: &Shared, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render(shared),
        ),
        "/health" | "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/ready" | "/readyz" => {
            if shared.is_shutting_down() {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "shutting down\n".into(),
                )
            } else if shared.dispatcher.generation() == 0 {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "no configuration loaded\n".into(),
                )
            } else {
                (StatusCode::OK, "text/plain", "ready\n".into())
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /health or /ready\n".into(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// The server's counters and the dispatcher's samples in Prometheus text.
pub(crate) fn render(shared: &Shared) -> String {
    let mut samples = server_samples(&ServerStats::read(shared), shared);
    samples.extend(shared.dispatcher.metrics());
    to_text(&samples)
}

fn server_samples(s: &ServerStats, shared: &Shared) -> Vec<Sample> {
    use MetricKind::{Counter, Gauge};
    let mut out = Vec::new();
    let mut push = |name: &'static str, help: &'static str, kind, labels, value: f64| {
        out.push(Sample {
            name: name.into(),
            help: help.into(),
            kind,
            labels,
            value,
        })
    };
    for m in Method::ALL {
        let c = s.method(m);
        let l = || vec![("method", m.name().to_string())];
        push(
            "mixer_server_streams_total",
            "gRPC streams opened",
            Counter,
            l(),
            c.streams as f64,
        );
        push(
            "mixer_server_requests_total",
            "Requests read from streams",
            Counter,
            l(),
            c.requests as f64,
        );
        push(
            "mixer_server_requests_not_ok_total",
            "Requests answered with a status other than OK",
            Counter,
            l(),
            c.not_ok as f64,
        );
        push(
            "mixer_server_invalid_requests_total",
            "Requests refused as invalid (INVALID_ARGUMENT): malformed, bad attribute update, over a limit (message size included)",
            Counter,
            l(),
            c.invalid as f64,
        );
        push(
            "mixer_server_shed_requests_total",
            "Requests refused with UNAVAILABLE because the server was saturated",
            Counter,
            l(),
            c.shed as f64,
        );
        push(
            "mixer_server_stream_errors_total",
            "Streams ended by a transport error (message over the ceiling, truncated frame)",
            Counter,
            l(),
            c.stream_errors as f64,
        );
    }
    push(
        "mixer_server_open_streams",
        "gRPC streams open now",
        Gauge,
        vec![],
        s.open_streams as f64,
    );
    push(
        "mixer_server_in_flight_requests",
        "Requests being dispatched now",
        Gauge,
        vec![],
        s.in_flight as f64,
    );
    push(
        "mixer_server_streams_refused_total",
        "Streams refused (over the limit or shutting down)",
        Counter,
        vec![],
        s.streams_refused as f64,
    );
    push(
        "mixer_server_config_reloads_total",
        "Reloads of the watched config directory, by result",
        Counter,
        vec![("result", "ok".into())],
        s.config_reloads_ok as f64,
    );
    push(
        "mixer_server_config_reloads_total",
        "Reloads of the watched config directory, by result",
        Counter,
        vec![("result", "failed".into())],
        s.config_reloads_failed as f64,
    );
    push(
        "mixer_server_config_generation",
        "Generation of the running configuration (0: none loaded)",
        Gauge,
        vec![],
        shared.dispatcher.generation() as f64,
    );
    out
}

/// Prometheus text: samples of one name together, under one HELP and TYPE.
fn to_text(samples: &[Sample]) -> String {
    let mut order: Vec<&str> = Vec::new();
    for s in samples {
        if !order.contains(&&*s.name) {
            order.push(&s.name);
        }
    }
    let mut out = String::with_capacity(samples.len() * 80);
    for name in order {
        let mut first = true;
        for s in samples.iter().filter(|s| s.name == name) {
            if first {
                let kind = match s.kind {
                    MetricKind::Counter => "counter",
                    MetricKind::Gauge => "gauge",
                };
                let _ = writeln!(out, "# HELP {name} {}", escape_help(&s.help));
                let _ = writeln!(out, "# TYPE {name} {kind}");
                first = false;
            }
            out.push_str(name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", s.value);
        }
    }
    out
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_name_and_escapes() {
        let s = |name: &'static str, labels: Vec<(&'static str, String)>, v| Sample {
            name: name.into(),
            help: "h\nx".into(),
            kind: MetricKind::Counter,
            labels,
            value: v,
        };
        let text = to_text(&[
            s("a_total", vec![("k", "1".into())], 1.0),
            s("b", vec![], 2.5),
            s("a_total", vec![("k", "q\"\\\n".into())], 3.0),
        ]);
        assert_eq!(
            text,
            "# HELP a_total h\\nx\n# TYPE a_total counter\na_total{k=\"1\"} 1\n\
             a_total{k=\"q\\\"\\\\\\n\"} 3\n# HELP b h\\nx\n# TYPE b counter\nb 2.5\n"
        );
    }
}
