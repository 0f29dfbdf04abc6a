//! `mixs`: the standalone Mixer server and its operator tools.
//!
//! ```text
//! mixs server   [--config-dir DIR] [--address HOST:PORT] [--monitoring-address HOST:PORT] [limits...]
//! mixs validate <FILE|DIR>...
//! mixs expr     [--attr NAME=VALUE]... [--json JSON|@FILE] EXPRESSION
//! ```
//!
//! Run `mixs help` for every flag.

// A command-line tool prints its results.
#![allow(clippy::print_stdout)]

mod args;
mod expr;
mod server;
mod validate;

use std::process::ExitCode;

const USAGE: &str = "\
mixs: an Istio-compatible Mixer server

USAGE:
  mixs server [FLAGS]           serve the Mixer gRPC API (Check, Quota, Report streams)
  mixs validate <FILE|DIR>...   check configuration files; lists every problem, exit 1 if any
  mixs expr [FLAGS] EXPRESSION  type-check and evaluate one expression against attributes
  mixs help                     this text

SERVER FLAGS (defaults in brackets):
  --config-dir DIR                  config directory, watched for changes [examples/config]
  --address HOST:PORT               gRPC address [127.0.0.1:9091]
  --monitoring-address HOST:PORT    /metrics, /health, /ready over HTTP [127.0.0.1:9093]
  --max-message-bytes N             largest request message served; a larger one is
                                    answered INVALID_ARGUMENT, the stream goes on [1048576]
  --message-ceiling-bytes N         largest message read at all; beyond it the stream
                                    ends with OUT_OF_RANGE [4194304]
  --max-streams N                   streams open at once [10000]
  --max-in-flight N                 requests dispatched at once before shedding [10000]
  --max-in-flight-per-stream N      pipelined requests per stream [256]
  --max-contexts N                  attribute contexts per stream [64]
  --max-dictionary-entries N        dictionary words per stream [10000]
  --max-attributes N                attributes per context [1024]
  --max-value-bytes N               bytes of one attribute value [65536]
  --keepalive-secs N                HTTP/2 keepalive ping interval, 0 for off [30]
  --keepalive-timeout-secs N        close a connection whose ping is unanswered this long [10]
  --drain-secs N                    graceful shutdown: drain timeout [10]
  --config-poll-ms N                config directory poll interval [1000]
  --no-check-cache                  turn the server-side check cache off
  --tls-cert FILE --tls-key FILE    serve gRPC over TLS (PEM files)
  --tls-client-ca FILE              and require client certificates signed by this CA (mutual TLS)

EXPR FLAGS:
  --attr NAME=VALUE   an attribute, VALUE parsed by the attribute's type in the vocabulary
                      (string maps: --attr 'request.headers=k1:v1,k2:v2'); repeatable
  --json JSON|@FILE   attributes as one JSON object: {\"request.path\": \"/x\", \"response.code\": 200}
";

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let command = argv.remove(0);
    let result = match command.as_str() {
        "server" => server::run(argv),
        "validate" => validate::run(argv),
        "expr" => expr::run(argv),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other:?}; try `mixs help`")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("mixs {command}: {message}");
            ExitCode::from(2)
        }
    }
}
