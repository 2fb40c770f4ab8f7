//! A private certificate authority made at test time, and serving certificates it signs,
//! so a mock can serve HTTPS as a self-hosted model behind internal TLS does
//! ([`crate::MockConfig::tls`]).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A CA: its certificate (PEM) and the key that signs server certificates.
pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA with this common name.
    ///
    /// # Panics
    ///
    /// If rcgen cannot make a key or certificate (never with its ring backend).
    pub fn new(name: &str) -> TestCa {
        let mut params = or_panic(
            CertificateParams::new(Vec::<String>::new()),
            "CA parameters",
        );
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = or_panic(KeyPair::generate(), "a CA key");
        let cert = or_panic(params.self_signed(&key), "the CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM: what clients must trust.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A rustls server config with a certificate for `names` (DNS names or IP
    /// addresses) signed by this CA, offering HTTP/2 and HTTP/1.1 by ALPN.
    ///
    /// # Panics
    ///
    /// If rcgen or rustls refuse the names (a test's mistake).
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = or_panic(
            CertificateParams::new(names),
            "server certificate parameters",
        );
        let key = or_panic(KeyPair::generate(), "a server key");
        let cert = or_panic(
            params.signed_by(&key, &self.issuer),
            "the server certificate",
        );
        let versions = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions();
        let key = or_panic(
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()),
            "the server key",
        );
        let mut config = or_panic(
            or_panic(versions, "rustls protocol versions")
                .with_no_client_auth()
                .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key),
            "the certificate and key",
        );
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

fn or_panic<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("test CA: {what}: {e}"))
}
