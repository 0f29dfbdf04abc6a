//! `mixc`: calls a Mixer's Check, Report or Quota from the command line,
//! with attributes given as typed flags in the style of the original tool.
//!
//! ```text
//! mixc check  [-s HOST:PORT] [ATTRIBUTE FLAGS] [--repeat N] [--concurrency C] [--json]
//! mixc report [-s HOST:PORT] [ATTRIBUTE FLAGS] [--repeat N] [--concurrency C] [--json]
//! mixc quota  [-s HOST:PORT] [ATTRIBUTE FLAGS] --quota NAME [--amount N] [--best_effort]
//!             [--dedup_id ID] [--repeat N] [--concurrency C] [--json]
//! ```
//!
//! Run `mixc help` for every flag.

// A command-line tool prints its results.
#![allow(clippy::print_stdout)]

mod attrs;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mixer_attributes::OwnedBag;
use mixer_client::{CacheKeys, Client, FailPolicy, Options, QuotaArgs, Source, Status};
use mixer_proto::code;

const USAGE: &str = "\
mixc: call a Mixer's Check, Report or Quota

USAGE:
  mixc check  [FLAGS]    one Check per repetition
  mixc report [FLAGS]    one Report per repetition
  mixc quota  [FLAGS]    one Quota allocation per repetition (needs --quota)
  mixc help              this text

FLAGS (defaults in brackets):
  -s, --address HOST:PORT          the Mixer [127.0.0.1:9091]
  --string_attributes k=v,...      STRING attributes
  --int64_attributes k=1,...       INT64 attributes
  --double_attributes k=1.5,...    DOUBLE attributes
  --bool_attributes k=true,...     BOOL attributes
  --timestamp_attributes k=T,...   TIMESTAMP attributes, RFC 3339 (2017-01-02T15:04:05Z)
  --duration_attributes k=D,...    DURATION attributes (1.5s, 300ms, 2h45m)
  --bytes_attributes k=B,...       BYTES attributes: hex pairs with colons (0a:ff:10) or
                                   run together (0aff10); 4 or 16 bytes read as an IP
  --stringmap_attributes k=M,...   STRING_MAP attributes: M is k1:v1;k2:v2 (a leading ':'
                                   belongs to the key: :method:GET)
  --quota NAME                     quota to allocate (quota command)
  --amount N                       amount to allocate [1]
  --best_effort                    grant what is left rather than all or nothing
  --dedup_id ID                    deduplication id [one per call]
  --repeat N                       calls to make [1]
  --concurrency C                  calls in flight at once [1]
  --timeout D                      time allowed per call [5s]
  --json                           one JSON object per result instead of text

Each flag may be repeated; later values of an attribute win. Exit status: 0
when every call was answered by the server (whatever the answer), 1 when some
could not reach it, 2 on bad usage.
";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Command {
    Check,
    Report,
    Quota,
}

struct Settings {
    command: Command,
    address: String,
    bag: OwnedBag,
    quota: Option<String>,
    amount: i64,
    best_effort: bool,
    dedup_id: Option<String>,
    repeat: u64,
    concurrency: u64,
    timeout: Duration,
    json: bool,
}

fn parse(argv: Vec<String>) -> Result<Settings, String> {
    let mut argv = argv.into_iter();
    let command = match argv.next().as_deref() {
        Some("check") => Command::Check,
        Some("report") => Command::Report,
        Some("quota") => Command::Quota,
        Some(other) => return Err(format!("unknown command {other:?}; try `mixc help`")),
        None => return Err("a command is needed: check, report or quota".into()),
    };
    let mut s = Settings {
        command,
        address: "127.0.0.1:9091".into(),
        bag: OwnedBag::new(),
        quota: None,
        amount: 1,
        best_effort: false,
        dedup_id: None,
        repeat: 1,
        concurrency: 1,
        timeout: Duration::from_secs(5),
        json: false,
    };
    let mut rest: std::collections::VecDeque<String> = argv.collect();
    while let Some(arg) = rest.pop_front() {
        let (flag, inline) = match arg.strip_prefix("--") {
            Some(f) => match f.split_once('=') {
                // `--string_attributes=a=b` keeps `a=b` as the value.
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (f.to_string(), None),
            },
            None if arg == "-s" => ("address".to_string(), None),
            None => return Err(format!("unexpected argument {arg:?}")),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| rest.pop_front())
                .ok_or_else(|| format!("--{flag} needs a value"))
        };
        let number = |v: String| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("--{flag} {v:?}: not a whole number"))
        };
        match flag.as_str() {
            "address" => s.address = value()?,
            "quota" => s.quota = Some(value()?),
            "amount" => {
                let v = value()?;
                s.amount = v
                    .parse()
                    .map_err(|_| format!("--amount {v:?}: not an integer"))?;
            }
            "best_effort" => s.best_effort = true,
            "dedup_id" => s.dedup_id = Some(value()?),
            "repeat" => s.repeat = number(value()?)?,
            "concurrency" => s.concurrency = number(value()?)?.max(1),
            "timeout" => {
                let v = value()?;
                s.timeout = mixer_attributes::parse_duration(&v)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("--timeout {v:?}: not a positive duration"))?;
            }
            "json" => s.json = true,
            f => match attrs::Kind::of_flag(f) {
                Some(kind) => attrs::add(&mut s.bag, f, kind, &value()?)?,
                None => return Err(format!("unknown flag --{f}; try `mixc help`")),
            },
        }
    }
    if s.command == Command::Quota && s.quota.is_none() {
        return Err("quota needs --quota NAME".into());
    }
    Ok(s)
}

