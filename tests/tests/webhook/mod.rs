//! A mutating admission webhook written in Rust for the smoke test: HTTPS with a
//! self-made certificate, adding a label and `OPENAI_BASE_URL` to every pod it sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The label the webhook adds.
pub const LABEL: &str = "llmesh.io/mutated";

pub struct Webhook {
    port: u16,
    ca_pem: String,
    calls: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        mutate(req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Webhook {
            port,
            ca_pem: cert.cert.pem(),
            calls,
            server,
        }
    }

    /// How many admission reviews the webhook has answered.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    fn configuration_name(namespace: &str) -> String {
        format!("smoke-{namespace}")
    }

    /// Registers the webhook for pods created in `namespace` only.
    pub async fn register(&self, client: &kube::Client, namespace: &str) {
        let mut config: MutatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": Self::configuration_name(namespace)},
            "webhooks": [{
                "name": "pods.smoke.llmesh.io",
                "clientConfig": {"url": format!("https://127.0.0.1:{}/mutate", self.port)},
                "rules": [{
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"]
                }],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"]
            }]
        }))
        .unwrap();
        config.webhooks.as_mut().unwrap()[0].client_config.ca_bundle =
            Some(ByteString(self.ca_pem.clone().into_bytes()));
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &config)
            .await
            .unwrap();
    }

    pub async fn unregister(&self, client: &kube::Client, namespace: &str) {
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .delete(
                &Self::configuration_name(namespace),
                &DeleteParams::default(),
            )
            .await
            .unwrap();
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn mutate(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let review: AdmissionReview<Pod> = serde_json::from_slice(&body).unwrap();
    let request: AdmissionRequest<Pod> = review.try_into().unwrap();
    let pod = request.object.clone().unwrap();
    let mut patch = Vec::new();
    if pod.metadata.labels.is_none() {
        patch.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
    }
    patch.push(json!({"op": "add", "path": "/metadata/labels/llmesh.io~1mutated", "value": "yes"}));
    let containers = pod.spec.map(|s| s.containers).unwrap_or_default();
    for (i, c) in containers.iter().enumerate() {
        if c.env.is_none() {
            patch.push(
                json!({"op": "add", "path": format!("/spec/containers/{i}/env"), "value": []}),
            );
        }
        patch.push(json!({
            "op": "add",
            "path": format!("/spec/containers/{i}/env/-"),
            "value": {"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:4000/v1"}
        }));
    }
    let response = AdmissionResponse::from(&request)
        .with_patch(serde_json::from_value(json!(patch)).unwrap())
        .unwrap();
    let review: AdmissionReview<DynamicObject> = response.into_review();
    let body = serde_json::to_vec(&review).unwrap();
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}
