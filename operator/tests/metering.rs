//! Metering across a fleet, with real processes against the real API server: an
//! `llmesh-operator` process (usage intake, TokenReview-authenticated) and
//! `llmesh-sidecar` processes calling an OpenAI mock, spending from one Budget.
//!
//! Every answer carries its usage, and the model's prices are whole micro-dollars per
//! token, so the tests know each call's exact cost and check the ledger against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, ObjectMeta, PostParams};
use llmesh_crds::llm_model::{ModelDeployment, Provider};
use llmesh_crds::{Budget, LlmModel, VirtualKey};
use llmesh_tests::apiserver::{TestEnv, apply_crds};
use llmesh_tests::openai::{MockOpenAi, Reply};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OPERATOR: &str = env!("CARGO_BIN_EXE_llmesh-operator");
const KEY: &str = "sk-llmesh-metering-test-000000000001";
/// $1,000 and $2,000 per million tokens: 1,000 and 2,000 micro-dollars per token.
const INPUT_MICROS: u64 = 1_000;
const OUTPUT_MICROS: u64 = 2_000;

/// The sidecar binary, built with the workspace (the operator crate cannot name
/// another package's binary). Built on demand when only this package's tests run.
fn sidecar_bin() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let dir = deps.parent().unwrap().parent().unwrap();
    let bin = dir.join("llmesh-sidecar");
    if !bin.exists() {
        eprintln!("building llmesh-sidecar for the fleet tests");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "llmesh-sidecar", "--bin", "llmesh-sidecar"])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build llmesh-sidecar");
    }
    bin
}

/// A child process killed when dropped.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then waits for the exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let status = self.0.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// SIGKILL: no chance to flush anything.
    fn kill9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        std::mem::forget(self);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..secs * 10 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// One namespace with a priced model on the mock, a key, and a Budget; the operator
/// as a process with a fixed serving certificate, so a restart keeps the sidecars' trust.
struct Fleet {
    env: TestEnv,
    dir: PathBuf,
    push: SocketAddr,
    mock: MockOpenAi,
    operator: Option<Proc>,
}

impl Fleet {
    async fn new(name: &str, budget: Budget, key: VirtualKey) -> Option<Fleet> {
        Fleet::with_keys(name, budget, key, Vec::new()).await
    }

