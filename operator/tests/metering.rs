//! Metering across a fleet, with real processes against the real API server: an
//! `llmesh-operator` process (usage intake, TokenReview-authenticated) and
//! `llmesh-sidecar` processes calling an OpenAI mock, spending from one Budget (the
//! fleet itself is in [`fleet`]).
//!
//! Every answer carries its usage, and the model's prices are whole micro-dollars per
//! token, so the tests know each call's exact cost and check the ledger against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fleet;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fleet::{Fleet, eventually, key, secret_of};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use llmesh_crds::{Budget, VirtualKey};
use llmesh_tests::openai::Reply;

/// Five sidecars spend concurrently from one Budget until it refuses them: the ledger
/// equals the sum of what was served, never above the limit (every call's actual cost
/// stays within its reservation), and the budget is not refused while more than one
/// reservation per sidecar was left.
#[tokio::test]
async fn five_sidecars_spend_one_budget_and_the_ledger_is_exact() {
    let Some(fleet) = Fleet::new("meter-five", Budget::test("team", "0.40", ["app"]), key()).await
    else {
        return;
    };
    let mut sidecars = Vec::new();
    for _ in 0..5 {
        sidecars.push(Arc::new(fleet.sidecar().await));
    }
    let warmup: i64 = sidecars.iter().map(|s| s.probe_cost).sum();
    let mut workers = Vec::new();
    for sidecar in &sidecars {
        for _ in 0..3 {
            let sidecar = sidecar.clone();
            workers.push(tokio::spawn(async move {
                let mut spent = 0;
                for _ in 0..200 {
                    let called = sidecar.chat().await;
                    match (called.status, called.code.as_str()) {
                        (200, _) => spent += called.cost,
                        (429, "budget_exceeded") => return spent,
                        (503, _) => tokio::time::sleep(Duration::from_millis(100)).await,
                        other => panic!("unexpected answer {other:?}"),
                    }
                }
                panic!("the budget never ran out");
            }));
        }
    }
    let mut served = warmup;
    for w in workers {
        served += w.await.unwrap();
    }
    fleet.settles_at("team", served).await;
    let limit = 400_000;
    assert!(served <= limit, "overshoot: {served} > {limit}");
    // A call reserves ~18 prompt tokens (its bytes / 4) and 10 completion tokens:
    // 38,000 micro-dollars. Sidecars refused the last calls while leases held by
    // others could not cover them: at most one reservation each.
    assert!(served > limit - 5 * 38_000, "stopped too early: {served}");
}

/// SIGTERM flushes every record before the sidecar exits; SIGKILL loses at most what
/// was not yet reported (one reporting interval, a second).
#[tokio::test]
async fn sigterm_loses_nothing_and_kill_9_at_most_its_window() {
    let Some(fleet) =
        Fleet::new("meter-term", Budget::test("team", "100.00", ["app"]), key()).await
    else {
        return;
    };
    let a = fleet.sidecar().await;
    let mut expected = a.probe_cost;
    for _ in 0..5 {
        let called = a.chat().await;
        assert_eq!(called.status, 200);
        expected += called.cost;
    }
    let status = a.proc.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        fleet.spent("team").await,
        expected,
        "flushed before exiting"
    );

    let b = fleet.sidecar().await;
    expected += b.probe_cost;
    for _ in 0..3 {
        expected += b.chat().await.cost;
    }
    fleet.settles_at("team", expected).await;
    let mut window = 0;
    for _ in 0..4 {
        window += b.chat().await.cost;
    }
    b.proc.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = fleet.spent("team").await;
    assert!(
        (expected..=expected + window).contains(&spent),
        "{spent} outside [{expected}, {}]",
        expected + window
    );
}

