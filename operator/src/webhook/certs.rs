//! Self-managed certificates: a CA and a serving certificate kept in one Secret, the CA
//! patched into the MutatingWebhookConfiguration's `caBundle` and published as a
//! ConfigMap (key `ca.crt`) in every namespace, where injected sidecars mount it to
//! trust the push server.
//!
//! Why one Secret: the operator runs two replicas and a sidecar may connect to either,
//! so both must serve the same certificate under the same CA. The first replica to
//! start creates the Secret (`create`: the second gets 409 and reads the winner's);
//! renewal is a resourceVersion-checked `replace`, so replicas never overwrite each
//! other. cert-manager users skip all of this (`LLMESH_TLS_DIR`, see [`super`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::push::TlsSource;
use crate::{Error, Result};

/// Secret keys: the CA (certificate and key) and the serving pair.
pub const CA_CRT: &str = "ca.crt";
/// The CA's private key.
pub const CA_KEY: &str = "ca.key";
/// The serving certificate.
pub const TLS_CRT: &str = "tls.crt";
/// The serving key.
pub const TLS_KEY: &str = "tls.key";
/// Annotation on the Secret: when the serving certificate expires (RFC 3339).
pub const NOT_AFTER: &str = "llmesh.io/not-after";
/// Annotation on the Secret: the names the serving certificate is for, comma-separated.
pub const NAMES: &str = "llmesh.io/dns-names";
/// Label on what the operator writes, so it can be found and cleaned up.
pub use crate::MANAGED_BY;

/// CA lifetime. Long: replacing a CA means every sidecar must see the new ConfigMap.
const CA_DAYS: i64 = 3650;
/// Serving certificate lifetime.
const SERVING_DAYS: i64 = 365;
/// Renew the serving certificate when less than this is left.
const RENEW_DAYS: i64 = 60;
/// How often the caBundle and the CA ConfigMaps are checked again (a `helm upgrade`
/// re-applies the webhook configuration with an empty caBundle).
pub const RECHECK: Duration = Duration::from_secs(30);
/// How often every namespace's CA ConfigMap is checked again (new namespaces get theirs
/// from the watch at once).
pub const CONFIG_MAP_RECHECK: Duration = Duration::from_secs(600);
/// How often a running operator checks whether its serving certificate is due.
pub const RENEW_CHECK: Duration = Duration::from_secs(6 * 3600);

/// PEM material: the CA clients trust and the serving pair.
#[derive(Clone)]
pub struct Bundle {
    /// CA certificate (what `caBundle` and the sidecars trust).
    pub ca_pem: String,
    /// Serving certificate chain.
    pub cert_pem: String,
    /// Serving key. Never logged.
    pub key_pem: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").finish_non_exhaustive()
    }
}

fn tls(e: impl std::fmt::Display) -> Error {
    Error::Tls(e.to_string())
}

/// The CA's fixed parameters: a re-created [`Issuer`] with the same name and key signs
/// certificates that chain to the stored CA certificate, so the CA never needs parsing.
fn ca_params(now: jiff::Timestamp) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "llmesh operator CA");
    dn.push(DnType::OrganizationName, "llmesh");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, now, CA_DAYS)?;
    Ok(params)
}

/// Sets the validity from a day before `now` (clocks disagree) to `days` after it, in
/// whole UTC days (rcgen takes dates).
fn set_validity(params: &mut CertificateParams, now: jiff::Timestamp, days: i64) -> Result<()> {
    let date = |t: jiff::Timestamp| {
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        let month = u8::try_from(d.month()).map_err(tls)?;
        let day = u8::try_from(d.day()).map_err(tls)?;
        Ok::<_, Error>(rcgen::date_time_ymd(i32::from(d.year()), month, day))
    };
    params.not_before = date(now - jiff::SignedDuration::from_hours(24))?;
    params.not_after = date(now + jiff::SignedDuration::from_hours(24 * days))?;
    Ok(())
}

/// A serving certificate for `names` signed by the CA key, valid from `now`.
fn serving(ca_key: &KeyPair, names: &[String], now: jiff::Timestamp) -> Result<(String, String)> {
    let issuer = Issuer::new(ca_params(now)?, ca_key);
    let mut params = CertificateParams::new(names.to_vec()).map_err(tls)?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, SERVING_DAYS)?;
    let key = KeyPair::generate().map_err(tls)?;
    let cert = params.signed_by(&key, &issuer).map_err(tls)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A new CA and a serving certificate for `names`: the Secret's data and annotations.
pub fn generate(names: &[String], now: jiff::Timestamp) -> Result<Secret> {
    let ca_key = KeyPair::generate().map_err(tls)?;
    let ca = ca_params(now)?.self_signed(&ca_key).map_err(tls)?;
    let (cert, key) = serving(&ca_key, names, now)?;
    Ok(secret_with(
        ca.pem(),
        ca_key.serialize_pem(),
        cert,
        key,
        names,
        now,
    ))
}

