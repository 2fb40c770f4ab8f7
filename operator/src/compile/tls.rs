//! Compiles a deployment's `tls`: the CA text of its Secret and ConfigMap, checked with
//! the sidecar's own reader ([`llmesh_sidecar::upstream::tls::parse_pem`]), so a text
//! the sidecar would refuse is reported on the LLMModel and the model left out, instead
//! of a snapshot the sidecar refuses whole.
//!
//! The snapshot carries the certificates alone, re-encoded as PEM: the comments and other
//! blocks of a bundle stay behind, and editing them changes no snapshot.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use llmesh_crds::llm_model::UpstreamTls;
use llmesh_sidecar::config::snapshot::TlsSpec;
use llmesh_sidecar::upstream::tls::parse_pem;
use rustls::pki_types::CertificateDer;

use super::lookup::Lookup;
use super::{Reason, Report};

/// The deployment's `tls` at `at` (e.g. `spec.deployments[0]`), its CAs read.
pub(super) fn compile_tls(
    at: &str,
    tls: &UpstreamTls,
    secrets: &Lookup<'_>,
    config_maps: &Lookup<'_>,
    report: &mut Report<'_>,
) -> TlsSpec {
    let mut ca_certificates = Vec::new();
    let sources = [
        tls.ca_secret_ref
            .as_ref()
            .map(|r| ("caSecretRef", "Secret", secrets, &r.name, &r.key)),
        tls.ca_config_map_ref
            .as_ref()
            .map(|r| ("caConfigMapRef", "ConfigMap", config_maps, &r.name, &r.key)),
    ];
    for (field, kind, lookup, name, key) in sources.into_iter().flatten() {
        let at = format!("{at}.tls.{field}");
        let certs = lookup.raw(name, key).and_then(|text| {
            parse_pem(text).map_err(|e| {
                (
                    Reason::InvalidCaCertificate,
                    format!("{kind} {name:?} key {key:?} {e}"),
                )
            })
        });
        match certs {
            Ok(certs) => ca_certificates.push(pem(&certs)),
            Err((reason, message)) => report.error(at, reason, message),
        }
    }
    TlsSpec {
        ca_certificates,
        system_roots: tls.system_roots,
    }
}

/// Certificates as PEM, 64 base64 characters a line as RFC 7468 writes them.
fn pem(certs: &[CertificateDer<'_>]) -> String {
    let mut out = String::new();
    for cert in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = STANDARD.encode(cert.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            // Base64 is ASCII: every chunk is a str.
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use llmesh_crds::shared::{ConfigMapKeyRef, SecretKeyRef};

    use super::*;
    use crate::compile::fixtures::{config_map, secret};
    use crate::compile::{Kind, Problem};

    fn ca_pem(name: &str) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    fn both(secret_key: &str, config_map_key: &str) -> UpstreamTls {
        UpstreamTls {
            ca_secret_ref: Some(SecretKeyRef::new("ca-secret", secret_key)),
            ca_config_map_ref: Some(ConfigMapKeyRef::new("ca-bundle", config_map_key)),
            system_roots: true,
        }
    }

    fn run(tls: &UpstreamTls, secrets: &Lookup<'_>, maps: &Lookup<'_>) -> (TlsSpec, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut report = Report::new(Kind::LlmModel, "m", &mut problems);
        let spec = compile_tls("spec.deployments[0]", tls, secrets, maps, &mut report);
        (spec, problems)
    }

    #[test]
    fn both_sources_are_read_and_only_their_certificates_kept() {
        let (one, two) = (ca_pem("one"), ca_pem("two"));
        let secrets = [secret("ca-secret", &[("ca.crt", &one)], &[])];
        let bundle = format!("# our CAs\n{two}\n{one}");
        let maps = [config_map("ca-bundle", &[("bundle.pem", &bundle)])];
        let (secrets, maps) = (Lookup::secrets(&secrets), Lookup::config_maps(&maps));
        let (spec, problems) = run(&both("ca.crt", "bundle.pem"), &secrets, &maps);
        assert_eq!(problems, []);
        assert!(spec.system_roots);
        assert_eq!(spec.ca_certificates.len(), 2);
        // Re-encoded: the same certificates, the comment gone.
        assert_eq!(
            parse_pem(spec.ca_certificates[1].as_bytes()).unwrap(),
            parse_pem(bundle.as_bytes()).unwrap()
        );
        assert!(!spec.ca_certificates[1].contains('#'));
        assert_eq!(
            spec.ca_certificates[0],
            pem(&parse_pem(one.as_bytes()).unwrap())
        );
        assert_eq!(secrets.into_used().len(), 1);
        assert_eq!(maps.into_used().len(), 1);
    }

    #[test]
    fn missing_and_unusable_cas_are_problems_naming_the_field() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let secrets = [secret("ca-secret", &[("key.pem", &key)], &[])];
        let maps = [config_map("ca-bundle", &[("junk", "hello")])];
        let (secrets, maps) = (Lookup::secrets(&secrets), Lookup::config_maps(&maps));
        let (spec, problems) = run(&both("key.pem", "junk"), &secrets, &maps);
        assert!(spec.ca_certificates.is_empty());
        let seen: Vec<_> = problems
            .iter()
            .map(|p| (p.field.as_str(), p.reason, p.message.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "spec.deployments[0].tls.caSecretRef",
                    Reason::InvalidCaCertificate,
                    "Secret \"ca-secret\" key \"key.pem\" holds a private key: a CA bundle holds certificates only"
                ),
                (
                    "spec.deployments[0].tls.caConfigMapRef",
                    Reason::InvalidCaCertificate,
                    "ConfigMap \"ca-bundle\" key \"junk\" holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                ),
            ]
        );
        let (_, problems) = run(&both("nokey", "junk"), &secrets, &Lookup::config_maps(&[]));
        let reasons: Vec<_> = problems.iter().map(|p| p.reason).collect();
        assert_eq!(
            reasons,
            [Reason::SecretKeyMissing, Reason::ConfigMapNotFound]
        );
    }
}
