//! The VirtualKey controller: makes sure each key exists in a Secret the VirtualKey owns
//! (deleting the key deletes the Secret), never regenerates it unless the
//! `llmesh.io/rotate` annotation changes, publishes only its hash and display prefix in
//! status, and marks expired keys.
//!
//! A Secret that exists without this key's ownership (created by the user beforehand)
//! brings its own key and is never overwritten.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use llmesh_crds::VirtualKey;
use llmesh_crds::virtual_key::{SECRET_KEY_FIELD, VirtualKeyStatus};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Context, MANAGER, condition, locate, ready_condition};
use crate::MANAGED_BY;
use crate::compile::Kind;
use crate::error::{Error, Result};

/// The controller's name in metrics and logs.
pub const NAME: &str = "virtualkey";
/// Set (or change) this annotation on a VirtualKey to get a new key.
pub const ROTATE_ANNOTATION: &str = "llmesh.io/rotate";
/// On the key's Secret: the rotate value the current key was made for.
const ROTATED_FOR: &str = "llmesh.io/rotated-for";
/// Every generated key starts with this.
pub const KEY_PREFIX: &str = "sk-llmesh-";

/// A new key: the prefix and 192 random bits as hex.
pub fn generate_key() -> Result<String> {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Tls("no system randomness".into()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{KEY_PREFIX}{hex}"))
}

/// Lowercase hex SHA-256, as the sidecar compares keys.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key's first characters for display: never more than half of it.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(14.min(key.len() / 2)).collect()
}

/// Whether the key in `secret` must be (re)generated for `vk`.
pub fn needs_new_key(vk: &VirtualKey, secret: Option<&Secret>) -> bool {
    let Some(secret) = secret else { return true };
    if !owned_by(secret, vk) {
        return false;
    }
    let has_key = secret
        .data
        .as_ref()
        .is_some_and(|d| d.get(SECRET_KEY_FIELD).is_some_and(|v| !v.0.is_empty()));
    let wanted = vk.annotations().get(ROTATE_ANNOTATION);
    let made_for = secret.annotations().get(ROTATED_FOR);
    !has_key || wanted != made_for
}

fn owned_by(secret: &Secret, vk: &VirtualKey) -> bool {
    let uid = vk.uid();
    secret
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref())
}

