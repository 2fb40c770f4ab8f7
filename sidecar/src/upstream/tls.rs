//! Which certificate authorities upstream TLS trusts, and what a failed handshake means.
//!
//! Every upstream is checked against Mozilla's roots, bundled in the binary (distroless
//! images have no system store). A [`Trust`] adds to them: private CA certificates (the
//! sidecar's `--ca-file`, a deployment's `tls` resolved by the operator into the
//! snapshot) and, when asked, the system store. The system store is read once, the first
//! time any trust asks for it, through `rustls-native-certs`: `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` when set, else the platform's usual files.
//!
//! [`parse_pem`] is the one reader of CA text, used by the sidecar for its files and the
//! snapshot, and by the operator to report a bad Secret or ConfigMap on the LLMModel
//! rather than hand the sidecar something it would refuse. It is strict where leniency
//! would hide a mistake: a text without a certificate, a certificate that does not parse,
//! and a private key (which has no business in a trust bundle, nor in a snapshot) are
//! errors; text around the PEM blocks (the comments bundles carry) is not.

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::{CertificateError, RootCertStore};

/// The most PEM text one source may hold: a Kubernetes object's own limit (1 MiB) is
/// far above any CA bundle (the whole Mozilla store is about 220 KiB).
pub const MAX_PEM_BYTES: usize = 1024 * 1024;

/// The most certificates one source may hold.
pub const MAX_CERTIFICATES: usize = 1000;

/// Why a CA text cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// Above [`MAX_PEM_BYTES`].
    #[error("is {0} bytes, above the limit of {MAX_PEM_BYTES}")]
    TooLarge(usize),
    /// No `CERTIFICATE` block; `found` names the blocks there were instead.
    #[error("holds no PEM certificate (-----BEGIN CERTIFICATE-----){}", found_text(.found))]
    NoCertificate {
        /// The labels of the other blocks, e.g. `PUBLIC KEY`.
        found: Vec<String>,
    },
    /// A block is not valid PEM (bad base64, no end line).
    #[error("is not valid PEM: {0}")]
    Syntax(String),
    /// A private key: certificates only.
    #[error("holds a private key: a CA bundle holds certificates only")]
    PrivateKey,
    /// A certificate that is not X.509 webpki can use as a trust anchor.
    #[error("certificate {index} of the text is not a usable X.509 certificate: {detail}")]
    BadCertificate {
        /// 1-based among the text's certificates.
        index: usize,
        /// What webpki said.
        detail: String,
    },
    /// More than [`MAX_CERTIFICATES`].
    #[error("holds more than {MAX_CERTIFICATES} certificates")]
    TooMany,
}

fn found_text(found: &[String]) -> String {
    if found.is_empty() {
        String::new()
    } else {
        format!("; found {}", found.join(", "))
    }
}

/// The CA certificates of a PEM text, each checked to be usable as a trust anchor.
pub fn parse_pem(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    if text.len() > MAX_PEM_BYTES {
        return Err(PemError::TooLarge(text.len()));
    }
    let mut certs = Vec::new();
    let mut found = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text) {
        let (kind, der) = section.map_err(|e| PemError::Syntax(e.to_string()))?;
        match kind {
            SectionKind::Certificate => {
                if certs.len() == MAX_CERTIFICATES {
                    return Err(PemError::TooMany);
                }
                let cert = CertificateDer::from(der);
                // The same check `RootCertStore::add` makes, so what passes here is
                // never refused when a client is built from it.
                RootCertStore::empty()
                    .add(cert.clone())
                    .map_err(|e| PemError::BadCertificate {
                        index: certs.len() + 1,
                        detail: match e {
                            rustls::Error::InvalidCertificate(c) => format!("{c:?}"),
                            other => other.to_string(),
                        },
                    })?;
                certs.push(cert);
            }
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return Err(PemError::PrivateKey);
            }
            other => {
                let label = format!("{other:?}");
                if !found.contains(&label) {
                    found.push(label);
                }
            }
        }
    }
    if certs.is_empty() {
        return Err(PemError::NoCertificate { found });
    }
    Ok(certs)
}

/// What upstream TLS trusts beyond the web roots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// Extra CA certificates (DER), in the order given.
    pub extra: Vec<CertificateDer<'static>>,
    /// Also the system store.
    pub system_roots: bool,
}

