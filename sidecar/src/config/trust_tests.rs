//! TLS failures named, against a local TLS server: a certificate for another name,
//! from another CA, reached by IP; a refused connection; and a CA file replaced while
//! the client lives.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use http_body_util::{BodyExt, Empty};

/// A CA: its PEM and an issuer for server certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> Ca {
    ca_named("llmesh test CA")
}

fn ca_named(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// An HTTPS server answering 200 with a certificate for `names` signed by `ca`.
async fn server(ca: &Ca, names: &[&str]) -> u16 {
    let params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

fn ca_file(name: &str, pem: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llmesh-trust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// What a GET to `url` trusting `ca_path` fails with.
async fn failure(url: &str, ca_path: &Path) -> ConnectError {
    let pem = std::fs::read(ca_path).unwrap();
    let client: HttpsClient<Empty<bytes::Bytes>> = client(&pem, ca_path).unwrap();
    let err = client
        .get(url.parse().unwrap())
        .await
        .expect_err("the handshake must fail");
    describe(&err, url, ca_path)
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_name_mismatch() {
    let ca = ca();
    let port = server(&ca, &["operator.example"]).await;
    let path = ca_file("name.crt", &ca.pem);
    let err = failure(&format!("https://localhost:{port}"), &path).await;
    let ConnectError::Tls(tls) = &err else {
        panic!("not a TLS failure: {err}")
    };
    assert_eq!(
        tls.problem,
        TlsProblem::WrongName(vec!["operator.example".into()])
    );
    assert_eq!(tls.server_name, "localhost");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "TLS certificate name mismatch: the operator's certificate is not valid for `localhost`"
        ),
        "{text}"
    );
    assert!(text.contains("only for operator.example "), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[tokio::test]
async fn connecting_by_ip_to_a_certificate_for_a_name_is_a_name_mismatch() {
    let ca = ca();
    let port = server(&ca, &["localhost"]).await;
    let path = ca_file("ip.crt", &ca.pem);
    let err = failure(&format!("https://127.0.0.1:{port}"), &path).await;
    let text = err.to_string();
    assert!(
        matches!(&err, ConnectError::Tls(t) if matches!(t.problem, TlsProblem::WrongName(_)) && t.server_name == "127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("not valid for `127.0.0.1`"), "{text}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_an_unknown_issuer() {
    let (theirs, ours) = (ca_named("their CA"), ca_named("our CA"));
    let port = server(&theirs, &["localhost"]).await;
    let path = ca_file("other.crt", &ours.pem);
    let err = failure(&format!("https://localhost:{port}"), &path).await;
    let text = err.to_string();
    assert!(
        matches!(&err, ConnectError::Tls(t) if t.problem == TlsProblem::NotSignedByCa("unknown issuer")),
        "{text}"
    );
    assert_eq!(
        text,
        format!(
            "TLS certificate not trusted: the operator's certificate for `localhost` is not signed by the CA in {} (unknown issuer)",
            path.display()
        )
    );
}

/// What an operator that made a new CA looks like: the same CA name, another key.
#[tokio::test]
async fn a_new_ca_of_the_same_name_is_not_trusted_either() {
    let (new, old) = (ca(), ca());
    let port = server(&new, &["localhost"]).await;
    let path = ca_file("renamed.crt", &old.pem);
    let err = failure(&format!("https://localhost:{port}"), &path).await;
    let text = err.to_string();
    assert!(
        text.starts_with("TLS certificate not trusted: ") && text.contains("(bad signature: "),
        "{text}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_with_its_cause() {
    let ca = ca();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let path = ca_file("refused.crt", &ca.pem);
    let err = failure(&format!("https://127.0.0.1:{port}"), &path).await;
    let text = err.to_string();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{text}");
    assert!(
        text.starts_with(&format!("cannot reach the operator at 127.0.0.1:{port}: ")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
}

/// The kubelet swaps a projected file by renaming a symlink: the next client follows.
#[tokio::test]
async fn the_client_follows_a_replaced_ca_file() {
    let (old, new) = (ca(), ca());
    let port = server(&new, &["localhost"]).await;
    let path = ca_file("swapped.crt", &old.pem);
    let trust: Trust<Empty<bytes::Bytes>> = Trust::new(path.clone());
    let url: http::Uri = format!("https://localhost:{port}").parse().unwrap();
    let err = trust.client().unwrap().get(url.clone()).await.unwrap_err();
    assert!(matches!(
        describe(&err, &url.to_string(), &path),
        ConnectError::Tls(_)
    ));
    let staged = path.with_extension("new");
    std::fs::write(&staged, &new.pem).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    let answer = trust.client().unwrap().get(url).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
}

#[test]
fn an_empty_or_missing_ca_file_is_named() {
    let path = ca_file("empty.crt", "");
    let err = client::<Empty<bytes::Bytes>>(b"", &path).err().unwrap();
    assert!(
        err.to_string().contains("holds no usable certificate"),
        "{err}"
    );
    let missing: Trust<Empty<bytes::Bytes>> = Trust::new(path.with_extension("missing"));
    let err = missing.client().err().unwrap();
    assert!(
        err.to_string().starts_with("cannot read the CA file "),
        "{err}"
    );
}
