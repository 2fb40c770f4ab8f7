//! `llmesh-bench`: the data-plane benchmark's two halves, run by `scripts/bench.sh`.
//!
//! ```text
//! llmesh-bench mock [--listen 127.0.0.1:0] [--latency-ms 0] [--chunks 50]
//!                   [--chunk-delay-ms 0] [--embedding-dim 1536] [--threads 2]
//! llmesh-bench run --mock ADDR --sidecar ADDR [--sidecar-pid PID]
//!                  [--litellm ADDR --litellm-pid PID --litellm-key KEY]
//!                  [--duration 5] [--warmup 1] [--concurrency 1,16,64]
//!                  [--rate 1000] [--rate-duration 10] [--kinds chat,stream,embed,messages]
//!                  [--upstreams openai,anthropic] [--threads 2] [--out FILE]
//! llmesh-bench free-port
//! ```
//!
//! `mock` is a fast upstream speaking OpenAI's and Anthropic's formats; it prints
//! `listening on http://ADDR` once it accepts connections. `run` is the load generator
//! and report; the report (Markdown) goes to stdout and to `--out`, progress to stderr.
//! `free-port` prints a free loopback port for the script to give the proxies.

mod load;
mod mock;
mod procfs;
mod run;
mod scenario;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use scenario::{Kind, Scenario, Target, Upstream};

