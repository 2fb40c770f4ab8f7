//! The fleet the metering and restart tests run: one namespace with a priced model on
//! an OpenAI mock, a key and a Budget; an `llmesh-operator` process; `llmesh-sidecar`
//! processes fed and metered by it, each with its admin port for `/readyz` and
//! `/metrics`. Shared by several test binaries, so not every one uses every helper.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use llmesh_crds::llm_model::{ModelDeployment, Provider};
use llmesh_crds::{Budget, LlmModel, VirtualKey};
use llmesh_tests::apiserver::{TestEnv, apply_crds};
use llmesh_tests::openai::MockOpenAi;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const OPERATOR: &str = env!("CARGO_BIN_EXE_llmesh-operator");
pub const KEY: &str = "sk-llmesh-metering-test-000000000001";
/// $1,000 and $2,000 per million tokens: 1,000 and 2,000 micro-dollars per token.
pub const INPUT_MICROS: u64 = 1_000;
pub const OUTPUT_MICROS: u64 = 2_000;

/// The sidecar binary (the operator crate cannot name another package's binary).
pub fn sidecar_bin() -> PathBuf {
    llmesh_tests::workspace_bin("llmesh-sidecar", "llmesh-sidecar")
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let status = self.0.wait().unwrap();
        std::mem::forget(self);
        status
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
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

pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub async fn eventually<T, F, Fut>(what: &str, secs: u64, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    llmesh_tests::eventually(secs, what, check).await
}

/// Where the operator's serving certificate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// `--tls-cert dir/tls.crt --tls-key dir/tls.key`, a self-signed certificate the
    /// sidecars trust directly (`dir/tls.crt` is their CA file).
    Files,
    /// No certificate flags: the operator keeps its CA in the Secret
    /// `llmesh-operator-tls` of the test namespace and writes it to `dir/ca.crt`
    /// (`--ca-out`), the sidecars' CA file.
    Stored,
}

/// One namespace with a priced model on the mock, a key, and a Budget; the operator
/// as a process whose certificate outlives a restart ([`Tls`]).
pub struct Fleet {
    pub env: TestEnv,
    pub dir: PathBuf,
    pub push: SocketAddr,
    pub mock: MockOpenAi,
    pub operator: Option<Proc>,
    /// The running operator's admin address (`/metrics`), a new one each start.
    pub operator_admin: SocketAddr,
    pub tls: Tls,
    /// Where [`Tls::Files`] takes `tls.crt` and `tls.key` from (`dir` unless a test
    /// gives the operator a new certificate before its sidecars' CA file changes).
    pub cert_dir: PathBuf,
}

impl Fleet {
    pub async fn new(name: &str, budget: Budget, key: VirtualKey) -> Option<Fleet> {
        Fleet::with_keys(name, budget, key, Vec::new()).await
    }

    /// A fleet whose operator runs without certificate flags ([`Tls::Stored`]).
    pub async fn stored_ca(name: &str, budget: Budget, key: VirtualKey) -> Option<Fleet> {
        Fleet::build(name, budget, key, Vec::new(), Tls::Stored).await
    }

    /// A fleet whose namespace also has `extra` keys, each with its Secret `<name>-key`
    /// holding the key itself (the secret value is the key's name, see [`secret_of`]).
    pub async fn with_keys(
        name: &str,
        budget: Budget,
        key: VirtualKey,
        extra: Vec<VirtualKey>,
    ) -> Option<Fleet> {
        Fleet::build(name, budget, key, extra, Tls::Files).await
    }