impl Trust {
    /// Only the web roots: what every upstream trusts without asking.
    pub fn is_web_only(&self) -> bool {
        self.extra.is_empty() && !self.system_roots
    }

    /// Everything `self` and `other` trust.
    pub fn with(&self, other: &Trust) -> Trust {
        let mut extra = self.extra.clone();
        for cert in &other.extra {
            if !extra.contains(cert) {
                extra.push(cert.clone());
            }
        }
        Trust {
            extra,
            system_roots: self.system_roots || other.system_roots,
        }
    }

    /// A digest naming what is trusted, whatever the order or repeats of the
    /// certificates: equal keys, equal trust.
    pub fn key(&self) -> [u8; 32] {
        let mut certs: Vec<&[u8]> = self.extra.iter().map(|c| c.as_ref()).collect();
        certs.sort_unstable();
        certs.dedup();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(&[u8::from(self.system_roots)]);
        for cert in certs {
            digest.update(&(cert.len() as u64).to_be_bytes());
            digest.update(cert);
        }
        let mut key = [0; 32];
        key.copy_from_slice(digest.finish().as_ref());
        key
    }

    /// What is trusted, in words, for error messages.
    pub fn summary(&self) -> String {
        let mut text = String::from("the web roots");
        match self.extra.len() {
            0 => {}
            1 => text.push_str(", 1 extra CA certificate"),
            n => text.push_str(&format!(", {n} extra CA certificates")),
        }
        if self.system_roots {
            text.push_str(", the system store");
        }
        text
    }

    /// The root store: the web roots, the system store if asked, the extra CAs.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if self.system_roots {
            roots.add_parsable_certificates(system_store().iter().cloned());
        }
        // Every certificate passed `parse_pem`'s check: none is refused here.
        roots.add_parsable_certificates(self.extra.iter().cloned());
        roots
    }

    /// A rustls client config trusting [`Trust::roots`], with ring and the safe
    /// protocol versions.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(self.roots())
        .with_no_client_auth())
    }
}

/// The system store, read on first use (a few milliseconds of blocking file reads,
/// once per process); what cannot be read is logged then, and the rest used.
fn system_store() -> &'static [CertificateDer<'static>] {
    static STORE: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    STORE.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "cannot read part of the system CA store");
        }
        if loaded.certs.is_empty() {
            tracing::warn!(
                "the system CA store is empty: set SSL_CERT_FILE or SSL_CERT_DIR, or use --ca-file"
            );
        } else {
            tracing::info!(certificates = loaded.certs.len(), "system CA store loaded");
        }
        loaded.certs
    })
}

/// The `rustls::Error` somewhere in `err`'s cause chain. `io::Error`'s `source()` skips
/// the error it wraps, so wrapped errors are looked into with `get_ref()`.
pub fn rustls_cause<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

/// A failed upstream TLS handshake named, with what was trusted and how to add a CA;
/// `None` when `err` is not a TLS failure.
pub fn describe_failure(err: &(dyn StdError + 'static), trusted: &str) -> Option<String> {
    let tls = rustls_cause(err)?;
    const ADD_CA: &str = "add its CA with the deployment's tls.caSecretRef or \
                          tls.caConfigMapRef, or the sidecar's --ca-file";
    let what = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "TLS certificate not trusted: the upstream's certificate is not signed by a \
                 CA this deployment trusts ({trusted}; unknown issuer): {ADD_CA}"
            ),
            CertificateError::BadSignature => format!(
                "TLS certificate not trusted: the upstream's certificate has a bad signature \
                 for a CA of its issuer's name ({trusted}): {ADD_CA}"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "TLS certificate name mismatch: the upstream's certificate is not valid for \
                 the baseUrl's host ({tls})"
                )
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => format!(
                "TLS certificate expired or not yet valid: the upstream's certificate ({tls})"
            ),
            _ => format!("TLS certificate refused: {tls}"),
        },
        other => format!("TLS handshake failed: {other}"),
    };
    Some(what)
}

/// A self-signed CA certificate named `name`, as PEM: the one test CA of the sidecar's
/// unit tests.
#[cfg(test)]
pub(crate) fn test_ca_pem(name: &str) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
