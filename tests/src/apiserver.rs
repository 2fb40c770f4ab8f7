//! A real Kubernetes API server for integration tests.
//!
//! The server is built from Debian's Go sources of the Kubernetes API-server libraries
//! by `tests/apiserver/harness.sh install` (which `scripts/test.sh` runs); see
//! `docs/testing.md` for what it serves. This module starts one server (with its etcd)
//! the first time a test asks for it and hands each test its own namespace and a kube
//! [`Client`]:
//!
//! ```no_run
//! # async fn example() {
//! let Some(env) = llmesh_tests::apiserver::TestEnv::new("my-test").await else {
//!     return; // skipped, and said so loudly
//! };
//! let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = env.api();
//! # }
//! ```
//!
//! One server serves a whole test run: under `cargo nextest` every test process of the
//! run shares it, under `cargo test` each test binary has its own. It stops by itself
//! once the run (or the binary) has exited, however it ended.
//!
//! Where the harness cannot run (not Linux x86-64, or not installed) the tests skip with
//! a message on stderr; with `LLMESH_REQUIRE_APISERVER=1` they fail instead.

// Test support: where a test cannot go on, it panics with a message, as tests do.
#![allow(clippy::expect_used)]

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource};

/// The environment variable that turns a missing harness into a test failure.
pub const REQUIRE_ENV: &str = "LLMESH_REQUIRE_APISERVER";

/// The harness script, found from this crate's source directory.
const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/apiserver/harness.sh");

/// Why no server could be had.
#[derive(Debug, Clone)]
pub enum Unavailable {
    /// The platform cannot build or run the harness.
    Platform(String),
    /// `harness.sh install` has not been run (or its inputs changed since).
    NotInstalled,
    /// The harness is installed but the server did not start.
    Failed(String),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::Platform(what) => {
                write!(f, "the test API server needs Linux x86-64, this is {what}")
            }
            Unavailable::NotInstalled => write!(
                f,
                "the test API server is not installed: run `tests/apiserver/harness.sh install` \
                 (./scripts/test.sh does)"
            ),
            Unavailable::Failed(why) => write!(f, "the test API server did not start: {why}"),
        }
    }
}

/// A running API server (with its etcd).
#[derive(Debug)]
pub struct ApiServer {
    dir: PathBuf,
    kubeconfig: PathBuf,
    admin_token: String,
}

static SERVER: OnceLock<Result<ApiServer, Unavailable>> = OnceLock::new();

/// The shared server, started on first use. `None` means tests should skip: the reason
/// has been printed. Panics when the server is required (`LLMESH_REQUIRE_APISERVER=1`)
/// or is installed but fails to start.
pub fn server() -> Option<&'static ApiServer> {
    match SERVER.get_or_init(start) {
        Ok(server) => Some(server),
        Err(err @ Unavailable::Failed(_)) => panic!("{err}"),
        Err(err) if required() => panic!("{err}, and {REQUIRE_ENV}=1 requires it"),
        Err(err) => {
            skip_banner(err);
            None
        }
    }
}

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Says loudly that a test is skipped. It writes to the stderr file itself, which
/// `cargo test`'s output capture does not hold back; nextest captures that too, so under
/// nextest the banner also goes to the terminal when there is one. (`scripts/test.sh`
/// says so itself when it could not install the server.)
fn skip_banner(err: &Unavailable) {
    let line = "!".repeat(78);
    let banner = format!(
        "{line}\n!! SKIPPED: this test needs the test Kubernetes API server.\n!! {err}.\n{line}\n"
    );
    let _ = std::io::stderr().lock().write_all(banner.as_bytes());
    if std::env::var_os("NEXTEST_RUN_ID").is_some()
        && let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty")
    {
        let _ = tty.write_all(banner.as_bytes());
    }
}