    async fn build(
        name: &str,
        budget: Budget,
        key: VirtualKey,
        extra: Vec<VirtualKey>,
        tls: Tls,
    ) -> Option<Fleet> {
        let env = TestEnv::new(name).await?;
        apply_crds(&env.client, &llmesh_crds::crds()).await;
        let mock = MockOpenAi::start().await;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fleet-{}", env.namespace));
        std::fs::create_dir_all(&dir).unwrap();
        write_certificate(&dir);
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
            cert_dir: dir.clone(),
            dir,
            push: free_port(),
            mock,
            operator: None,
            operator_admin: free_port(),
            tls,
        };
        fleet.start_operator().await;
        Some(fleet)
    }

    pub async fn start_operator(&mut self) {
        self.operator_admin = free_port();
        self.operator = Some(
            self.operator_at(self.push, self.operator_admin, &self.ca_file())
                .await,
        );
    }

    /// Starts an operator process pushing on `push`, its admin server on `admin` (with
    /// `--ca-out ca_out` in [`Tls::Stored`] mode); returns once it listens.
    pub async fn operator_at(&self, push: SocketAddr, admin: SocketAddr, ca_out: &Path) -> Proc {
        let mut command = Command::new(OPERATOR);
        command
            .args(["--push-listen", &push.to_string()])
            .args(["--admin-listen", &admin.to_string()]);
        match self.tls {
            Tls::Files => {
                command
                    .arg("--tls-cert")
                    .arg(self.cert_dir.join("tls.crt"))
                    .arg("--tls-key")
                    .arg(self.cert_dir.join("tls.key"));
            }
            Tls::Stored => {
                command
                    .arg("--ca-out")
                    .arg(ca_out)
                    .env("POD_NAMESPACE", &self.env.namespace);
            }
        }
        let child = command
            .env("KUBECONFIG", self.env.server.kubeconfig_path())
            .env("LLMESH_WATCH_NAMESPACE", &self.env.namespace)
            // The fleet's sidecars are processes, not pods: their tokens name no pod
            // (`only_injected_pods_receive_config` in cluster.rs checks the pod rule).
            .env("LLMESH_ALLOW_UNBOUND_TOKENS", "true")
            .env("POD_NAME", "operator-test")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let operator = Proc(child);
        eventually("the operator's push port", 30, || async move {
            tokio::net::TcpStream::connect(push).await.ok().map(|_| ())
        })
        .await;
        operator
    }

    /// The CA file the sidecars read.
    pub fn ca_file(&self) -> PathBuf {
        match self.tls {
            Tls::Files => self.dir.join("tls.crt"),
            Tls::Stored => self.dir.join("ca.crt"),
        }
    }

    /// A sidecar process fed and metered by the operator; returns once it serves.
    pub async fn sidecar(&self) -> Sidecar {
        let (api, admin) = (free_port(), free_port());
        let child = Command::new(sidecar_bin())
            .args([
                "--operator",
                &format!("https://localhost:{}", self.push.port()),
            ])
            .arg("--operator-ca")
            .arg(self.ca_file())
            .arg("--token-file")
            .arg(self.dir.join("token"))
            .args(["--listen", &api.to_string()])
            .args(["--admin-listen", &admin.to_string()])
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
            admin,
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

    pub async fn spent(&self, budget: &str) -> i64 {
        self.env
            .api::<Budget>()
            .get(budget)
            .await
            .unwrap()
            .status
            .map_or(0, |s| s.spent_micros)
    }

    /// Waits until the ledger shows `expected`, then checks it stays there.
    pub async fn settles_at(&self, budget: &str, expected: i64) {
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

pub struct Sidecar {
    pub proc: Proc,
    pub api: SocketAddr,
    /// `/readyz` and `/metrics`.
    pub admin: SocketAddr,
    /// What the readiness call of [`Fleet::sidecar`] cost.
    pub probe_cost: i64,
}

/// What a call returned: status, its exact cost when served, its error code otherwise.
#[derive(Debug)]
pub struct Called {
    pub status: u16,
    pub cost: i64,
    pub tokens: u64,
    pub code: String,
}

impl Sidecar {
    /// One call; `None` when the sidecar cannot be reached or does not answer in 20 s.
    pub async fn chat_raw(&self) -> Option<(u16, Value)> {
        self.chat_raw_as(KEY).await
    }

    pub async fn chat_raw_as(&self, key: &str) -> Option<(u16, Value)> {
        tokio::time::timeout(Duration::from_secs(20), self.chat_once(key))
            .await
            .ok()?
    }

    pub async fn chat_as(&self, key: &str) -> Called {
        called(self.chat_raw_as(key).await.expect("the sidecar answers"))
    }

    pub async fn chat_once(&self, key: &str) -> Option<(u16, Value)> {
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

    pub async fn chat(&self) -> Called {
        called(self.chat_raw().await.expect("the sidecar answers"))
    }

    /// A GET on the admin port: status and body, `None` if it cannot be reached.
    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin, path).await
    }

    /// The value of the metric line starting with `series` (name and labels).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.admin_get("/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }
}

/// A plain HTTP GET of `path` at `addr`: status and body, `None` if it cannot be reached.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_owned()))
}

pub fn called((status, body): (u16, Value)) -> Called {
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
pub fn secret_of(name: &str) -> String {
    format!("sk-llmesh-{name}-0000000000000000")
}

pub fn key() -> VirtualKey {
    VirtualKey::test("app").with_budget("team")
}

/// A self-signed certificate for `localhost` into `dir/tls.crt` and `dir/tls.key`, each
/// written beside and renamed into place, as the kubelet swaps a projected file.
pub fn write_certificate(dir: &Path) {
    let signed = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    for (name, pem) in [
        ("tls.key", signed.signing_key.serialize_pem()),
        ("tls.crt", signed.cert.pem()),
    ] {
        let staged = dir.join(format!("{name}.new"));
        std::fs::write(&staged, pem).unwrap();
        std::fs::rename(&staged, dir.join(name)).unwrap();
    }
}