fn secret_with(
    ca: String,
    ca_key: String,
    cert: String,
    key: String,
    names: &[String],
    now: jiff::Timestamp,
) -> Secret {
    let not_after = now + jiff::SignedDuration::from_hours(24 * SERVING_DAYS);
    let data: BTreeMap<String, ByteString> = [
        (CA_CRT, ca),
        (CA_KEY, ca_key),
        (TLS_CRT, cert),
        (TLS_KEY, key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            annotations: Some(
                [
                    (NOT_AFTER.to_owned(), not_after.to_string()),
                    (NAMES.to_owned(), names.join(",")),
                ]
                .into(),
            ),
            labels: Some([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())].into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

fn field(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone())
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// The bundle in a Secret, if it is whole.
pub fn bundle(secret: &Secret) -> Option<Bundle> {
    Some(Bundle {
        ca_pem: field(secret, CA_CRT)?,
        cert_pem: field(secret, TLS_CRT)?,
        key_pem: field(secret, TLS_KEY)?,
    })
}

/// What a stored Secret needs: nothing, a new serving certificate (same CA, so nobody
/// has to learn a new CA), or everything anew (no usable CA key).
#[derive(Debug, PartialEq, Eq)]
pub enum Needs {
    /// The Secret is good.
    Nothing,
    /// Renew the serving certificate with the stored CA.
    Serving,
    /// Make a new CA and serving certificate.
    Everything,
}

/// Checks a stored Secret against the names wanted at `now`.
pub fn needs(secret: &Secret, names: &[String], now: jiff::Timestamp) -> Needs {
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let ca_key_ok = field(secret, CA_KEY).is_some_and(|k| KeyPair::from_pem(&k).is_ok());
    if bundle(secret).is_none() || !ca_key_ok {
        return Needs::Everything;
    }
    let expires_soon = annotations
        .get(NOT_AFTER)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .is_none_or(|t| t - jiff::SignedDuration::from_hours(24 * RENEW_DAYS) < now);
    let same_names = annotations.get(NAMES).map(String::as_str) == Some(names.join(",").as_str());
    if expires_soon || !same_names {
        Needs::Serving
    } else {
        Needs::Nothing
    }
}

/// Gets (or creates, or renews) the certificate Secret `namespace/name` for `names`.
pub async fn ensure_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    names: &[String],
) -> Result<Bundle> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    // A few rounds: each lost race (409) means another replica just wrote it.
    for _ in 0..5 {
        let now = jiff::Timestamp::now();
        let Some(current) = api.get_opt(name).await? else {
            let mut secret = generate(names, now)?;
            secret.metadata.name = Some(name.to_owned());
            match api.create(&PostParams::default(), &secret).await {
                Ok(created) => {
                    tracing::info!(secret = %name, "created the operator's CA and serving certificate");
                    return bundle(&created).ok_or_else(|| tls("created Secret is not whole"));
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let mut renewed = match needs(&current, names, now) {
            Needs::Nothing => {
                return bundle(&current).ok_or_else(|| tls("stored Secret is not whole"));
            }
            Needs::Everything => generate(names, now)?,
            Needs::Serving => {
                let ca_key = field(&current, CA_KEY)
                    .and_then(|k| KeyPair::from_pem(&k).ok())
                    .ok_or_else(|| tls("CA key unreadable"))?;
                let (cert, key) = serving(&ca_key, names, now)?;
                secret_with(
                    field(&current, CA_CRT).unwrap_or_default(),
                    field(&current, CA_KEY).unwrap_or_default(),
                    cert,
                    key,
                    names,
                    now,
                )
            }
        };
        renewed.metadata.name = Some(name.to_owned());
        renewed.metadata.resource_version = current.metadata.resource_version.clone();
        match api.replace(name, &PostParams::default(), &renewed).await {
            Ok(replaced) => {
                tracing::info!(secret = %name, "renewed the operator's serving certificate");
                return bundle(&replaced).ok_or_else(|| tls("renewed Secret is not whole"));
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(tls(format!(
        "Secret {namespace}/{name} kept changing under us"
    )))
}

/// The Secret the push server's CA is kept in when the webhook is off: the webhook's
/// (`LLMESH_CERT_SECRET`), so turning the webhook on or off keeps the CA.
pub const DEFAULT_SECRET: &str = crate::settings::DEFAULT_CERT_SECRET;

/// The push server's certificate: `source`, unless it is [`TlsSource::SelfSigned`]. A
/// certificate signed afresh at every start would be trusted by no sidecar after a
/// restart, and by no sidecar of another replica; instead the CA and a serving pair for
/// the same names are kept in the Secret `LLMESH_CERT_SECRET` (default
/// [`DEFAULT_SECRET`]) in `POD_NAMESPACE` (default `llmesh-system`), created by the
/// first replica to start and read by every later start ([`ensure_secret`]).
pub async fn keep_push_tls(client: &kube::Client, source: TlsSource) -> Result<TlsSource> {
    let process = crate::settings::Process::from_env();
    keep_push_tls_in(client, source, &process.pod_namespace, &process.cert_secret).await
}

/// [`keep_push_tls`] with the Secret named.
pub async fn keep_push_tls_in(
    client: &kube::Client,
    source: TlsSource,
    namespace: &str,
    secret: &str,
) -> Result<TlsSource> {
    let TlsSource::SelfSigned(names) = source else {
        return Ok(source);
    };
    let bundle = ensure_secret(client, namespace, secret, &names)
        .await
        .map_err(|e| {
            tls(format!(
                "cannot keep the push CA in the Secret {namespace}/{secret} \
                 (the operator needs get, create and update on Secrets there): {e}"
            ))
        })?;
    tracing::info!(secret = %format!("{namespace}/{secret}"), "serving the push with the CA kept in the Secret");
    Ok(TlsSource::Pem {
        cert: bundle.cert_pem,
        key: bundle.key_pem,
        ca: bundle.ca_pem,
    })
}

/// The running operator's renewal check: renews the serving certificate in the Secret
/// when it is due (with the stored CA), and returns the Secret's bundle when its
/// certificate differs from `in_use` (renewed here or by the other replica). Never makes
/// a new CA: a Secret that is gone or holds another CA is left for a restart to sort out,
/// because the running servers and every sidecar trust the CA they started with.
pub async fn renew(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    names: &[String],
    ca_pem: &str,
    in_use: &str,
) -> Result<Option<Bundle>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(current) = api.get_opt(name).await? else {
        tracing::warn!(secret = %name, "the certificate Secret is gone; restart the operator to make a new CA");
        return Ok(None);
    };
    if field(&current, CA_CRT).as_deref() != Some(ca_pem) {
        tracing::warn!(secret = %name, "the certificate Secret holds another CA; restart the operator to use it");
        return Ok(None);
    }
    let now = jiff::Timestamp::now();
    let stored = match needs(&current, names, now) {
        Needs::Serving => {
            let ca_key = field(&current, CA_KEY)
                .and_then(|k| KeyPair::from_pem(&k).ok())
                .ok_or_else(|| tls("CA key unreadable"))?;
            let (cert, key) = serving(&ca_key, names, now)?;
            let mut renewed = secret_with(
                ca_pem.to_owned(),
                field(&current, CA_KEY).unwrap_or_default(),
                cert,
                key,
                names,
                now,
            );
            renewed.metadata.name = Some(name.to_owned());
            renewed.metadata.resource_version = current.metadata.resource_version.clone();
            match api.replace(name, &PostParams::default(), &renewed).await {
                Ok(replaced) => {
                    tracing::info!(secret = %name, "renewed the operator's serving certificate");
                    replaced
                }
                // The other replica renewed it first: take theirs next round.
                Err(kube::Error::Api(e)) if e.code == 409 => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Needs::Nothing => current,
        Needs::Everything => return Ok(None),
    };
    Ok(bundle(&stored).filter(|b| b.cert_pem != in_use))
}

/// Sets `caBundle` on every webhook of the configuration `name` that lacks it. Returns
/// whether it wrote. A missing configuration is not an error (the chart may not have
/// created it yet, or injection is installed without it).
pub async fn patch_ca_bundle(client: &kube::Client, name: &str, ca_pem: &str) -> Result<bool> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let Some(mut config) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let want = ByteString(ca_pem.as_bytes().to_vec());
    let mut changed = false;
    for hook in config.webhooks.iter_mut().flatten() {
        if hook.client_config.ca_bundle.as_ref() != Some(&want) {
            hook.client_config.ca_bundle = Some(want.clone());
            changed = true;
        }
    }
    if changed {
        // resourceVersion-checked: a concurrent `helm upgrade` makes this fail with 409
        // and the next round patches what it wrote.
        api.replace(name, &PostParams::default(), &config).await?;
        tracing::info!(webhook = %name, "set the webhook's caBundle");
    }
    Ok(changed)
}

/// Makes sure `namespace` has the ConfigMap `name` with `ca.crt` = `ca_pem`.
pub async fn publish_ca(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    ca_pem: &str,
) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let data: BTreeMap<String, String> = [(CA_CRT.to_owned(), ca_pem.to_owned())].into();
    match api.get_opt(name).await? {
        Some(current) if current.data.as_ref() == Some(&data) => Ok(()),
        Some(mut current) => {
            current.data = Some(data);
            api.replace(name, &PostParams::default(), &current).await?;
            Ok(())
        }
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())].into()),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..ConfigMap::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                // The other replica was first.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Watches namespaces (all, or `only` that one): fills `writer` (the webhook reads namespace labels from it) and
/// publishes the CA ConfigMap into each namespace as it appears. Runs until the watch
/// ends (never, in practice: the watcher retries with backoff).
pub async fn watch_namespaces(
    client: kube::Client,
    writer: reflector::store::Writer<Namespace>,
    only: Option<String>,
    config_map: String,
    ca_pem: String,
) {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut config = watcher::Config::default();
    if let Some(ns) = &only {
        config = config.fields(&format!("metadata.name={ns}"));
    }
    let stream = reflector(writer, watcher(api, config).default_backoff()).applied_objects();
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let ns = match event {
            Ok(ns) => ns,
            Err(e) => {
                tracing::warn!(error = %e, "namespace watch failed; retrying");
                continue;
            }
        };
        if ns.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = ns.name_any();
        if let Err(e) = publish_ca(&client, &name, &config_map, &ca_pem).await {
            tracing::warn!(namespace = %name, error = %e, "cannot publish the CA ConfigMap");
        }
    }
}

/// Every [`RECHECK`]: the caBundle (self-managed certificates only); every
/// [`CONFIG_MAP_RECHECK`]: the CA ConfigMap in every namespace (someone may have deleted
/// one), less often because it is one GET per namespace.
pub async fn recheck(
    client: kube::Client,
    namespaces: Store<Namespace>,
    webhook_config: Option<String>,
    config_map: String,
    ca_pem: String,
) {
    let mut tick = tokio::time::interval(RECHECK);
    let mut last_config_maps = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if let Some(name) = &webhook_config
            && let Err(e) = patch_ca_bundle(&client, name, &ca_pem).await
        {
            tracing::warn!(webhook = %name, error = %e, "cannot set the webhook's caBundle");
        }
        if last_config_maps.elapsed() < CONFIG_MAP_RECHECK {
            continue;
        }
        last_config_maps = tokio::time::Instant::now();
        for ns in namespaces.state() {
            if ns.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = ns.name_any();
            if let Err(e) = publish_ca(&client, &name, &config_map, &ca_pem).await {
                tracing::debug!(namespace = %name, error = %e, "cannot publish the CA ConfigMap");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    fn names() -> Vec<String> {
        vec![
            "llmesh-operator.llmesh-system.svc".to_owned(),
            "localhost".to_owned(),
        ]
    }

    /// The serving certificate chains to the CA for its names (checked by rustls's
    /// verifier, as a sidecar or the API server would).
    fn verify(bundle: &Bundle, name: &str) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(bundle.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let cert = CertificateDer::from_pem_slice(bundle.cert_pem.as_bytes()).unwrap();
        verifier
            .verify_server_cert(
                &cert,
                &[],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .is_ok()
    }

    #[test]
    fn a_generated_secret_is_whole_and_its_certificate_chains_to_its_ca() {
        let now = jiff::Timestamp::now();
        let secret = generate(&names(), now).unwrap();
        let b = bundle(&secret).unwrap();
        assert!(verify(&b, "llmesh-operator.llmesh-system.svc"));
        assert!(!verify(&b, "elsewhere.example"));
        assert_eq!(needs(&secret, &names(), now), Needs::Nothing);
        assert!(format!("{b:?}").find("PRIVATE").is_none());
    }

    #[test]
    fn renewal_keeps_the_ca_and_happens_near_expiry_or_for_new_names() {
        let then = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 320);
        let old = generate(&names(), then).unwrap();
        let now = jiff::Timestamp::now();
        assert_eq!(needs(&old, &names(), now), Needs::Serving);
        let fresh = generate(&names(), now).unwrap();
        assert_eq!(
            needs(&fresh, &["other.svc".to_owned()], now),
            Needs::Serving
        );
        // Renewed with the stored CA key: the old CA still verifies the new certificate.
        let ca_key = KeyPair::from_pem(&field(&old, CA_KEY).unwrap()).unwrap();
        let (cert, key) = serving(&ca_key, &names(), now).unwrap();
        let renewed = Bundle {
            ca_pem: field(&old, CA_CRT).unwrap(),
            cert_pem: cert,
            key_pem: key,
        };
        assert!(verify(&renewed, "localhost"));
        let mut broken = fresh;
        broken.data.as_mut().unwrap().remove(CA_KEY);
        assert_eq!(needs(&broken, &names(), now), Needs::Everything);
    }
}
