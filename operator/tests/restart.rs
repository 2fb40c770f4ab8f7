//! Restarts keep working, with real `llmesh-operator` and `llmesh-sidecar` processes
//! against the real API server ([`fleet`]): an operator run without certificate flags
//! keeps its CA in a Secret, so its sidecars trust it after a restart; replicas
//! starting at once agree on one CA; and when the operator's certificate and the
//! sidecars' CA file change, the sidecars' usage client follows the file.
//!
//! The bound checked: once the operator is back (and the CA file current), every
//! sidecar serves budgeted calls again within [`RECOVERY`], then refuses none. The
//! parts of it: the usage reporter's retry backoff (at most 8 s) and the config
//! stream's (at most 30 s, though a restart this short stays under 8 s).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fleet;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fleet::{Fleet, Sidecar, eventually, key, write_certificate};
use k8s_openapi::api::core::v1::Secret;
use llmesh_crds::Budget;
use llmesh_operator::push::TlsSource;
use llmesh_operator::webhook::certs::{self, CA_CRT};
use llmesh_tests::apiserver::TestEnv;

/// How long after the operator is back budgeted calls may still be refused (seconds).
const RECOVERY: u64 = 20;

/// When (since the load started) each answer came, and its status.
type Answers = Vec<(Duration, u16)>;

/// Budgeted calls from every sidecar, two callers each, until stopped: what they
/// spent, and when (since `t0`) each answer came with its status.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<(i64, Answers)>>,
}

impl Load {
    fn start(sidecars: &[Arc<Sidecar>], t0: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for sidecar in sidecars {
            for _ in 0..2 {
                let (sidecar, stop) = (sidecar.clone(), stop.clone());
                workers.push(tokio::spawn(async move {
                    let (mut spent, mut answers) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let called = sidecar.chat().await;
                        match (called.status, called.code.as_str()) {
                            (200, _) => spent += called.cost,
                            (503, "budget_unavailable") => {}
                            other => panic!("unexpected answer {other:?}"),
                        }
                        answers.push((t0.elapsed(), called.status));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    (spent, answers)
                }));
            }
        }
        Load { stop, workers }
    }

    async fn finish(self) -> (i64, Answers) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut spent, mut answers) = (0, Vec::new());
        for w in self.workers {
            let (s, a) = w.await.unwrap();
            spent += s;
            answers.extend(a);
        }
        answers.sort();
        (spent, answers)
    }
}

