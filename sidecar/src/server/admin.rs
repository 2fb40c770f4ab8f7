//! The admin server, on its own port: `/metrics` for Prometheus, `/healthz` (the process
//! is up) and `/readyz` (a config has arrived, so the API can serve).
//!
//! `/readyz` answers 503 only until the first config: after that the sidecar serves its
//! last config whatever happens to the operator (fail static), and a 503 would take the
//! application's pod out of its Services, turning an operator outage into an outage of
//! every application at once, unbudgeted calls included. What the operator's absence
//! costs is said in the body instead, one line per problem: a config stream that is
//! down, and usage reports that are not acknowledged, which means budgeted calls are
//! refused (503 `budget_unavailable`) once this sidecar's leases lapse. The same facts
//! are in `llmesh_operator_reachable{channel}` for alerting.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use super::body::ProxyBody;
use crate::config::link::{Channel, Health, Link};
use crate::meter::ledger::LEASE_TTL_MS;
use crate::metrics::Metrics;
use crate::router::routes::Routes;

/// What the admin handler reads.
pub struct Admin {
    /// The routing table in use.
    pub routes: watch::Receiver<Option<Arc<Routes>>>,
    /// Metrics to render.
    pub metrics: Arc<Metrics>,
    /// The links to the operator, when config comes from one.
    pub link: Option<Arc<Link>>,
}

/// The `/readyz` answer: 503 until a config has arrived, then 200, with a body that
/// names whatever is wrong with the links to the operator (see the module doc).
pub fn readiness(routes: Option<&Routes>, link: Option<&Link>) -> (StatusCode, String) {
    let secs = |d: Duration| d.as_secs();
    let Some(routes) = routes else {
        let why = match link.map(|l| l.health(Channel::Config)) {
            Some(Health::Down {
                for_,
                failures,
                error,
            }) => format!(
                ": no config from the operator for {} s ({failures} failed attempts): {error}",
                secs(for_)
            ),
            Some(_) => ": connecting to the operator".to_owned(),
            None => String::new(),
        };
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for config{why}\n"),
        );
    };
    let Some(link) = link else {
        return (StatusCode::OK, "ready\n".to_owned());
    };
    let mut problems = Vec::new();
    if let Health::Down {
        for_,
        failures,
        error,
    } = link.health(Channel::Config)
    {
        problems.push(format!(
            "config stream down for {} s ({failures} failed attempts); serving the last good config, changes do not arrive: {error}",
            secs(for_)
        ));
    }
    if let Health::Down {
        for_,
        failures,
        error,
    } = link.health(Channel::Usage)
    {
        let lease_ttl = Duration::from_millis(LEASE_TTL_MS.unsigned_abs());
        let effect = if routes.budgets.is_empty() {
            "key limit shares are not refreshed".to_owned()
        } else if for_ >= lease_ttl {
            "budgeted calls are refused (503 budget_unavailable)".to_owned()
        } else {
            format!(
                "budgeted calls will be refused (503 budget_unavailable) once this sidecar's leases run out, within {} s",
                secs(lease_ttl)
            )
        };
        problems.push(format!(
            "{effect}: usage reports not acknowledged for {} s ({failures} failed attempts): {error}",
            secs(for_)
        ));
    }
    if problems.is_empty() {
        return (StatusCode::OK, "ready\n".to_owned());
    }
    let mut body = "ready, degraded:\n".to_owned();
    for p in problems {
        body.push_str("- ");
        body.push_str(&p);
        body.push('\n');
    }
    (StatusCode::OK, body)
}

/// Handles one admin request.
pub fn handle<B>(admin: &Admin, request: &Request<B>) -> Response<ProxyBody> {
    let text = |status: StatusCode, body: String| {
        let mut response = Response::new(ProxyBody::full(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    match request.uri().path() {
        "/healthz" | "/live" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" | "/ready" => {
            let routes = admin.routes.borrow().clone();
            let (status, body) = readiness(routes.as_deref(), admin.link.as_deref());
            text(status, body)
        }
        "/metrics" => {
            let routes = admin.routes.borrow().clone();
            let mut response =
                Response::new(ProxyBody::full(admin.metrics.render(routes.as_deref())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::snapshot::{BudgetSpec, FORMAT, Snapshot};
    use crate::provider::demo::DemoTransport;
    use crate::router::RoutesBuilder;

    fn routes(budgets: bool) -> Routes {
        let snapshot = Snapshot {
            format: FORMAT,
            version: "v1".into(),
            budgets: if budgets {
                vec![BudgetSpec {
                    name: "team".into(),
                    limit_micros: 1_000_000,
                    keys: Vec::new(),
                    models: Vec::new(),
                    downgrade_to: None,
                }]
            } else {
                Vec::new()
            },
            ..Snapshot::default()
        };
        RoutesBuilder::new(Arc::new(DemoTransport))
            .build(&snapshot)
            .unwrap()
    }

    #[test]
    fn no_config_is_unready_and_says_why() {
        assert_eq!(
            readiness(None, None),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "waiting for config\n".into()
            )
        );
        let link = Link::default();
        assert_eq!(
            readiness(None, Some(&link)).1,
            "waiting for config: connecting to the operator\n"
        );
        link.down(Channel::Config, &"TLS certificate not trusted: ...");
        let (status, body) = readiness(None, Some(&link));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "waiting for config: no config from the operator for 0 s (1 failed attempts): TLS certificate not trusted: ...\n"
        );
    }

    #[test]
    fn an_operator_outage_keeps_the_pod_ready_but_says_what_it_costs() {
        let link = Link::default();
        let with_budgets = routes(true);
        assert_eq!(
            readiness(Some(&with_budgets), Some(&link)),
            (StatusCode::OK, "ready\n".into())
        );
        link.up(Channel::Config);
        link.up(Channel::Usage);
        assert_eq!(readiness(Some(&with_budgets), Some(&link)).1, "ready\n");
        link.down(
            Channel::Config,
            &"cannot reach the operator at x:8443: refused",
        );
        link.down(
            Channel::Usage,
            &"cannot reach the operator at x:8443: refused",
        );
        let (status, body) = readiness(Some(&with_budgets), Some(&link));
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.starts_with("ready, degraded:\n- config stream down for "),
            "{body}"
        );
        assert!(
            body.contains("\n- budgeted calls will be refused (503 budget_unavailable) once this sidecar's leases run out, within 30 s: usage reports not acknowledged for 0 s (1 failed attempts): cannot reach"),
            "{body}"
        );
        let (_, body) = readiness(Some(&routes(false)), Some(&link));
        assert!(
            body.contains("- key limit shares are not refreshed: "),
            "{body}"
        );
    }
}
