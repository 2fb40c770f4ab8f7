//! Usage reports sent to the operator: `POST /v1/usage` over TLS with the pod's
//! projected service-account token, the same trust as the config stream. The CA file is
//! read again for every report and the client rebuilt when it changed ([`Trust`]), so a
//! replaced CA is followed without a restart; every outcome goes to the [`Link`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};

use super::report::{Ack, AckFuture, Authority, PATH, Report};
use crate::config::link::{Channel, Link};
use crate::config::operator::OperatorSource;
use crate::config::trust::{self, Trust};

/// Largest answer read.
const MAX_ACK: usize = 4 * 1024 * 1024;
/// A report not answered in this time is resent.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Reports to the operator.
pub struct OperatorAuthority {
    source: OperatorSource,
    trust: Trust<Full<Bytes>>,
    link: Arc<Link>,
}

impl OperatorAuthority {
    /// Reports to the operator at `source`, telling `link` how each report went.
    pub fn new(source: OperatorSource, link: Arc<Link>) -> Self {
        OperatorAuthority {
            trust: Trust::new(source.ca_file.clone()),
            source,
            link,
        }
    }

    async fn send(&self, report: &Report) -> Result<Ack, String> {
        // Re-read every time: the kubelet rotates projected tokens.
        let token = self.source.token().map_err(|e| e.to_string())?;
        let uri: Uri = format!("{}{PATH}", self.source.url.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("operator URL: {e}"))?;
        let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
        let request = Request::post(uri)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .trust
            .client()
            .map_err(|e| e.to_string())?
            .request(request)
            .await
            .map_err(|e| trust::describe(&e, &self.source.url, &self.source.ca_file).to_string())?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ACK)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "operator answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("malformed answer: {e}"))
    }
}

impl Authority for OperatorAuthority {
    fn submit<'a>(&'a self, report: &'a Report) -> AckFuture<'a> {
        Box::pin(async move {
            let answer = tokio::time::timeout(TIMEOUT, self.send(report))
                .await
                .unwrap_or_else(|_| Err("the operator did not answer in time".to_owned()));
            match &answer {
                Ok(_) => self.link.up(Channel::Usage),
                Err(e) => self.link.down(Channel::Usage, e),
            }
            answer
        })
    }
}