/// Waits until every sidecar serves a budgeted call and reports both links up, then
/// returns how long that took; the calls' cost is added to `served`.
async fn recovered(sidecars: &[Arc<Sidecar>], served: &mut i64) -> Duration {
    let back = Instant::now();
    for s in sidecars {
        let cost = eventually("budgeted calls served again", RECOVERY, || async {
            let c = s.chat().await;
            (c.status == 200).then_some(c.cost)
        })
        .await;
        *served += cost;
        eventually("both links up in the metrics", RECOVERY, || async {
            let usage = s
                .metric(r#"llmesh_operator_reachable{channel="usage"}"#)
                .await?;
            let config = s
                .metric(r#"llmesh_operator_reachable{channel="config"}"#)
                .await?;
            (usage == 1.0 && config == 1.0).then_some(())
        })
        .await;
        assert_eq!(
            s.admin_get("/readyz").await,
            Some((200, "ready\n".to_owned()))
        );
    }
    back.elapsed()
}

/// Waits until a sidecar's `/readyz` body contains `text`; returns the body.
async fn readyz_says(s: &Sidecar, text: &str) -> String {
    eventually(&format!("/readyz saying {text:?}"), RECOVERY, || async {
        let (status, body) = s.admin_get("/readyz").await?;
        assert_eq!(status, 200, "a served config keeps the pod ready: {body}");
        body.contains(text).then_some(body)
    })
    .await
}

/// No budgeted call was refused from `from` on.
fn none_refused_after(answers: &[(Duration, u16)], from: Duration) {
    let refused = answers
        .iter()
        .filter(|(at, status)| *at >= from && *status != 200)
        .count();
    let after = answers.iter().filter(|(at, _)| *at >= from).count();
    assert!(after > 0, "no calls after recovery");
    assert_eq!(
        refused, 0,
        "{refused} of {after} calls refused after recovery"
    );
}

/// Three replicas asking for the push certificate at once (no Secret yet) get one CA;
/// a later start reads the same.
#[tokio::test]
async fn replicas_starting_at_once_agree_on_one_push_ca() {
    let Some(env) = TestEnv::new("push-ca-race").await else {
        return;
    };
    let names = || TlsSource::SelfSigned(vec!["localhost".into()]);
    let ask = || certs::keep_push_tls_in(&env.client, names(), &env.namespace, "push-tls");
    let (a, b, c) = tokio::join!(ask(), ask(), ask());
    let ca = |t: TlsSource| match t {
        TlsSource::Pem { ca, .. } => ca,
        _ => panic!("not from the Secret"),
    };
    let (a, b, c) = (ca(a.unwrap()), ca(b.unwrap()), ca(c.unwrap()));
    assert!(a == b && b == c, "the replicas disagree on the CA");
    assert_eq!(ca(ask().await.unwrap()), a, "a restart reads the same CA");
    let secret = env.api::<Secret>().get("push-tls").await.unwrap();
    let stored = secret.data.unwrap()[CA_CRT].0.clone();
    assert_eq!(String::from_utf8(stored).unwrap(), a);
}

/// The operator runs without `--tls-cert`: killed and started again under load, it
/// serves the CA from its Secret, so the sidecars reconnect and budgeted calls are
/// served again; during the outage `/readyz` and the metrics say what is wrong.
#[tokio::test]
async fn an_operator_without_certificate_flags_keeps_its_sidecars_across_a_restart() {
    let Some(mut fleet) =
        Fleet::stored_ca("restart-ca", Budget::test("team", "100.00", ["app"]), key()).await
    else {
        return;
    };
    let ca_before = std::fs::read_to_string(fleet.ca_file()).unwrap();
    let sidecars = vec![
        Arc::new(fleet.sidecar().await),
        Arc::new(fleet.sidecar().await),
    ];
    let mut served: i64 = sidecars.iter().map(|s| s.probe_cost).sum();
    let t0 = Instant::now();
    let load = Load::start(&sidecars, t0);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    fleet.operator.take().unwrap().kill9();
    let body = readyz_says(&sidecars[0], "usage reports not acknowledged").await;
    assert!(body.starts_with("ready, degraded:\n"), "{body}");
    assert_eq!(
        sidecars[0]
            .metric(r#"llmesh_operator_reachable{channel="usage"}"#)
            .await,
        Some(0.0)
    );
    fleet.start_operator().await;
    assert_eq!(
        std::fs::read_to_string(fleet.ca_file()).unwrap(),
        ca_before,
        "the restarted operator serves the same CA"
    );
    let took = recovered(&sidecars, &mut served).await;
    println!("budgeted calls served again {took:?} after the operator was back");
    let calm = t0.elapsed() + Duration::from_millis(500);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let (spent, answers) = load.finish().await;
    none_refused_after(&answers, calm);
    fleet.settles_at("team", served + spent).await;
}

/// The operator comes back with a new certificate before the sidecars' CA file is
/// updated: the sidecars name the TLS failure in `/readyz`; once the file is replaced
/// (renamed into place, as the kubelet does), both the config stream and the usage
/// client trust the new CA without a restart.
#[tokio::test]
async fn sidecars_follow_a_replaced_ca_file() {
    let Some(mut fleet) = Fleet::new(
        "restart-newca",
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
    let mut served: i64 = sidecars.iter().map(|s| s.probe_cost).sum();
    let t0 = Instant::now();
    let load = Load::start(&sidecars, t0);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    fleet.operator.take().unwrap().kill9();
    let next = fleet.dir.join("next");
    std::fs::create_dir_all(&next).unwrap();
    write_certificate(&next);
    fleet.cert_dir = next.clone();
    fleet.start_operator().await;
    let body = readyz_says(&sidecars[0], "TLS certificate not trusted").await;
    assert!(
        body.contains(&fleet.ca_file().display().to_string()),
        "names the CA file: {body}"
    );
    // The kubelet's update of the projected CA: a new file renamed over the old.
    let staged = fleet.dir.join("tls.crt.staged");
    std::fs::copy(next.join("tls.crt"), &staged).unwrap();
    std::fs::rename(&staged, fleet.ca_file()).unwrap();
    let took = recovered(&sidecars, &mut served).await;
    println!("budgeted calls served again {took:?} after the CA file was replaced");
    let calm = t0.elapsed() + Duration::from_millis(500);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let (spent, answers) = load.finish().await;
    none_refused_after(&answers, calm);
    fleet.settles_at("team", served + spent).await;
}
