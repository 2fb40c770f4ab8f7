//! Scale benchmark of the operator's config push (issue 5, item 9).
//!
//! Starts the push server in-process on 127.0.0.1 with a self-signed certificate, loads
//! an in-memory snapshot for each of N namespaces, connects S simulated sidecars (the
//! sidecar's own `stream_once` client, spread evenly across the namespaces), then makes
//! E edits, each bumping one random namespace's snapshot and waiting until all of that
//! namespace's sidecars hold it, and finally edits every namespace at once. It prints
//! figures and asserts nothing about time.
//!
//! ```text
//! cargo run --release -p llmesh-operator --example push_scale -- \
//!     --sidecars 1000 --namespaces 100 --edits 20
//! ```
//!
//! Latency is per (edit, sidecar): from the snapshot being published to the source to a
//! task watching that sidecar's receiver seeing the new version. RSS is the whole
//! process, so it includes the simulated sidecars' side of every connection.

// A benchmark binary: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmesh_operator::metrics::Metrics;
use llmesh_operator::push::{
    AuthError, AuthFuture, Authenticator, Identity, Push, SnapshotSource, TlsSource, serve,
    tls_config,
};
use llmesh_sidecar::config::Snapshot;
use llmesh_sidecar::config::operator::{OperatorSource, stream_once};
use llmesh_sidecar::config::snapshot::{
    BudgetSpec, DeploymentSpec, FORMAT, KeySpec, ModelSpec, Pricing, ProviderKind, SecretString,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

struct Args {
    sidecars: usize,
    namespaces: usize,
    edits: usize,
}

fn args() -> Args {
    let mut args = Args {
        sidecars: 1000,
        namespaces: 100,
        edits: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--sidecars" => &mut args.sidecars,
            "--namespaces" => &mut args.namespaces,
            "--edits" => &mut args.edits,
            _ => {
                eprintln!("usage: push_scale [--sidecars N] [--namespaces N] [--edits N]");
                std::process::exit(2);
            }
        };
        *slot = match it.next().and_then(|v| v.parse().ok()) {
            Some(n) if n > 0 => n,
            _ => {
                eprintln!("{flag} needs a positive number");
                std::process::exit(2);
            }
        };
    }
    args
}

/// A line of /proc/self/status in KiB, e.g. `VmRSS`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The soft open-files limit, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Tokens `token-NS` belong to namespace `NS`.
struct StaticAuth;

impl Authenticator for StaticAuth {
    fn identify<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            token
                .strip_prefix("token-")
                .map(Identity::namespace)
                .ok_or(AuthError::Rejected("unknown".into()))
        })
    }
}

type Sender = watch::Sender<Option<Arc<Snapshot>>>;

/// Snapshots in memory, one channel per namespace, with the time each was published.
#[derive(Default)]
struct Snapshots(Mutex<HashMap<String, (Sender, Option<Instant>)>>);

impl Snapshots {
    /// Publishes `snapshot` for `ns`; returns when.
    fn publish(&self, ns: &str, snapshot: Snapshot) -> Instant {
        let mut map = self.0.lock().unwrap();
        let entry = map
            .entry(ns.into())
            .or_insert_with(|| (watch::channel(None).0, None));
        let now = Instant::now();
        entry.1 = Some(now);
        entry.0.send_replace(Some(Arc::new(snapshot)));
        now
    }
}

impl SnapshotSource for Snapshots {
    fn subscribe(&self, ns: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        let mut map = self.0.lock().unwrap();
        map.entry(ns.into())
            .or_insert_with(|| (watch::channel(None).0, None))
            .0
            .subscribe()
    }
    fn changed_at(&self, ns: &str) -> Option<Instant> {
        self.0.lock().unwrap().get(ns).and_then(|e| e.1)
    }
}

fn version(ns: &str, revision: u32) -> String {
    format!("{ns}-r{revision}")
}