    /// A fleet whose namespace also has `extra` keys, each with its Secret `<name>-key`
    /// holding the key itself (the secret value is the key's name, see [`secret_of`]).
    async fn with_keys(
        name: &str,
        budget: Budget,
        key: VirtualKey,
        extra: Vec<VirtualKey>,
    ) -> Option<Fleet> {
        let env = TestEnv::new(name).await?;
        apply_crds(&env.client, &llmesh_crds::crds()).await;
        let mock = MockOpenAi::start().await;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fleet-{}", env.namespace));
        std::fs::create_dir_all(&dir).unwrap();
        let signed = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("tls.crt"), signed.cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), signed.signing_key.serialize_pem()).unwrap();
        let token = format!("sa-{}", env.namespace);
        env.server.add_token(
            &token,
            &format!("system:serviceaccount:{}:app", env.namespace),
            &format!("uid-{}", env.namespace),
            &["system:serviceaccounts"],
        );
        std::fs::write(dir.join("token"), &token).unwrap();

        let pp = PostParams::default();
        let secret = |name: &str, key: &str, value: &str| Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(env.namespace.clone()),
                ..ObjectMeta::default()
            },
            data: Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into()),
            ..Secret::default()
        };
        env.api::<Secret>()
            .create(&pp, &secret("upstream", "apiKey", "sk-upstream"))
            .await
            .unwrap();
        env.api::<Secret>()
            .create(&pp, &secret("client-key", "key", KEY))
            .await
            .unwrap();
        let mut model = LlmModel::test("chat")
            .with_deployments([ModelDeployment::new(
                "mock",
                Provider::OpenaiCompatible,
                "gpt-4o-mini",
            )
            .with_base_url(&mock.base_url())
            .with_secret("upstream", "apiKey")])
            .with_prices("1000", "2000");
        model.metadata.namespace = Some(env.namespace.clone());
        env.api::<LlmModel>().create(&pp, &model).await.unwrap();
        let mut key = key.with_secret_name("client-key");
        key.metadata.namespace = Some(env.namespace.clone());
        env.api::<VirtualKey>().create(&pp, &key).await.unwrap();
        for mut key in extra {
            let name = key.metadata.name.clone().unwrap();
            env.api::<Secret>()
                .create(
                    &pp,
                    &secret(&format!("{name}-key"), "key", &secret_of(&name)),
                )
                .await
                .unwrap();
            key.metadata.namespace = Some(env.namespace.clone());
            env.api::<VirtualKey>().create(&pp, &key).await.unwrap();
        }
        let mut budget = budget;
        budget.metadata.namespace = Some(env.namespace.clone());
        env.api::<Budget>().create(&pp, &budget).await.unwrap();
        let mut fleet = Fleet {
            env,
            dir,
            push: free_port(),
            mock,
            operator: None,
        };
        fleet.start_operator().await;
        Some(fleet)
    }

    async fn start_operator(&mut self) {
        let child = Command::new(OPERATOR)
            .args(["--push-listen", &self.push.to_string()])
            .args(["--admin-listen", &free_port().to_string()])
            .arg("--tls-cert")
            .arg(self.dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(self.dir.join("tls.key"))
            .env("KUBECONFIG", self.env.server.kubeconfig_path())
            .env("LLMESH_WATCH_NAMESPACE", &self.env.namespace)
            .env("POD_NAME", "operator-test")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.operator = Some(Proc(child));
        let push = self.push;
        eventually("the operator's push port", 30, || async move {
            tokio::net::TcpStream::connect(push).await.ok().map(|_| ())
        })
        .await;
    }

    /// A sidecar process fed and metered by the operator; returns once it serves.
    async fn sidecar(&self) -> Sidecar {
        let api = free_port();
        let child = Command::new(sidecar_bin())
            .args([
                "--operator",
                &format!("https://localhost:{}", self.push.port()),
            ])
            .arg("--operator-ca")
            .arg(self.dir.join("tls.crt"))
            .arg("--token-file")
            .arg(self.dir.join("token"))
            .args(["--listen", &api.to_string()])
            .args(["--admin-listen", &free_port().to_string()])
            .env(
                "RUST_LOG",
                std::env::var("LLMESH_TEST_SIDECAR_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut sidecar = Sidecar {
            proc: Proc(child),
            api,
            probe_cost: 0,
        };
        // The first served call proves config, key and lease; it is spend like any.
        let mut last = None;
        for _ in 0..300 {
            if let Some(answer) = sidecar.chat_raw().await {
                let called = called(answer);
                if called.status == 200 {
                    sidecar.probe_cost = called.cost;
                    return sidecar;
                }
                last = Some(called);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let model = self.env.api::<LlmModel>().get("chat").await.ok();
        let secret = self.env.api::<Secret>().get_opt("upstream").await;
        panic!(
            "the sidecar never served; last answer {last:?}; model status {:?}; secret {:?}",
            model.and_then(|m| m.status),
            secret.map(|s| s.map(|s| s.metadata))
        );
    }

    async fn spent(&self, budget: &str) -> i64 {
        self.env
            .api::<Budget>()
            .get(budget)
            .await
            .unwrap()
            .status
            .map_or(0, |s| s.spent_micros)
    }

    /// Waits until the ledger shows `expected`, then checks it stays there.
    async fn settles_at(&self, budget: &str, expected: i64) {
        for _ in 0..200 {
            if self.spent(budget).await == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            self.spent(budget).await,
            expected,
            "the ledger never matched"
        );
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(self.spent(budget).await, expected, "counted twice later");
    }
}

struct Sidecar {
    proc: Proc,
    api: SocketAddr,
    /// What the readiness call of [`Fleet::sidecar`] cost.
    probe_cost: i64,
}

/// What a call returned: status, its exact cost when served, its error code otherwise.
#[derive(Debug)]
struct Called {
    status: u16,
    cost: i64,
    tokens: u64,
    code: String,
}

impl Sidecar {
    /// One call; `None` when the sidecar cannot be reached or does not answer in 20 s.
    async fn chat_raw(&self) -> Option<(u16, Value)> {
        self.chat_raw_as(KEY).await
    }

    async fn chat_raw_as(&self, key: &str) -> Option<(u16, Value)> {
        tokio::time::timeout(Duration::from_secs(20), self.chat_once(key))
            .await
            .ok()?
    }

    async fn chat_as(&self, key: &str) -> Called {
        called(self.chat_raw_as(key).await.expect("the sidecar answers"))
    }

    async fn chat_once(&self, key: &str) -> Option<(u16, Value)> {
        let body =
            r#"{"model":"chat","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}"#;
        let mut stream = tokio::net::TcpStream::connect(self.api).await.ok()?;
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await.ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }

    async fn chat(&self) -> Called {
        called(self.chat_raw().await.expect("the sidecar answers"))
    }
}

fn called((status, body): (u16, Value)) -> Called {
    let usage = &body["usage"];
    let (p, c) = (
        usage["prompt_tokens"].as_u64().unwrap_or(0),
        usage["completion_tokens"].as_u64().unwrap_or(0),
    );
    Called {
        status,
        cost: i64::try_from(p * INPUT_MICROS + c * OUTPUT_MICROS).unwrap(),
        tokens: p + c,
        code: body["error"]["code"].as_str().unwrap_or("").to_owned(),
    }
}

/// The key value kept in the Secret of an extra key.
fn secret_of(name: &str) -> String {
    format!("sk-llmesh-{name}-0000000000000000")
}

fn key() -> VirtualKey {
    VirtualKey::test("app").with_budget("team")
}

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
