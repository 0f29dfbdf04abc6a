//! The stdio adapter's params and their validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::params::{Fields, ParamErrors};
use crate::{Error, Params};

/// Where lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// The process' standard output.
    Stdout,
    /// The process' standard error.
    Stderr,
    /// A file, appended to.
    File,
    /// A file rotated by size and age, with a bounded number kept.
    RotatedFile,
}

/// A line's level, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `info`.
    Info,
    /// `warn`.
    Warning,
    /// `error`.
    Error,
}

impl Level {
    /// As written in lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warn",
            Level::Error => "error",
        }
    }
}

const LEVELS: [(&str, Level); 3] = [
    ("INFO", Level::Info),
    ("WARNING", Level::Warning),
    ("ERROR", Level::Error),
];

/// Rotation limits, each meaning what its name says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rotation {
    /// A file reaching this size is rotated before the next line.
    pub max_bytes: u64,
    /// A file this old is rotated before the next line.
    pub max_age: Duration,
    /// Rotated files kept; older ones are deleted.
    pub max_files: usize,
}

/// Validated stdio params.
#[derive(Clone, Debug, PartialEq)]
pub struct StdioParams {
    /// Where lines go.
    pub log_stream: LogStream,
    /// The file, for FILE and ROTATED_FILE.
    pub output_path: Option<PathBuf>,
    /// JSON lines (true) or console lines.
    pub output_as_json: bool,
    /// Lines below this level are not written.
    pub output_level: Level,
    /// The level of metric lines.
    pub metric_level: Level,
    /// Instance severities to levels, beside the default spellings.
    pub severity_levels: BTreeMap<String, Level>,
    /// For ROTATED_FILE.
    pub rotation: Rotation,
}

/// The level of a severity string: the configured map first, then the
/// usual spellings in any case (`info`, `Warning`, `ERR`...), else info.
pub fn level_of(severity: &str, configured: &BTreeMap<String, Level>) -> Level {
    if let Some(l) = configured.get(severity) {
        return *l;
    }
    let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(severity));
    if is(&["warn", "warning"]) {
        Level::Warning
    } else if is(&["err", "error", "fatal", "critical", "alert", "emergency"]) {
        Level::Error
    } else {
        Level::Info
    }
}

impl StdioParams {
    /// Reads and validates params.
    pub fn parse(params: &Params) -> Result<StdioParams, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let log_stream = root
            .enumeration(
                "logStream",
                &[
                    ("STDOUT", LogStream::Stdout),
                    ("STDERR", LogStream::Stderr),
                    ("FILE", LogStream::File),
                    ("ROTATED_FILE", LogStream::RotatedFile),
                ],
                &mut errs,
            )
            .unwrap_or(LogStream::Stdout);
        let output_path = root
            .string("outputPath", &mut errs)
            .filter(|p| !p.is_empty());
        match (log_stream, &output_path) {
            (LogStream::File | LogStream::RotatedFile, None) => errs.push(
                root.path_of("outputPath"),
                "required when logStream is FILE or ROTATED_FILE",
            ),
            (LogStream::Stdout | LogStream::Stderr, Some(_)) => errs.push(
                root.path_of("outputPath"),
                "only for logStream FILE or ROTATED_FILE",
            ),
            _ => {}
        }
        let output_as_json = root.bool("outputAsJson", &mut errs).unwrap_or(true);
        let output_level = root
            .enumeration("outputLevel", &LEVELS, &mut errs)
            .unwrap_or(Level::Info);
        let metric_level = root
            .enumeration("metricLevel", &LEVELS, &mut errs)
            .unwrap_or(Level::Info);
        let mut severity_levels = BTreeMap::new();
        if let Some(m) = root.string_map("severityLevels", &mut errs) {
            for (k, v) in m {
                match LEVELS.iter().find(|(n, _)| *n == v) {
                    Some((_, l)) => {
                        severity_levels.insert(k, *l);
                    }
                    None => errs.push(
                        format!("{}.{k}", root.path_of("severityLevels")),
                        format!("expected one of INFO, WARNING, ERROR, got {v:?}"),
                    ),
                }
            }
        }
        let max_mb = match root.float("maxMegabytesBeforeRotation", &mut errs) {
            None => 100.0,
            Some(v) if v > 0.0 && v <= 1e6 => v,
            Some(v) => {
                errs.push(
                    root.path_of("maxMegabytesBeforeRotation"),
                    format!("must be greater than 0 and at most 1000000, got {v}"),
                );
                100.0
            }
        };
        let max_days = match root.float("maxDaysBeforeRotation", &mut errs) {
            None => 30.0,
            Some(v) if v > 0.0 && v <= 36_500.0 => v,
            Some(v) => {
                errs.push(
                    root.path_of("maxDaysBeforeRotation"),
                    format!("must be greater than 0 and at most 36500, got {v}"),
                );
                30.0
            }
        };
        let max_files = match root.int("maxRotatedFiles", &mut errs) {
            None => 1000,
            Some(n) if (0..=1_000_000).contains(&n) => n as usize,
            Some(n) => {
                errs.push(
                    root.path_of("maxRotatedFiles"),
                    format!("must be between 0 and 1000000, got {n}"),
                );
                1000
            }
        };
        root.finish(&mut errs);
        errs.into_result(
            super::NAME,
            StdioParams {
                log_stream,
                output_path: output_path.map(PathBuf::from),
                output_as_json,
                output_level,
                metric_level,
                severity_levels,
                rotation: Rotation {
                    max_bytes: (max_mb * 1024.0 * 1024.0) as u64,
                    max_age: Duration::from_secs_f64(max_days * 86_400.0),
                    max_files,
                },
            },
        )
    }
}