/// A namespace's snapshot at `revision`: 5 models with 2 deployments each (credentials,
/// prices, limits, fallbacks), 20 virtual keys and 2 budgets.
fn snapshot(ns: &str, revision: u32) -> Snapshot {
    let pairs = [
        ("gpt-4o", ProviderKind::Openai, ProviderKind::Azure),
        (
            "claude-sonnet",
            ProviderKind::Anthropic,
            ProviderKind::Openrouter,
        ),
        (
            "gemini-flash",
            ProviderKind::Gemini,
            ProviderKind::Openrouter,
        ),
        ("llama-70b", ProviderKind::Groq, ProviderKind::Together),
        ("mistral-large", ProviderKind::Mistral, ProviderKind::Vllm),
    ];
    let names: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let models = pairs
        .iter()
        .enumerate()
        .map(|(i, (name, a, b))| {
            let deployment = |j: usize, provider: ProviderKind| {
                let mut d =
                    DeploymentSpec::new(format!("{name}-{j}"), provider, format!("{name}-2025"));
                d.api_key = Some(SecretString::new(format!(
                    "sk-{ns}-{name}-{j}-{}",
                    "x".repeat(40)
                )));
                d.base_url = Some(format!("https://{name}-{j}.{ns}.example.com/v1"));
                d.weight = 1 + u32::try_from(j).unwrap_or(0) + revision % 3;
                d.rpm = Some(600);
                d.tpm = Some(200_000);
                d
            };
            let mut m = ModelSpec::new(*name, vec![deployment(0, *a), deployment(1, *b)]);
            m.fallbacks = vec![names[(i + 1) % names.len()].to_owned()];
            m.pricing = Pricing {
                input_micros_per_million: 2_500_000,
                output_micros_per_million: 10_000_000,
                cached_input_micros_per_million: 1_250_000,
                cache_write_input_micros_per_million: 0,
            };
            m.default_max_tokens = Some(4096);
            m
        })
        .collect();
    let keys = (0..20)
        .map(|k| KeySpec {
            name: format!("key-{k}"),
            sha256: format!("{:064x}", k * 7919 + 1),
            display_prefix: format!("sk-llmesh-{k:04}"),
            models: names.iter().take(3).map(|s| (*s).to_owned()).collect(),
            rpm: Some(60),
            tpm: Some(100_000),
            max_parallel_requests: Some(8),
            expires_at_unix: None,
            team: Some(format!("team-{}", k % 4)),
            user: Some(format!("user-{k}")),
            budget: Some(format!("budget-{}", k % 2)),
        })
        .collect();
    let budgets = (0..2)
        .map(|b| BudgetSpec {
            name: format!("budget-{b}"),
            limit_micros: 100_000_000,
            keys: Vec::new(),
            models: Vec::new(),
            downgrade_to: Some("llama-70b".into()),
        })
        .collect();
    Snapshot {
        format: FORMAT,
        version: version(ns, revision),
        models,
        keys,
        budgets,
    }
}

/// A small xorshift generator, so the benchmark needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// p-th percentile (nearest rank) of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    format!(
        "p50 {}, p90 {}, p99 {}, max {} (n = {})",
        ms(percentile(&v, 50.0)),
        ms(percentile(&v, 90.0)),
        ms(percentile(&v, 99.0)),
        ms(v.last().copied().unwrap_or_default()),
        v.len()
    )
}

/// (sidecar index, version it now holds, when it was seen)
type Arrival = (usize, String, Instant);

/// Receives arrivals until every sidecar in `waiting` holds its expected version; returns
/// each one's latency from `published[version]`.
async fn collect(
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    mut waiting: HashMap<usize, String>,
    published: &HashMap<String, Instant>,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(waiting.len());
    while !waiting.is_empty() {
        let Ok(Some((i, v, at))) =
            tokio::time::timeout(Duration::from_secs(60), arrivals.recv()).await
        else {
            eprintln!(
                "{} sidecars did not receive their version within 60 s; giving up",
                waiting.len()
            );
            std::process::exit(1);
        };
        if waiting.get(&i) == Some(&v) {
            waiting.remove(&i);
            latencies.push(at.duration_since(published[&v]));
        }
    }
    latencies
}

