//! Usage reports sent to the operator: `POST /v1/usage` over TLS with the pod's
//! projected service-account token, the same trust as the config stream.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};

use super::report::{Ack, AckFuture, Authority, PATH, Report};
use crate::config::operator::{OperatorSource, client};

/// Largest answer read.
const MAX_ACK: usize = 4 * 1024 * 1024;
/// A report not answered in this time is resent.
const TIMEOUT: Duration = Duration::from_secs(10);

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// Reports to the operator.
pub struct OperatorAuthority {
    source: OperatorSource,
    /// Built on first use and kept: the CA does not change while the pod lives.
    client: Mutex<Option<Client>>,
}

impl OperatorAuthority {
    /// Reports to the operator at `source`.
    pub fn new(source: OperatorSource) -> Self {
        OperatorAuthority {
            source,
            client: Mutex::new(None),
        }
    }

    fn client(&self) -> Result<Client, String> {
        let mut slot = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let ca = std::fs::read(&self.source.ca_file)
            .map_err(|e| format!("cannot read {}: {e}", self.source.ca_file.display()))?;
        let client: Client = client(&ca).map_err(|e| e.to_string())?;
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn send(&self, report: &Report) -> Result<Ack, String> {
        // Re-read every time: the kubelet rotates projected tokens.
        let token = std::fs::read_to_string(&self.source.token_file)
            .map_err(|e| format!("cannot read {}: {e}", self.source.token_file.display()))?;
        let uri: Uri = format!("{}{PATH}", self.source.url.trim_end_matches('/'))
            .parse()
            .map_err(|e| format!("operator URL: {e}"))?;
        let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
        let request = Request::post(uri)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .client()?
            .request(request)
            .await
            .map_err(|e| format!("operator unreachable: {e}"))?;
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
            tokio::time::timeout(TIMEOUT, self.send(report))
                .await
                .map_err(|_| "the operator did not answer in time".to_owned())?
        })
    }
}