/// The operator is killed and restarted while two sidecars keep calling: batches not
/// acknowledged are resent to the new process and folded once.
#[tokio::test]
async fn operator_restart_mid_traffic_loses_nothing_and_counts_nothing_twice() {
    let Some(mut fleet) = Fleet::new(
        "meter-restart",
        Budget::test("team", "100.00", ["app"]),
        key(),
    )
    .await
    else {
        return;
    };
    let sidecars = vec![
        Arc::new(fleet.sidecar().await),
        Arc::new(fleet.sidecar().await),
    ];
    let warmup: i64 = sidecars.iter().map(|s| s.probe_cost).sum();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for sidecar in &sidecars {
        for _ in 0..2 {
            let (sidecar, stop) = (sidecar.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                let mut spent = 0;
                let (mut served, mut waited) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let called = sidecar.chat().await;
                    match (called.status, called.code.as_str()) {
                        (200, _) => {
                            spent += called.cost;
                            served += 1;
                        }
                        // A lease used up while the operator is away: nothing spent.
                        (503, "budget_unavailable") => waited += 1,
                        other => panic!("unexpected answer {other:?}"),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(served > waited, "{served} served, {waited} waited");
                spent
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    fleet.operator.take().unwrap().kill9();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    fleet.start_operator().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut served = warmup;
    for w in workers {
        served += w.await.unwrap();
    }
    fleet.settles_at("team", served).await;
}

/// A key's rpm, tpm and parallel limits hold across two sidecars sharing it.
#[tokio::test]
async fn key_limits_hold_across_two_sidecars() {
    let limited = |name: &str, rpm, tpm, parallel| {
        VirtualKey::test(name)
            .with_budget("team")
            .with_limits(rpm, tpm, parallel)
    };
    let Some(fleet) = Fleet::with_keys(
        "meter-limits",
        Budget::test("team", "100.00", ["app"]),
        key(),
        vec![
            limited("rpm", 12, 1_000_000, 100),
            limited("tpm", 1_000, 60, 100),
            limited("par", 1_000, 1_000_000, 2),
        ],
    )
    .await
    else {
        return;
    };
    let (a, b) = (
        Arc::new(fleet.sidecar().await),
        Arc::new(fleet.sidecar().await),
    );
    // Both have reported: each holds about half of each key's limits.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let rpm = secret_of("rpm");
    let started = std::time::Instant::now();
    let (mut admitted, mut refused) = (0, 0);
    for _ in 0..12 {
        for s in [&a, &b] {
            match s.chat_as(&rpm).await {
                c if c.status == 200 => admitted += 1,
                c if c.code == "rate_limit_exceeded" => refused += 1,
                c => panic!("{c:?}"),
            }
        }
    }
    assert!(refused > 0);
    // A minute's allowance across both, plus what refilled meanwhile (12 a minute),
    // plus one for each bucket's rounding.
    let refilled = (started.elapsed().as_secs_f64() * 12.0 / 60.0).ceil() as u32;
    assert!(
        admitted <= 12 + refilled + 2,
        "{admitted} admitted against rpm 12 ({refilled} refilled)"
    );
    assert!(
        admitted >= 9,
        "shares left most of the limit unused: {admitted}"
    );

    let tpm = secret_of("tpm");
    let mut tokens = 0;
    for _ in 0..10 {
        for s in [&a, &b] {
            let c = s.chat_as(&tpm).await;
            if c.status == 200 {
                tokens += c.tokens;
            }
        }
    }
    // Each call pre-charges its estimate (~18 tokens) and uses 5: what was used never
    // exceeds what the buckets held.
    assert!(tokens <= 60, "{tokens} tokens used against tpm 60");
    assert!(tokens > 0);

    fleet
        .mock
        // Long enough that all six calls overlap however slowly they are sent.
        .set_default(Reply::ok().with_delay(Duration::from_secs(2)));
    let par = Arc::new(secret_of("par"));
    let mut calls = Vec::new();
    for s in [&a, &b, &a, &b, &a, &b] {
        let (s, par) = (s.clone(), par.clone());
        calls.push(tokio::spawn(async move { s.chat_as(&par).await }));
    }
    let mut ok = 0;
    for c in calls {
        if c.await.unwrap().status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 2, "parallel 2 across two sidecars");
}

/// Spend folded from reports crosses the alert threshold: the operator records the
/// Event once.
#[tokio::test]
async fn reported_spend_raises_the_threshold_event() {
    // Calls cost 9,000 and reserve 38,000 micro-dollars: spend reaches 63,000.
    let mut budget = Budget::test("team", "0.10", ["app"]);
    budget.spec.alert_thresholds = vec![50];
    let Some(fleet) = Fleet::new("meter-alert", budget, key()).await else {
        return;
    };
    let s = fleet.sidecar().await;
    while fleet.spent("team").await < 50_000 {
        let c = s.chat().await;
        if c.status != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = fleet.env.api::<Event>();
    eventually("the BudgetThreshold event", 20, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let alerts: Vec<_> = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("BudgetThreshold"))
            .collect();
        (alerts.len() == 1).then_some(())
    })
    .await;
}

/// A budget that refuses calls shows it (issue 12): sidecars refuse once what is left
/// cannot pay one call's worst case, before spend reaches the limit; they say so in
/// their reports, and the Budget turns `exhausted: true` with the 100 % Event, so the
/// alert fires while calls are refused.
#[tokio::test]
async fn a_budget_that_refuses_calls_is_exhausted_and_alerts() {
    // Calls cost 9,000 and reserve 38,000 micro-dollars: refused from 63,000 on.
    let Some(fleet) =
        Fleet::new("meter-refuse", Budget::test("team", "0.10", ["app"]), key()).await
    else {
        return;
    };
    let s = fleet.sidecar().await;
    let mut refused = false;
    for _ in 0..50 {
        let c = s.chat().await;
        match (c.status, c.code.as_str()) {
            (200, _) => {}
            (429, "budget_exceeded") => {
                refused = true;
                break;
            }
            (503, _) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(refused, "the budget never refused");
    let budgets = fleet.env.api::<Budget>();
    let status = eventually("the Budget shown exhausted", 20, || async {
        let status = budgets.get("team").await.ok()?.status?;
        status.exhausted.then_some(status)
    })
    .await;
    assert!(
        status.spent_micros < 100_000,
        "refused before the limit: {status:?}"
    );
    assert_eq!(status.refused_at_limit_micros, Some(100_000));
    assert_eq!(status.conditions[0].reason, "Exhausted");
    let events = fleet.env.api::<Event>();
    eventually("the 100 % BudgetThreshold event", 20, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let full: Vec<_> = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("BudgetThreshold"))
            .filter(|e| {
                e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("reached 100%"))
            })
            .collect();
        (full.len() == 1).then_some(())
    })
    .await;
    // Refused again: still one Event.
    assert_eq!(s.chat().await.code, "budget_exceeded");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let list = events.list(&ListParams::default()).await.unwrap();
    let full = list
        .items
        .iter()
        .filter(|e| {
            e.note
                .as_deref()
                .is_some_and(|n| n.contains("reached 100%"))
        })
        .count();
    assert_eq!(full, 1, "announced once");
}

/// A short period ends while a sidecar spends: the finished period's spend goes to
/// history and new spend counts in the new period.
#[tokio::test]
async fn the_period_resets_under_reported_spend() {
    let budget = Budget::test("team", "100.00", ["app"]).with_period("4s");
    let Some(fleet) = Fleet::new("meter-reset", budget, key()).await else {
        return;
    };
    let s = fleet.sidecar().await;
    let budgets = fleet.env.api::<Budget>();
    let started = eventually("a first period", 20, || async {
        budgets.get("team").await.ok()?.status?.period_start
    })
    .await;
    let reset = eventually("the reset", 30, || async {
        let c = s.chat().await;
        assert_eq!(c.status, 200, "{c:?}");
        let status = budgets.get("team").await.ok()?.status?;
        (status.period_start.as_ref() != Some(&started) && status.spent_micros > 0)
            .then_some(status)
    })
    .await;
    let finished = reset.history.last().expect("the finished period is kept");
    assert_eq!(finished.period_start, started);
    assert!(finished.spent_micros > 0);
}

/// The storm (issue 12): 200 calls on one Budget over three sidecars, plain and
/// streamed, with clients cutting at random points (before the answer, mid-stream, or
/// never). Once reports settle the ledger equals the sum of what the sidecars metered,
/// nothing stays reserved or in flight, and a normal call is served: a leaked
/// reservation, a call settled twice or a record lost would each show.
#[tokio::test]
async fn a_storm_of_cut_calls_leaves_an_exact_ledger_and_nothing_reserved() {
    let Some(fleet) = Fleet::new(
        "meter-storm",
        Budget::test("team", "1000.00", ["app"]),
        key(),
    )
    .await
    else {
        return;
    };
    let mut sidecars = Vec::new();
    for _ in 0..3 {
        sidecars.push(Arc::new(fleet.sidecar().await));
    }
    fleet.mock.set_default(
        Reply::ok()
            .with_delay(Duration::from_millis(150))
            .with_chunk_delay(Duration::from_millis(40)),
    );
    let mut rng = fastrand::Rng::with_seed(12);
    let plans: Vec<(usize, bool, u64)> = (0..200)
        .map(|i| (i % 3, rng.bool(), rng.u64(0..500)))
        .collect();
    let plans = Arc::new(tokio::sync::Mutex::new(plans));
    let mut workers = Vec::new();
    for _ in 0..24 {
        let (plans, sidecars) = (plans.clone(), sidecars.clone());
        workers.push(tokio::spawn(async move {
            while let Some((which, stream, cut_ms)) = plans.lock().await.pop() {
                cut_call(sidecars[which].api, stream, cut_ms).await;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let metered = || async {
        let mut sum = 0i64;
        for s in &sidecars {
            let (_, text) = s.admin_get("/metrics").await?;
            for line in text
                .lines()
                .filter(|l| l.starts_with("llmesh_spend_micros_total{"))
            {
                sum += line.rsplit(' ').next()?.parse::<f64>().ok()? as i64;
            }
            for idle in [
                "llmesh_requests_in_flight ",
                "llmesh_budget_reserved_micros ",
                "llmesh_usage_unacknowledged_records ",
            ] {
                let value = text.lines().find_map(|l| l.strip_prefix(idle));
                if value.map(str::trim) != Some("0") {
                    return None;
                }
            }
        }
        Some(sum)
    };
    // Settled: calls ended (detached ones included), nothing reserved, every record
    // acknowledged; then the ledger is what the sidecars metered, counted once.
    let sum = eventually("the sidecars to settle", 20, metered).await;
    assert!(sum > 0);
    fleet.settles_at("team", sum).await;
    assert_eq!(metered().await, Some(sum), "nothing metered twice later");
    let served = sidecars[0].chat().await;
    assert_eq!(served.status, 200, "{served:?}");
}

/// One call to `api` that its client cuts after `cut_ms` (or reads to its end first).
async fn cut_call(api: std::net::SocketAddr, stream: bool, cut_ms: u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!(
        r#"{{"model":"chat","max_tokens":10,"stream":{stream},"messages":[{{"role":"user","content":"hello"}}]}}"#
    );
    let Ok(mut conn) = tokio::net::TcpStream::connect(api).await else {
        return;
    };
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        fleet::KEY,
        body.len()
    );
    if conn.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(cut_ms), conn.read_to_end(&mut sink)).await;
}