#[tokio::main]
async fn main() {
    let args = args();
    let needed = 2 * args.sidecars as u64 + 64;
    match open_files_limit() {
        Some(limit) if limit < needed => {
            eprintln!(
                "the open-files limit is {limit}, but {} sidecars need about {needed} file \
                 descriptors (a client and a server socket each); raise it, e.g. \
                 `ulimit -n {}`, and run again",
                args.sidecars,
                needed.next_power_of_two()
            );
            std::process::exit(1);
        }
        _ => {}
    }
    let rss_start = status_kib("VmRSS");

    // The server, with every namespace's snapshot loaded.
    let dir = std::env::temp_dir().join(format!("llmesh-push-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (tls, ca_pem) = tls_config(&TlsSource::SelfSigned(vec![
        "localhost".into(),
        "127.0.0.1".into(),
    ]))
    .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let snapshots = Arc::new(Snapshots::default());
    let namespaces: Vec<String> = (0..args.namespaces).map(|n| format!("ns-{n:03}")).collect();
    let mut revisions = vec![1u32; args.namespaces];
    let mut published = HashMap::new();
    for ns in &namespaces {
        let at = snapshots.publish(ns, snapshot(ns, 1));
        published.insert(version(ns, 1), at);
    }
    let snapshot_bytes = serde_json::to_vec(&snapshot(&namespaces[0], 1))
        .unwrap()
        .len();
    let metrics = Metrics::new().unwrap();
    let push = Arc::new(Push::new(
        snapshots.clone(),
        Arc::new(StaticAuth),
        metrics.clone(),
    ));
    tokio::spawn(serve(listener, tls, push, std::future::pending()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss_server = status_kib("VmRSS");

    println!(
        "push_scale: {} sidecars across {} namespaces, {} edits; snapshot {} bytes of JSON \
         ({} worker threads)",
        args.sidecars,
        args.namespaces,
        args.edits,
        snapshot_bytes,
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    // The sidecars: each a `stream_once` client (reconnecting if a stream ends) plus a
    // task that timestamps every version its receiver gets.
    let token_files: Vec<PathBuf> = namespaces.iter().map(|ns| write_token(&dir, ns)).collect();
    let (arrive_tx, mut arrivals) = mpsc::unbounded_channel::<Arrival>();
    let failures = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let started = Instant::now();
    // Connect latency counts from here, not from the first snapshots' publication.
    let mut connect_base = HashMap::new();
    let mut waiting = HashMap::new();
    for i in 0..args.sidecars {
        let ns = i % args.namespaces;
        waiting.insert(i, version(&namespaces[ns], 1));
        connect_base.insert(version(&namespaces[ns], 1), started);
        let source = OperatorSource {
            url: url.clone(),
            ca_file: ca_file.clone(),
            token_file: token_files[ns].clone(),
        };
        let (tx, mut rx) = watch::channel(None::<Arc<Snapshot>>);
        let failures = failures.clone();
        let first_error = first_error.clone();
        tokio::spawn(async move {
            loop {
                let (connected, _) = watch::channel(false);
                let have = tx.borrow().as_ref().map(|s| s.version.clone());
                let result = stream_once(&source, have, &tx, &connected).await;
                failures.fetch_add(1, Ordering::Relaxed);
                let message = match result {
                    Ok(()) => "stream ended".to_owned(),
                    Err(e) => e.to_string(),
                };
                first_error.lock().unwrap().get_or_insert(message);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let arrive_tx = arrive_tx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let at = Instant::now();
                let v = rx.borrow_and_update().as_ref().map(|s| s.version.clone());
                if let Some(v) = v
                    && arrive_tx.send((i, v, at)).is_err()
                {
                    break;
                }
            }
        });
    }
    let connect_latencies = collect(&mut arrivals, waiting, &connect_base).await;
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_connected = status_kib("VmRSS");
    println!(
        "connect: all {} sidecars held their first snapshot {:.2} s after the first was \
         started; per sidecar, from start to first snapshot: {}",
        args.sidecars,
        connect_time.as_secs_f64(),
        summary(connect_latencies)
    );

    // Edits: one random namespace at a time, each awaited by all its sidecars.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut latencies = Vec::new();
    let edits_started = Instant::now();
    for _ in 0..args.edits {
        let ns = rng.below(args.namespaces);
        revisions[ns] += 1;
        let name = &namespaces[ns];
        let v = version(name, revisions[ns]);
        let waiting = (ns..args.sidecars)
            .step_by(args.namespaces)
            .map(|i| (i, v.clone()))
            .collect();
        let snap = snapshot(name, revisions[ns]);
        published.insert(v, snapshots.publish(name, snap));
        latencies.extend(collect(&mut arrivals, waiting, &published).await);
    }
    let edits_time = edits_started.elapsed();

    // Then every namespace at once (a worst case: e.g. all sidecars' config changing
    // together), timed from each namespace's own publish.
    let mut waiting = HashMap::new();
    for (ns, name) in namespaces.iter().enumerate() {
        revisions[ns] += 1;
        let v = version(name, revisions[ns]);
        for i in (ns..args.sidecars).step_by(args.namespaces) {
            waiting.insert(i, v.clone());
        }
        let snap = snapshot(name, revisions[ns]);
        published.insert(v, snapshots.publish(name, snap));
    }
    let burst = collect(&mut arrivals, waiting, &published).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_end = status_kib("VmRSS");

    println!(
        "propagation, {} single-namespace edits ({} (edit, sidecar) pairs, {:.2} s in all): {}",
        args.edits,
        latencies.len(),
        edits_time.as_secs_f64(),
        summary(latencies)
    );
    println!(
        "propagation, all {} namespaces edited at once: {}",
        args.namespaces,
        summary(burst)
    );
    println!(
        "memory (VmRSS, whole process): at start {}, server + snapshots loaded {}, \
         after connect {}, at end {}; peak (VmHWM) {}",
        mib(rss_start),
        mib(rss_server),
        mib(rss_connected),
        mib(rss_end),
        mib(status_kib("VmHWM"))
    );
    println!(
        "  note: after connect, RSS includes the {} simulated sidecars' side of every \
         connection (TLS client, HTTP/2 client, received snapshot), not only the operator's; \
         {:.1} KiB per connection, both sides together",
        args.sidecars,
        rss_connected.saturating_sub(rss_server) as f64 / args.sidecars as f64
    );
    let text = String::from_utf8(metrics.render()).unwrap_or_default();
    let connected = text
        .lines()
        .find_map(|l| l.strip_prefix("llmesh_operator_connected_sidecars "))
        .unwrap_or("?");
    println!(
        "open file descriptors {}; server's connected_sidecars gauge {}; client reconnects {}{}",
        open_fds(),
        connected,
        failures.load(Ordering::Relaxed),
        first_error
            .lock()
            .unwrap()
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(0);
}

fn write_token(dir: &Path, ns: &str) -> PathBuf {
    let file = dir.join(format!("{ns}.token"));
    std::fs::write(&file, format!("token-{ns}")).unwrap();
    file
}