/// One call's outcome, printed as it comes.
struct Outcome {
    index: u64,
    status: Status,
    reached: bool,
    expiration: Option<Duration>,
    granted: Option<i64>,
}

fn print(command: Command, o: &Outcome, json: bool) {
    let name = match command {
        Command::Check => "check",
        Command::Report => "report",
        Command::Quota => "quota",
    };
    if json {
        let mut v = serde_json::json!({
            "call": name,
            "index": o.index,
            "code": o.status.code,
            "status": code::name(o.status.code),
            "message": &*o.status.message,
        });
        if let Some(e) = o.expiration {
            v["expiration"] = mixer_attributes::format_duration(e).into();
        }
        if let Some(g) = o.granted {
            v["granted"] = g.into();
        }
        println!("{v}");
        return;
    }
    let mut line = format!("{name} {}: {}", o.index, o.status);
    if let Some(g) = o.granted {
        line.push_str(&format!(", granted {g}"));
    }
    if let Some(e) = o.expiration.filter(|e| !e.is_zero()) {
        line.push_str(&format!(
            ", valid for {}",
            mixer_attributes::format_duration(e)
        ));
    }
    println!("{line}");
}

async fn call(client: &Client, s: &Settings, index: u64) -> Outcome {
    match s.command {
        Command::Check => {
            let r = client.check(&s.bag).await;
            Outcome {
                index,
                reached: r.source == Source::Remote,
                status: r.status,
                expiration: Some(r.expiration),
                granted: None,
            }
        }
        Command::Report => {
            let (status, reached) = match client.report_remote(&s.bag).await {
                Ok(status) => (status, true),
                Err(e) => (Status::new(code::UNAVAILABLE, e.to_string()), false),
            };
            Outcome {
                index,
                reached,
                status,
                expiration: None,
                granted: None,
            }
        }
        Command::Quota => {
            let args = QuotaArgs {
                quota: s.quota.clone().unwrap_or_default(),
                amount: s.amount,
                best_effort: s.best_effort,
                deduplication_id: s.dedup_id.clone(),
            };
            let r = client.quota_remote(&s.bag, &args).await;
            Outcome {
                index,
                reached: r.source == Source::Remote,
                status: r.status,
                expiration: Some(r.expiration),
                granted: Some(r.granted),
            }
        }
    }
}

async fn run(s: Settings) -> Result<ExitCode, String> {
    let mut o = Options::new(s.address.clone());
    // A tool shows what the server says: no cache, no prefetch, and a
    // failure is a failure.
    o.cache_keys = CacheKeys::Disabled;
    o.quota.prefetch = false;
    o.fail_policy = FailPolicy::Close;
    o.timeout = s.timeout;
    o.connect_timeout = s.timeout;
    let client = Client::new(o).map_err(|e| e.to_string())?;
    let s = Arc::new(s);
    let next = Arc::new(AtomicU64::new(1));
    let unreached = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..s.concurrency.min(s.repeat.max(1)) {
        let (client, s, next, unreached) =
            (client.clone(), s.clone(), next.clone(), unreached.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index > s.repeat {
                    break;
                }
                let outcome = call(&client, &s, index).await;
                if !outcome.reached {
                    unreached.fetch_add(1, Ordering::Relaxed);
                }
                print(s.command, &outcome, s.json);
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| e.to_string())?;
    }
    Ok(if unreached.load(Ordering::Relaxed) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if matches!(
        argv.first().map(String::as_str),
        Some("help" | "--help" | "-h")
    ) {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let settings = match parse(argv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mixc: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mixc: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mixc: {e}");
            ExitCode::from(2)
        }
    }
}