const USAGE: &str = "usage: llmesh-bench mock [--listen ADDR] [--latency-ms N] [--chunks N] [--chunk-delay-ms N] [--embedding-dim N] [--threads N]
       llmesh-bench run --mock ADDR --sidecar ADDR [--sidecar-pid PID] [--litellm ADDR --litellm-pid PID --litellm-key KEY] [--duration S] [--warmup S] [--concurrency 1,16,64] [--rate N] [--rate-duration S] [--kinds chat,stream,embed,messages] [--upstreams openai,anthropic] [--threads N] [--out FILE]
       llmesh-bench free-port";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let result = match command.as_str() {
        "mock" => flags(args).and_then(|f| mock(&f)),
        "run" => flags(args).and_then(|f| run(&f)),
        "free-port" => free_port(),
        "-h" | "--help" => Err(String::new()),
        other => Err(format!("unknown command {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("llmesh-bench: {message}");
            }
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` and `--name=value` pairs.
fn flags(mut args: impl Iterator<Item = String>) -> Result<HashMap<String, String>, String> {
    let mut flags = HashMap::new();
    while let Some(arg) = args.next() {
        let Some(name) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => (
                name.to_owned(),
                args.next()
                    .ok_or_else(|| format!("--{name} needs a value"))?,
            ),
        };
        flags.insert(name, value);
    }
    Ok(flags)
}

fn known(flags: &HashMap<String, String>, names: &[&str]) -> Result<(), String> {
    match flags.keys().find(|k| !names.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown flag --{k}")),
        None => Ok(()),
    }
}

fn parsed<T: std::str::FromStr>(
    flags: &HashMap<String, String>,
    name: &str,
    default: T,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match flags.get(name) {
        Some(v) => v.parse().map_err(|e| format!("--{name} {v:?}: {e}")),
        None => Ok(default),
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn mock(flags: &HashMap<String, String>) -> Result<(), String> {
    known(
        flags,
        &[
            "listen",
            "latency-ms",
            "chunks",
            "chunk-delay-ms",
            "embedding-dim",
            "threads",
        ],
    )?;
    let defaults = mock::MockSettings::default();
    let settings = mock::MockSettings {
        listen: parsed(flags, "listen", defaults.listen)?,
        latency: Duration::from_millis(parsed(flags, "latency-ms", 0)?),
        chunks: parsed(flags, "chunks", defaults.chunks)?,
        chunk_delay: Duration::from_millis(parsed(flags, "chunk-delay-ms", 0)?),
        embedding_dim: parsed(flags, "embedding-dim", defaults.embedding_dim)?,
    };
    let threads = parsed(flags, "threads", 2usize)?;
    runtime(threads)?.block_on(async move {
        let mock = mock::start(settings.clone())
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let mut stdout = std::io::stdout().lock();
        // The script waits for this line, so it must leave the pipe now.
        writeln!(stdout, "listening on http://{}", mock.addr())
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("stdout: {e}"))?;
        drop(stdout);
        // Serves until interrupted; a failed signal handler means serving until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        drop(mock);
        Ok(())
    })
}

fn list<T>(
    flags: &HashMap<String, String>,
    name: &str,
    default: &str,
    item: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    let text = flags.get(name).map_or(default, String::as_str);
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| item(s.trim()).ok_or_else(|| format!("--{name}: {s:?} is not known")))
        .collect()
}

fn run(flags: &HashMap<String, String>) -> Result<(), String> {
    known(
        flags,
        &[
            "mock",
            "sidecar",
            "sidecar-pid",
            "litellm",
            "litellm-pid",
            "litellm-key",
            "duration",
            "warmup",
            "concurrency",
            "rate",
            "rate-duration",
            "kinds",
            "upstreams",
            "threads",
            "out",
        ],
    )?;
    let addr = |name: &str| -> Result<Option<SocketAddr>, String> {
        flags
            .get(name)
            .map(|v| v.parse().map_err(|e| format!("--{name} {v:?}: {e}")))
            .transpose()
    };
    let pid = |name: &str| -> Result<Option<u32>, String> {
        flags
            .get(name)
            .map(|v| v.parse().map_err(|e| format!("--{name} {v:?}: {e}")))
            .transpose()
    };
    let mock = addr("mock")?.ok_or("--mock is required")?;
    let sidecar = addr("sidecar")?.ok_or("--sidecar is required")?;
    let mut targets = vec![
        (Target::Direct(mock), None),
        (Target::Llmesh(sidecar), pid("sidecar-pid")?),
    ];
    if let Some(litellm) = addr("litellm")? {
        let key = flags
            .get("litellm-key")
            .cloned()
            .ok_or("--litellm needs --litellm-key")?;
        targets.push((Target::Litellm(litellm, key), pid("litellm-pid")?));
    }
    let kinds = list(flags, "kinds", "chat,stream,embed", |s| match s {
        "chat" => Some(Kind::Chat),
        "stream" => Some(Kind::Stream),
        "embed" => Some(Kind::Embed),
        "messages" => Some(Kind::Messages),
        _ => None,
    })?;
    let upstreams = list(flags, "upstreams", "openai,anthropic", |s| match s {
        "openai" => Some(Upstream::OpenAi),
        "anthropic" => Some(Upstream::Anthropic),
        _ => None,
    })?;
    let mut scenarios = Vec::new();
    for &upstream in &upstreams {
        for &kind in &kinds {
            // Anthropic has no embeddings API.
            if !(kind == Kind::Embed && upstream == Upstream::Anthropic) {
                scenarios.push(Scenario { kind, upstream });
            }
        }
    }
    let seconds = |name: &str, default: f64| -> Result<Duration, String> {
        let s: f64 = parsed(flags, name, default)?;
        Duration::try_from_secs_f64(s).map_err(|e| format!("--{name}: {e}"))
    };
    let plan = run::Plan {
        targets,
        scenarios,
        concurrency: list(flags, "concurrency", "1,16,64", |s| {
            s.parse().ok().filter(|n| *n > 0)
        })?,
        warmup: seconds("warmup", 1.0)?,
        duration: seconds("duration", 5.0)?,
        rate: parsed(flags, "rate", 1000)?,
        rate_duration: seconds("rate-duration", 10.0)?,
    };
    let threads = parsed(flags, "threads", 2usize)?;
    let report = runtime(threads)?.block_on(run::run(&plan));
    print!("{report}");
    if let Some(path) = flags.get("out") {
        std::fs::write(path, &report).map_err(|e| format!("--out {path}: {e}"))?;
    }
    Ok(())
}

fn free_port() -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("{port}");
    Ok(())
}