/// The Secret holding `vk`'s new `key`, owned by `vk`.
fn key_secret(
    vk: &VirtualKey,
    secret_name: &str,
    ns: &str,
    owner: OwnerReference,
    key: String,
) -> Secret {
    let mut annotations = BTreeMap::new();
    if let Some(rotate) = vk.annotations().get(ROTATE_ANNOTATION) {
        annotations.insert(ROTATED_FOR.to_owned(), rotate.clone());
    }
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name.to_owned()),
            namespace: Some(ns.to_owned()),
            owner_references: Some(vec![owner]),
            annotations: Some(annotations),
            labels: Some([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())].into()),
            ..Default::default()
        },
        data: Some([(SECRET_KEY_FIELD.to_owned(), ByteString(key.into_bytes()))].into()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// Ensures the key Secret and writes the VirtualKey's status.
pub async fn reconcile(vk: Arc<VirtualKey>, ctx: Arc<Context>) -> Result<Action> {
    // Statuses come from the caches: never judge from half-filled ones.
    ctx.hub.ready().await;
    let started = std::time::Instant::now();
    let (ns, name) = locate(vk.as_ref())?;
    let secret_name = vk.secret_name();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut secret = secrets.get_opt(&secret_name).await?;
    if needs_new_key(&vk, secret.as_ref()) {
        let key = generate_key()?;
        let uid = vk.uid().ok_or(Error::MissingMetadata("uid"))?;
        let owner = OwnerReference {
            api_version: VirtualKey::api_version(&()).into_owned(),
            kind: VirtualKey::kind(&()).into_owned(),
            name: name.clone(),
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let desired = key_secret(&vk, &secret_name, &ns, owner, key);
        // Create, or replace at the resourceVersion we read: with two replicas (or a
        // user) racing, exactly one key wins and the loser re-reads it next time.
        let written = match &secret {
            None => secrets.create(&PostParams::default(), &desired).await,
            Some(existing) => {
                let mut updated = desired;
                updated.metadata.resource_version = existing.metadata.resource_version.clone();
                secrets
                    .replace(&secret_name, &PostParams::default(), &updated)
                    .await
            }
        };
        let written = match written {
            Ok(written) => written,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                ctx.succeeded(NAME, vk.as_ref(), started);
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) => return Err(Error::Kube(e)),
        };
        tracing::info!(namespace = %ns, key = %name, secret = %secret_name, "virtual key generated");
        secret = Some(written);
    }
    let key = secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(SECRET_KEY_FIELD))
        .map(|v| String::from_utf8_lossy(&v.0).trim().to_owned());
    let now = jiff::Timestamp::now();
    let expires = vk.spec.expires_at.as_ref().map(|t| t.0);
    let expired = expires.is_some_and(|e| e <= now);
    let compiled = ctx.hub.compiled(&ns);
    let problems: Vec<_> = compiled.problems_for(Kind::VirtualKey, &name).collect();
    let previous = vk
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let ready = if expired {
        condition(
            "Ready",
            "False",
            "Expired",
            format!(
                "the key expired at {}",
                expires.map(|e| e.to_string()).unwrap_or_default()
            ),
            vk.metadata.generation,
            previous,
        )
    } else {
        ready_condition(
            vk.metadata.generation,
            &problems,
            "KeyReady",
            format!("key in Secret {secret_name}"),
            previous,
        )
    };
    let status = VirtualKeyStatus {
        observed_generation: vk.metadata.generation,
        conditions: vec![ready],
        secret_name: Some(secret_name),
        key_prefix: key.as_deref().map(display_prefix),
        key_hash: key.as_deref().map(hash),
        expired,
    };
    if vk.status.as_ref() != Some(&status) {
        let api: Api<VirtualKey> = Api::namespaced(ctx.client.clone(), &ns);
        let patch =
            json!({"apiVersion": "llmesh.io/v1alpha1", "kind": "VirtualKey", "status": status});
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    ctx.succeeded(NAME, vk.as_ref(), started);
    // Come back when the key expires, so its status flips on time.
    Ok(match expires.filter(|e| *e > now) {
        Some(e) => Action::requeue(Duration::from_secs(
            u64::try_from(e.as_second() - now.as_second()).unwrap_or(0) + 1,
        )),
        None => Action::await_change(),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 48);
        assert_ne!(a, b);
        assert_eq!(display_prefix(&a), &a[..14]);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn vk(uid: &str, rotate: Option<&str>) -> VirtualKey {
        let mut vk = VirtualKey::test("team-a");
        vk.metadata.uid = Some(uid.into());
        if let Some(r) = rotate {
            vk.metadata.annotations = Some([(ROTATE_ANNOTATION.to_owned(), r.to_owned())].into());
        }
        vk
    }

    fn secret(owner_uid: Option<&str>, made_for: Option<&str>, key: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                owner_references: owner_uid.map(|uid| {
                    vec![OwnerReference {
                        uid: uid.into(),
                        ..OwnerReference::default()
                    }]
                }),
                annotations: made_for.map(|r| [(ROTATED_FOR.to_owned(), r.to_owned())].into()),
                ..ObjectMeta::default()
            },
            data: Some(
                [(
                    SECRET_KEY_FIELD.to_owned(),
                    ByteString(key.as_bytes().to_vec()),
                )]
                .into(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn keys_are_made_once_and_again_only_when_rotation_is_asked() {
        assert!(needs_new_key(&vk("u1", None), None), "no Secret yet");
        assert!(
            !needs_new_key(&vk("u1", None), Some(&secret(Some("u1"), None, "k"))),
            "existing key kept"
        );
        assert!(
            needs_new_key(&vk("u1", Some("1")), Some(&secret(Some("u1"), None, "k"))),
            "rotation asked"
        );
        assert!(
            !needs_new_key(
                &vk("u1", Some("1")),
                Some(&secret(Some("u1"), Some("1"), "k"))
            ),
            "rotation done"
        );
        assert!(
            needs_new_key(&vk("u1", None), Some(&secret(Some("u1"), None, ""))),
            "empty key"
        );
        assert!(
            !needs_new_key(&vk("u1", Some("2")), Some(&secret(None, None, "user-key"))),
            "a user's own Secret is never overwritten"
        );
    }

    #[test]
    fn key_secrets_carry_the_documented_managed_by_label() {
        let secret = key_secret(
            &vk("u1", Some("2")),
            "team-a-key",
            "ns",
            OwnerReference::default(),
            "sk-llmesh-x".into(),
        );
        assert_eq!(
            secret.labels().get(MANAGED_BY.0).map(String::as_str),
            Some(MANAGED_BY.1)
        );
        assert_eq!(secret.annotations()[ROTATED_FOR], "2");

        // Every value the docs give the label is the one written.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![root.join("README.md")];
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            files.push(entry.unwrap().path());
        }
        let mut documented = std::collections::BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, _) in text.match_indices(MANAGED_BY.0) {
                let rest = text[at + MANAGED_BY.0.len()..].trim_start_matches([':', '=', ' ']);
                let value: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                    .collect();
                documented.insert((value, file.display().to_string()));
            }
        }
        assert!(!documented.is_empty(), "the docs name the label");
        for (value, file) in documented {
            assert_eq!(value, MANAGED_BY.1, "{file}");
        }
    }
}
