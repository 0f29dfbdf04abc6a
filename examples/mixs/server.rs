//! `mixs server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mixer_adapters::Registry;
use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
use mixer_server::{DEFAULT_ADDRESS, DEFAULT_MONITORING_ADDRESS, Options, Server};

use crate::args::Args;

/// The shipped configuration: `examples/config` under the working directory
/// (a checkout), else under the package that built this binary.
fn default_config_dir() -> PathBuf {
    let here = PathBuf::from("examples/config");
    if here.is_dir() {
        here
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/config")
    }
}

struct Settings {
    config_dir: PathBuf,
    address: SocketAddr,
    monitoring: SocketAddr,
    options: Options,
    check_cache: bool,
    /// Certificate, key and client CA files.
    tls: (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>),
}

fn parse(argv: Vec<String>) -> Result<Settings, String> {
    let mut s = Settings {
        config_dir: default_config_dir(),
        address: DEFAULT_ADDRESS.parse().map_err(|e| format!("{e}"))?,
        monitoring: DEFAULT_MONITORING_ADDRESS
            .parse()
            .map_err(|e| format!("{e}"))?,
        options: Options::default(),
        check_cache: true,
        tls: (None, None, None),
    };
    let mut a = Args::new(argv);
    while let Some((flag, inline)) = a.next_flag() {
        let o = &mut s.options;
        match flag.as_str() {
            "config-dir" => s.config_dir = a.value(&flag, inline)?.into(),
            "address" => s.address = a.parsed(&flag, inline)?,
            "monitoring-address" => s.monitoring = a.parsed(&flag, inline)?,
            "max-message-bytes" => o.max_message_bytes = a.parsed(&flag, inline)?,
            "message-ceiling-bytes" => o.message_ceiling_bytes = a.parsed(&flag, inline)?,
            "max-streams" => o.max_streams = a.parsed(&flag, inline)?,
            "max-in-flight" => o.max_in_flight = a.parsed(&flag, inline)?,
            "max-in-flight-per-stream" => o.max_in_flight_per_stream = a.parsed(&flag, inline)?,
            "max-contexts" => o.limits.max_contexts = a.parsed(&flag, inline)?,
            "max-dictionary-entries" => {
                o.limits.max_dictionary_entries = a.parsed(&flag, inline)?
            }
            "max-attributes" => o.limits.max_attributes_per_context = a.parsed(&flag, inline)?,
            "max-value-bytes" => o.limits.max_value_bytes = a.parsed(&flag, inline)?,
            "keepalive-secs" => {
                let secs: u64 = a.parsed(&flag, inline)?;
                o.keepalive_interval = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "keepalive-timeout-secs" => {
                o.keepalive_timeout = Duration::from_secs(a.parsed(&flag, inline)?)
            }
            "drain-secs" => o.drain_timeout = Duration::from_secs(a.parsed(&flag, inline)?),
            "config-poll-ms" => {
                o.config_poll_interval = Duration::from_millis(a.parsed(&flag, inline)?)
            }
            "no-check-cache" => s.check_cache = false,
            "tls-cert" => s.tls.0 = Some(a.value(&flag, inline)?.into()),
            "tls-key" => s.tls.1 = Some(a.value(&flag, inline)?.into()),
            "tls-client-ca" => s.tls.2 = Some(a.value(&flag, inline)?.into()),
            other => return Err(format!("unknown flag --{other}; try `mixs help`")),
        }
    }
    if let Some(p) = a.positional().first() {
        return Err(format!("unexpected argument {p:?}"));
    }
    if s.options.keepalive_timeout.is_zero() {
        return Err("--keepalive-timeout-secs must be at least 1".into());
    }
    if s.options.max_in_flight == 0 || s.options.max_in_flight_per_stream == 0 {
        return Err("--max-in-flight and --max-in-flight-per-stream must be at least 1".into());
    }
    Ok(s)
}

pub(crate) fn run(argv: Vec<String>) -> Result<ExitCode, String> {
    let s = parse(argv)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let result = serve(s).await;
        // Every dispatcher is gone by now (also when startup failed and a
        // rejected config's handlers are closing): let the closes finish
        // (flushing files, releasing ports) while the runtime still runs.
        if !mixer_dispatch::closed(CLOSE_WAIT).await {
            tracing::warn!("handlers still closing after {CLOSE_WAIT:?}; exiting anyway");
        }
        result
    })
}

/// How long exit waits for handlers to close.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

async fn serve(s: Settings) -> Result<ExitCode, String> {
    let mut dispatch = DispatchOptions::default();
    if !s.check_cache {
        dispatch = dispatch.without_cache();
    }
    let dispatcher = Dispatcher::new(
        Registry::builtin(),
        tokio::runtime::Handle::current(),
        dispatch,
    );
    let keep = dispatcher.clone();
    let builder = Server::builder(dispatcher)
        .options(s.options)
        .address(s.address)
        .monitoring_address(s.monitoring)
        .config_dir(&s.config_dir);
    let builder = with_tls(builder, &s.tls)?;
    let server = builder.bind().await.map_err(|e| e.to_string())?;
    tracing::info!(
        grpc = %server.local_addr(),
        monitoring = %server.monitoring_addr().map(|a| a.to_string()).unwrap_or_default(),
        config = %s.config_dir.display(),
        "mixs serving"
    );
    let done = server
        .serve_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    drop(keep);
    Ok(if done.drained && done.flushed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(unix)]
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown requested: draining");
}

#[cfg(not(unix))]
async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

fn with_tls(
    b: mixer_server::Builder,
    tls: &(Option<PathBuf>, Option<PathBuf>, Option<PathBuf>),
) -> Result<mixer_server::Builder, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    match tls {
        (None, None, None) => Ok(b),
        (Some(cert), Some(key), ca) => Ok(b.tls(mixer_server::TlsOptions {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            client_ca_pem: ca.as_ref().map(read).transpose()?,
        })),
        _ => Err("--tls-cert and --tls-key go together (--tls-client-ca needs both)".into()),
    }
}
