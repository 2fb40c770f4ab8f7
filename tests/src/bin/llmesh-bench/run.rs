//! The benchmark run: every scenario at every concurrency against every target, one
//! after another in the same process and the same minutes (so ratios compare like with
//! like on a shared machine), then the fixed-rate runs for the latency goals, then the
//! report: a Markdown table, the proxies' memory and the goals met or missed.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::load::{self, Mode, Outcome, percentile};
use crate::procfs;
use crate::scenario::{Kind, Scenario, Target, Upstream, request};

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The targets; the first is the direct one, ratios are taken against it.
    pub targets: Vec<(Target, Option<u32>)>,
    /// Scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// Closed-loop concurrencies.
    pub concurrency: Vec<usize>,
    /// Unmeasured time before each run.
    pub warmup: Duration,
    /// Measured time of each closed-loop run.
    pub duration: Duration,
    /// Requests per second of the fixed-rate runs; 0 skips them.
    pub rate: u32,
    /// Measured time of each fixed-rate run.
    pub rate_duration: Duration,
}

/// One measured run.
struct Row {
    scenario: Scenario,
    /// `c=16` or `1000 rps`.
    load: String,
    target: &'static str,
    outcome: Outcome,
    total: Percentiles,
    first: Percentiles,
    /// CPU seconds the proxy used during the measured window.
    cpu: Option<f64>,
    /// Most resident memory seen during the run, KiB.
    rss_peak_kib: Option<u64>,
}

#[derive(Clone, Copy, Default)]
struct Percentiles {
    p50: Option<u32>,
    p99: Option<u32>,
}

impl Percentiles {
    fn of(mut values: Vec<u32>) -> Percentiles {
        values.sort_unstable();
        Percentiles {
            p50: percentile(&values, 50.0),
            p99: percentile(&values, 99.0),
        }
    }
}

/// Runs the plan, printing progress to stderr; returns the report (Markdown).
pub async fn run(plan: &Plan) -> String {
    let mut report = String::new();
    let idle: Vec<_> = plan
        .targets
        .iter()
        .map(|(t, pid)| (t.name(), pid.and_then(procfs::memory)))
        .collect();
    let mut rows = Vec::new();
    for &scenario in &plan.scenarios {
        for &c in &plan.concurrency {
            for (target, pid) in &plan.targets {
                let row = measure(
                    scenario,
                    target,
                    *pid,
                    Mode::Closed(c),
                    format!("c={c}"),
                    plan.warmup,
                    plan.duration,
                )
                .await;
                rows.push(row);
            }
        }
    }
    if plan.rate > 0 {
        // LiteLLM cannot serve 1,000 rps on this machine; the fixed rate compares the
        // sidecar with the direct call only.
        let fixed_targets: Vec<_> = plan
            .targets
            .iter()
            .filter(|(t, _)| !matches!(t, Target::Litellm(..)))
            .collect();
        for &scenario in plan.scenarios.iter().filter(|s| s.kind != Kind::Embed) {
            for (target, pid) in &fixed_targets {
                let mode = Mode::Fixed {
                    rate: plan.rate,
                    connections: 32,
                };
                let row = measure(
                    scenario,
                    target,
                    *pid,
                    mode,
                    format!("{} rps", plan.rate),
                    plan.warmup,
                    plan.rate_duration,
                )
                .await;
                rows.push(row);
            }
        }
    }
    table(&mut report, &rows);
    memory(&mut report, plan, &idle);
    goals(&mut report, &rows, plan);
    report
}

