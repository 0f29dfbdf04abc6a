//! `embedded_proxy`: an HTTP reverse proxy with the Mixer linked in. Each
//! request is checked and charged one unit of quota by the in-process
//! dispatcher before it is forwarded, and reported after the response: no
//! network hop to a Mixer.
//!
//! ```text
//! embedded_proxy [--listen HOST:PORT] [--upstream HOST:PORT] [--config-dir DIR]
//!                [--destination-service NAME] [--quota NAME] [--no-check-cache] [--no-mixer]
//! ```
//!
//! Denials map to HTTP statuses as [`proxy::http_status`] documents
//! (PERMISSION_DENIED 403, UNAUTHENTICATED 401, RESOURCE_EXHAUSTED 429,
//! FAILED_PRECONDITION 412, UNAVAILABLE 503).

// A command-line tool prints its results.
#![allow(clippy::print_stdout)]

mod proxy;

use std::path::PathBuf;
use std::process::ExitCode;

use mixer_adapters::Registry;
use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, Options as DispatchOptions};

const USAGE: &str = "\
embedded_proxy: an HTTP reverse proxy that checks, rate-limits and reports every
request with a Mixer linked into the process

FLAGS (defaults in brackets):
  --listen HOST:PORT            where to listen [127.0.0.1:8080]
  --upstream HOST:PORT          where allowed requests go [127.0.0.1:8081]
  --config-dir DIR              Mixer configuration [examples/config]
  --destination-service NAME    destination.service of every request
                                [reviews.default.svc.cluster.local]
  --quota NAME                  quota charged per request, '' for none [requestquota]
  --no-check-cache              ask the dispatcher on every request
  --no-mixer                    a plain proxy (for comparing latency)
";

struct Cli {
    settings: proxy::Settings,
    config_dir: PathBuf,
    quota: Option<String>,
    cache: bool,
    mixer: bool,
}

fn parse(argv: Vec<String>) -> Result<Cli, String> {
    let mut cli = Cli {
        settings: proxy::Settings {
            listen: ([127, 0, 0, 1], 8080).into(),
            upstream: ([127, 0, 0, 1], 8081).into(),
            destination_service: "reviews.default.svc.cluster.local".into(),
            mixer: None,
        },
        config_dir: PathBuf::from("examples/config"),
        quota: Some("requestquota".to_string()),
        cache: true,
        mixer: true,
    };
    let mut args = argv.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let addr = |v: String| {
            v.parse()
                .map_err(|_| format!("{flag} {v:?}: not a HOST:PORT address"))
        };
        match flag.as_str() {
            "--listen" => cli.settings.listen = addr(value()?)?,
            "--upstream" => cli.settings.upstream = addr(value()?)?,
            "--config-dir" => cli.config_dir = PathBuf::from(value()?),
            "--destination-service" => cli.settings.destination_service = value()?,
            "--quota" => cli.quota = Some(value()?).filter(|q| !q.is_empty()),
            "--no-check-cache" => cli.cache = false,
            "--no-mixer" => cli.mixer = false,
            other => return Err(format!("unknown flag {other}; try --help")),
        }
    }
    Ok(cli)
}

async fn run(argv: Vec<String>) -> Result<(), String> {
    let Cli {
        mut settings,
        config_dir,
        quota,
        cache,
        mixer,
    } = parse(argv)?;
    if mixer {
        let dispatcher = Dispatcher::new(
            Registry::builtin(),
            tokio::runtime::Handle::current(),
            DispatchOptions::default(),
        );
        let mut docs = Documents::new();
        docs.add_dir(&config_dir)
            .map_err(|e| format!("reading {}: {e}", config_dir.display()))?;
        dispatcher
            .load(docs)
            .map_err(|e| format!("configuration in {}: {e}", config_dir.display()))?;
        let mut m = proxy::Mixer::new(dispatcher);
        m.quota = quota;
        if !cache {
            m.cache = None;
        }
        settings.mixer = Some(m);
    }
    let running = proxy::start(settings.clone())
        .await
        .map_err(|e| format!("listening on {}: {e}", settings.listen))?;
    eprintln!(
        "embedded_proxy: http://{} -> http://{} (mixer {}, config {})",
        running.addr,
        settings.upstream,
        if mixer { "in-process" } else { "off" },
        config_dir.display(),
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("waiting for ctrl-c: {e}"))?;
    if let Some(m) = &settings.mixer {
        // Deliver what the report queues still hold.
        m.dispatcher.flush().await;
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv
        .iter()
        .any(|a| a == "--help" || a == "-h" || a == "help")
    {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("embedded_proxy: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(argv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embedded_proxy: {e}");
            ExitCode::from(2)
        }
    }
}
