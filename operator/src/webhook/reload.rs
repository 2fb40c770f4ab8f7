//! A serving certificate that can be swapped while the servers run: the webhook and the
//! push server resolve it on every TLS handshake, so a renewed certificate is served from
//! the next connection on, with no restart and no dropped connection.

use std::sync::{Arc, RwLock};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::Bundle;
use crate::Error;

/// The current serving certificate.
#[derive(Debug)]
pub struct Reloadable {
    current: RwLock<(String, Arc<CertifiedKey>)>,
}

fn certified(bundle: &Bundle) -> Result<Arc<CertifiedKey>, Error> {
    let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(bundle.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(bundle.key_pem.as_bytes()).map_err(|e| tls(&e))?;
    let key = any_supported_type(&key).map_err(|e| tls(&e))?;
    Ok(Arc::new(CertifiedKey::new(certs, key)))
}

impl Reloadable {
    /// Serves `bundle`'s certificate.
    pub fn new(bundle: &Bundle) -> Result<Arc<Self>, Error> {
        Ok(Arc::new(Reloadable {
            current: RwLock::new((bundle.cert_pem.clone(), certified(bundle)?)),
        }))
    }

    /// Serves `bundle`'s certificate from now on; false when it is the one served already.
    pub fn swap(&self, bundle: &Bundle) -> Result<bool, Error> {
        if self.cert_pem() == bundle.cert_pem {
            return Ok(false);
        }
        let key = certified(bundle)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (bundle.cert_pem.clone(), key);
        Ok(true)
    }

    /// The certificate served now (PEM).
    pub fn cert_pem(&self) -> String {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone()
    }

    /// A server config (HTTP/2 and HTTP/1.1 by ALPN) resolving to this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .1
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::certs;

    #[test]
    fn a_swap_changes_what_is_served_only_when_the_certificate_differs() {
        let names = ["localhost".to_owned()];
        let now = jiff::Timestamp::now();
        let first = certs::bundle(&certs::generate(&names, now).unwrap()).unwrap();
        let second = certs::bundle(&certs::generate(&names, now).unwrap()).unwrap();
        let served = Reloadable::new(&first).unwrap();
        let _config = served.server_config().unwrap();
        assert!(!served.swap(&first).unwrap());
        assert!(served.swap(&second).unwrap());
        assert_eq!(served.cert_pem(), second.cert_pem);
    }
}
