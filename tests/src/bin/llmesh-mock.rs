//! `llmesh-mock`: the mock OpenAI provider as a standalone server, for
//! benchmarks and out-of-process tests that script it by model name
//! (`mock-error-429`, `mock-slow-250`, ...; see `llmesh_tests::openai`).
//!
//! Prints exactly one line, `listening on http://ADDR`, once it accepts
//! connections, then serves until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use llmesh_tests::openai::OpenAi;
use llmesh_tests::{Mock, MockConfig};

const USAGE: &str = "usage: llmesh-mock [--listen 127.0.0.1:0] [--latency-ms N]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<MockConfig, String> {
    // Recording would grow without bound under a benchmark, and nobody can
    // read it from outside the process anyway.
    let mut config = MockConfig {
        record_requests: false,
        ..MockConfig::default()
    };
    let mut args = args;
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                config.listen = v
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--latency-ms" => {
                let v = value()?;
                let ms = v
                    .parse::<u64>()
                    .map_err(|e| format!("--latency-ms {v}: {e}"))?;
                config.latency = Duration::from_millis(ms);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("llmesh-mock: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mock = match Mock::serve(OpenAi::default(), config.clone()).await {
        Ok(mock) => mock,
        Err(e) => {
            eprintln!("llmesh-mock: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    // Whoever started us waits for this line (and parses the port from it),
    // so it must leave the pipe now rather than when a buffer fills.
    if writeln!(stdout, "listening on http://{}", mock.addr())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    // Ctrl-C exits cleanly; without a signal handler we serve until killed.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    drop(mock);
    ExitCode::SUCCESS
}
