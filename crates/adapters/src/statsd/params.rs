//! The statsd adapter's params and their validation.

use std::collections::HashMap;
use std::time::Duration;

use crate::params::{Fields, ParamErrors, kind};
use crate::{Error, Params};

use super::template::NameTemplate;

/// The default statsd address.
pub const DEFAULT_ADDRESS: &str = "localhost:8125";
/// The default flush interval.
pub const DEFAULT_FLUSH_DURATION: Duration = Duration::from_millis(300);
/// The default datagram size bound (under any MTU).
pub const DEFAULT_FLUSH_BYTES: usize = 512;
/// The largest UDP payload over IPv4.
pub const MAX_FLUSH_BYTES: usize = 65_507;

/// A statsd metric type.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// `|c`: added up by the server.
    Counter,
    /// `|g`: the last value wins.
    Gauge,
    /// `|ms` for durations, `|h` otherwise.
    Distribution,
}

/// One metric's config.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricInfo {
    /// Its statsd type.
    pub kind: MetricType,
    /// The name built from dimensions; the instance name when absent.
    pub name_template: Option<NameTemplate>,
}

/// Validated statsd params.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsdParams {
    /// `host:port` of the statsd server (resolved when the handler starts).
    pub address: String,
    /// Prepended to every metric name as is (`foo.` makes `bar` `foo.bar`).
    pub prefix: String,
    /// How often buffered lines are sent.
    pub flush_duration: Duration,
    /// The largest datagram sent.
    pub flush_bytes: usize,
    /// The fraction of instances sent, tagged `|@rate` when below 1.
    pub sampling_rate: f64,
    /// Metric config by instance name.
    pub metrics: HashMap<String, MetricInfo>,
}

impl StatsdParams {
    /// Reads and validates params.
    pub fn parse(params: &Params) -> Result<StatsdParams, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let address = root.host_port("address", DEFAULT_ADDRESS, &mut errs);
        let prefix = root.string("prefix", &mut errs).unwrap_or_default();
        let flush_duration = match root.duration("flushDuration", &mut errs) {
            Some(d) if d.is_zero() => {
                errs.push(root.path_of("flushDuration"), "must be greater than 0");
                d
            }
            Some(d) => d,
            None => DEFAULT_FLUSH_DURATION,
        };
        let flush_bytes = match root.int("flushBytes", &mut errs) {
            None => DEFAULT_FLUSH_BYTES,
            Some(n) if (1..=MAX_FLUSH_BYTES as i64).contains(&n) => n as usize,
            Some(n) => {
                errs.push(
                    root.path_of("flushBytes"),
                    format!("must be between 1 and {MAX_FLUSH_BYTES}, got {n}"),
                );
                DEFAULT_FLUSH_BYTES
            }
        };
        let sampling_rate = match root.float("samplingRate", &mut errs) {
            None => 1.0,
            Some(r) if r > 0.0 && r <= 1.0 => r,
            Some(r) => {
                errs.push(
                    root.path_of("samplingRate"),
                    format!("must be greater than 0 and at most 1, got {r}"),
                );
                1.0
            }
        };
        let mut metrics = HashMap::new();
        match root.get("metrics") {
            None => {}
            Some(serde_json::Value::Object(m)) => {
                for (name, v) in m {
                    let path = format!("{}[{name:?}]", root.path_of("metrics"));
                    let f = Fields::at(path, v, &mut errs);
                    let kind = f.enumeration(
                        "type",
                        &[
                            ("COUNTER", MetricType::Counter),
                            ("GAUGE", MetricType::Gauge),
                            ("DISTRIBUTION", MetricType::Distribution),
                        ],
                        &mut errs,
                    );
                    if f.get("type").is_none() {
                        errs.push(
                            f.path_of("type"),
                            "required: one of COUNTER, GAUGE, DISTRIBUTION",
                        );
                    }
                    let name_template = f
                        .string("nameTemplate", &mut errs)
                        .filter(|t| !t.is_empty())
                        .and_then(|t| match NameTemplate::parse(&t) {
                            Ok(t) => Some(t),
                            Err(e) => {
                                errs.push(f.path_of("nameTemplate"), e);
                                None
                            }
                        });
                    f.finish(&mut errs);
                    if let Some(kind) = kind {
                        metrics.insert(
                            name.clone(),
                            MetricInfo {
                                kind,
                                name_template,
                            },
                        );
                    }
                }
            }
            Some(other) => errs.push(
                root.path_of("metrics"),
                format!(
                    "expected a map from instance names to metric info, got {}",
                    kind(other)
                ),
            ),
        }
        root.finish(&mut errs);
        errs.into_result(
            super::NAME,
            StatsdParams {
                address,
                prefix,
                flush_duration,
                flush_bytes,
                sampling_rate,
                metrics,
            },
        )
    }
}