async fn measure(
    scenario: Scenario,
    target: &Target,
    pid: Option<u32>,
    mode: Mode,
    load_name: String,
    warmup: Duration,
    duration: Duration,
) -> Row {
    eprintln!("  {scenario:<16} {load_name:<9} {:<8} ...", target.name());
    let spec = request(scenario, target);
    // Sample the proxy's memory through the run: VmHWM is a lifetime peak, this is the
    // peak of this run.
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = pid.map(|pid| {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(m) = procfs::memory(pid) {
                    peak.fetch_max(m.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    // CPU is read around the whole run; the warm-up is subtracted in proportion below.
    let cpu_before = pid.and_then(procfs::cpu_seconds);
    let started = tokio::time::Instant::now();
    let outcome = load::run(&spec, mode, warmup, duration).await;
    let wall = started.elapsed();
    let cpu_after = pid.and_then(procfs::cpu_seconds);
    sampling.store(false, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    // The warm-up is load too: charge the proxy's CPU to the measured requests by the
    // measured share of the run's wall time.
    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if wall > Duration::ZERO => {
            Some((b - a) * (outcome.elapsed.as_secs_f64() / wall.as_secs_f64()).min(1.0))
        }
        _ => None,
    };
    let total = Percentiles::of(outcome.samples.iter().map(|s| s.total_us).collect());
    let first = Percentiles::of(outcome.samples.iter().map(|s| s.first_us).collect());
    let row = Row {
        scenario,
        load: load_name,
        target: target.name(),
        total,
        first,
        cpu,
        rss_peak_kib: pid.map(|_| peak.load(Ordering::Relaxed)),
        outcome,
    };
    eprintln!(
        "    {:.0} rps, p50 {} ms, p99 {} ms, {} errors{}",
        row.outcome.rps(),
        ms(row.total.p50),
        ms(row.total.p99),
        row.outcome.errors,
        row.outcome
            .first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    row
}

fn ms(us: Option<u32>) -> String {
    us.map_or_else(
        || "-".to_owned(),
        |us| format!("{:.2}", f64::from(us) / 1000.0),
    )
}

fn added(row: Option<u32>, base: Option<u32>) -> String {
    match (row, base) {
        (Some(r), Some(b)) => format!("{:+.2}", (f64::from(r) - f64::from(b)) / 1000.0),
        _ => "-".to_owned(),
    }
}

fn base_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.target == "direct" && r.scenario == row.scenario && r.load == row.load)
}

fn table(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "| scenario | load | target | rps | p50 ms | p99 ms | added p50 / p99 ms | TTFT p50 / p99 ms | added TTFT p50 / p99 ms | rps vs direct | errors | proxy CPU s | CPU s / 1k req | proxy RSS peak MiB |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        let base = base_of(rows, row).filter(|b| !std::ptr::eq(*b, row));
        let stream = matches!(row.scenario.kind, Kind::Stream | Kind::Messages);
        let (added_total, added_first, ratio) = match base {
            Some(b) => (
                format!(
                    "{} / {}",
                    added(row.total.p50, b.total.p50),
                    added(row.total.p99, b.total.p99)
                ),
                if stream {
                    format!(
                        "{} / {}",
                        added(row.first.p50, b.first.p50),
                        added(row.first.p99, b.first.p99)
                    )
                } else {
                    String::new()
                },
                if b.outcome.rps() > 0.0 {
                    let ratio = row.outcome.rps() / b.outcome.rps();
                    // LiteLLM's ratios are far below 0.01: keep their digits.
                    if ratio < 0.1 {
                        format!("{ratio:.4}")
                    } else {
                        format!("{ratio:.2}")
                    }
                } else {
                    "-".to_owned()
                },
            ),
            None => (String::new(), String::new(), String::new()),
        };
        let first = if stream {
            format!("{} / {}", ms(row.first.p50), ms(row.first.p99))
        } else {
            String::new()
        };
        let n = row.outcome.samples.len();
        let cpu = row.cpu.map_or_else(String::new, |c| format!("{c:.2}"));
        let per_k = match row.cpu {
            Some(c) if n > 0 => format!("{:.3}", c / n as f64 * 1000.0),
            _ => String::new(),
        };
        let rss = row
            .rss_peak_kib
            .map_or_else(String::new, |k| format!("{:.1}", k as f64 / 1024.0));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.load,
            row.target,
            row.outcome.rps(),
            ms(row.total.p50),
            ms(row.total.p99),
            added_total,
            first,
            added_first,
            ratio,
            row.outcome.errors,
            cpu,
            per_k,
            rss
        );
    }
}

fn memory(out: &mut String, plan: &Plan, idle: &[(&'static str, Option<procfs::Memory>)]) {
    let _ = writeln!(out);
    for ((target, pid), (_, before)) in plan.targets.iter().zip(idle) {
        let Some(pid) = pid else { continue };
        let after = procfs::memory(*pid);
        let mib = |k: u64| k as f64 / 1024.0;
        let _ = writeln!(
            out,
            "{} memory: RSS idle before load {}, idle after load {}, peak (VmHWM) {}",
            target.name(),
            before.map_or("-".to_owned(), |m| format!("{:.1} MiB", mib(m.rss_kib))),
            after.map_or("-".to_owned(), |m| format!("{:.1} MiB", mib(m.rss_kib))),
            after.map_or("-".to_owned(), |m| format!("{:.1} MiB", mib(m.peak_kib))),
        );
        if let (Target::Llmesh(_), Some(m)) = (target, before) {
            let idle = mib(m.rss_kib);
            let _ = writeln!(
                out,
                "- goal sidecar RSS <= 20 MB idle: {idle:.1} MiB: {}",
                if idle <= 20.0 { "met" } else { "NOT met" }
            );
        }
    }
}

fn goals(out: &mut String, rows: &[Row], plan: &Plan) {
    let _ = writeln!(out);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let llmesh = |scenario: Scenario, load: &str| {
        rows.iter()
            .find(|r| r.target == "llmesh" && r.scenario == scenario && r.load == load)
    };
    let delta = |row: &Row, f: fn(&Row) -> Option<u32>| {
        let base = base_of(rows, row)?;
        Some((f64::from(f(row)?) - f64::from(f(base)?)) / 1000.0)
    };
    let rate_load = format!("{} rps", plan.rate);
    for upstream in [Upstream::OpenAi, Upstream::Anthropic] {
        let chat = Scenario {
            kind: Kind::Chat,
            upstream,
        };
        if let Some(row) = llmesh(chat, &rate_load)
            && let (Some(p50), Some(p99)) =
                (delta(row, |r| r.total.p50), delta(row, |r| r.total.p99))
        {
            let _ = writeln!(
                out,
                "- goal added latency <= 0.1 ms p50 / <= 0.5 ms p99 at {rate_load} ({chat}): {p50:+.3} ms / {p99:+.3} ms: {} / {}",
                verdict(p50 <= 0.1),
                verdict(p99 <= 0.5)
            );
        }
        let stream = Scenario {
            kind: Kind::Stream,
            upstream,
        };
        if let Some(row) = llmesh(stream, &rate_load)
            && let Some(p50) = delta(row, |r| r.first.p50)
        {
            let p99 = delta(row, |r| r.first.p99).unwrap_or(f64::NAN);
            let _ = writeln!(
                out,
                "- goal TTFT overhead <= 0.5 ms at {rate_load} ({stream}): p50 {p50:+.3} ms, p99 {p99:+.3} ms: {}",
                verdict(p50 <= 0.5)
            );
        }
    }
    for row in rows.iter().filter(|r| r.target == "litellm") {
        if let Some(ours) = llmesh(row.scenario, &row.load) {
            let theirs = row.outcome.rps();
            if theirs > 0.0 {
                let ratio = ours.outcome.rps() / theirs;
                let _ = writeln!(
                    out,
                    "- goal throughput >= 100x LiteLLM ({}, {}): {:.0} vs {:.1} rps = {ratio:.0}x: {}",
                    row.scenario,
                    row.load,
                    ours.outcome.rps(),
                    theirs,
                    verdict(ratio >= 100.0)
                );
            }
        }
    }
    if let Some((_, Some(pid))) = plan.targets.iter().find(|(t, _)| t.name() == "llmesh")
        && let Some(m) = procfs::memory(*pid)
    {
        let peak = m.peak_kib as f64 / 1024.0;
        let _ = writeln!(
            out,
            "- goal sidecar RSS <= 50 MB under load: peak {peak:.1} MiB: {}",
            verdict(peak <= 50.0)
        );
    }
}