fn start() -> Result<ApiServer, Unavailable> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err(Unavailable::Platform(format!(
            "{} {}",
            std::env::consts::OS,
            std::env::consts::ARCH
        )));
    }
    // Under nextest each test is a process of its own: they share one server per run,
    // which stops when the runner exits. Otherwise the server belongs to this process.
    let (key, owner) = match std::env::var("NEXTEST_RUN_ID") {
        Ok(run) => (format!("run-{run}"), std::os::unix::process::parent_id()),
        Err(_) => (format!("pid-{}", std::process::id()), std::process::id()),
    };
    let dir = std::env::temp_dir().join(format!("llmesh-apiserver-{key}"));
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(HARNESS)
        .arg("start")
        .arg(&dir)
        .arg("--owner")
        .arg(owner.to_string())
        .output()
        .map_err(|e| Unavailable::Failed(format!("running {HARNESS}: {e}")))?;
    match output.status.code() {
        Some(0) => {}
        Some(3) => return Err(Unavailable::NotInstalled),
        _ => {
            return Err(Unavailable::Failed(format!(
                "{HARNESS} start: {}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            )));
        }
    }
    let admin_token = std::fs::read_to_string(dir.join("admin.token"))
        .map_err(|e| Unavailable::Failed(format!("reading admin.token: {e}")))?
        .trim()
        .to_owned();
    eprintln!(
        "test API server ready in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(ApiServer {
        kubeconfig: dir.join("kubeconfig"),
        dir,
        admin_token,
    })
}

impl ApiServer {
    /// The directory holding the kubeconfig, certificates, token file and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An admin kubeconfig (client certificate in `system:masters`), for kube-rs or
    /// `kubectl --kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A bearer token in the static token file, for user `admin` in `system:masters`.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The kube client configuration for the admin kubeconfig.
    pub async fn config(&self) -> Config {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("load the kubeconfig")
    }

    /// A new admin client. Create one per test: a client belongs to the tokio runtime
    /// it was made on.
    pub async fn client(&self) -> Client {
        Client::try_from(self.config().await).expect("build a kube client")
    }

    /// Adds a bearer token for `user` in `groups`; the server picks it up at once (for
    /// requests and TokenReviews alike).
    pub fn add_token(&self, token: &str, user: &str, uid: &str, groups: &[&str]) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("tokens.csv"))
            .expect("open tokens.csv");
        writeln!(file, "{token},{user},{uid},\"{}\"", groups.join(",")).expect("write tokens.csv");
    }

    /// As [`ApiServer::add_token`], for a token bound to pod `pod_name` with uid `pod_uid`,
    /// as the kubelet's projected service-account tokens are: TokenReviews answer with the
    /// pod in `user.extra` (`authentication.kubernetes.io/pod-name`, `pod-uid`).
    pub fn add_pod_token(
        &self,
        token: &str,
        user: &str,
        uid: &str,
        groups: &[&str],
        pod_name: &str,
        pod_uid: &str,
    ) {
        // The extras first: the token file's change is what makes the server re-read.
        let mut extra = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("tokens.csv.extra"))
            .expect("open tokens.csv.extra");
        writeln!(
            extra,
            "{token},authentication.kubernetes.io/pod-name={pod_name},authentication.kubernetes.io/pod-uid={pod_uid}"
        )
        .expect("write tokens.csv.extra");
        self.add_token(token, user, uid, groups);
    }
}

/// One test's view of the server: a namespace of its own and an admin client.
pub struct TestEnv {
    pub server: &'static ApiServer,
    pub client: Client,
    pub namespace: String,
}

impl TestEnv {
    /// Creates a namespace named after `prefix` for this test. `None` means the test
    /// should return early: it has been skipped (see [`server`]).
    pub async fn new(prefix: &str) -> Option<TestEnv> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let server = server()?;
        let client = server.client().await;
        let prefix: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let namespace = format!(
            "{}-{}-{:x}",
            prefix.trim_matches('-'),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some([("llmesh.io/test".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {namespace}: {e}"));
        Some(TestEnv {
            server,
            client,
            namespace,
        })
    }

    /// An API for a namespaced resource in this test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// Applies CRDs with server-side apply and waits until the server serves them.
/// Idempotent, so every test may call it.
pub async fn apply_crds(client: &Client, crds: &[CustomResourceDefinition]) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply("llmesh-tests").force();
    for crd in crds {
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for crd in crds {
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        loop {
            let current = api.get(&name).await.expect("get CRD");
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "CRD {name} not established in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
