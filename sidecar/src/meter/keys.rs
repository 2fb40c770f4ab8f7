//! Virtual keys: who is calling. The snapshot carries SHA-256 hashes only; a presented
//! key is hashed and looked up by its hash, then the whole digest is compared in constant
//! time, so timing reveals nothing about stored hashes beyond what a preimage of SHA-256
//! would. A namespace without keys is open; once it has one, every call needs a key
//! (or a pod bound to a key, see [`KeyTable::authenticate`]).

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;

use super::limiter::{KeyLimiter, Limits};
use crate::config::snapshot::KeySpec;
use crate::domain::{ApiError, ErrorKind};

/// One virtual key as requests use it.
#[derive(Debug)]
pub struct Key {
    /// The VirtualKey's name.
    pub name: String,
    /// Team label.
    pub team: Option<String>,
    /// Models it may call; empty means all.
    pub models: Vec<String>,
    /// Expiry, Unix seconds.
    pub expires_at_unix: Option<i64>,
    /// Budgets its spend counts against.
    pub budgets: Vec<String>,
    /// A Budget it spends from that the snapshot does not have: its calls are refused.
    pub missing_budget: Option<String>,
    /// Its limits.
    pub limits: Limits,
    /// Live limit state, carried across reloads.
    pub limiter: Arc<KeyLimiter>,
    digest: [u8; 32],
}

impl Key {
    /// The key of a snapshot entry, with its live limiter; `None` when the entry has
    /// no valid hash (its Secret is not generated yet: nobody can use it).
    pub fn from_spec(spec: &KeySpec, limiter: Arc<KeyLimiter>) -> Option<Key> {
        Some(Key {
            digest: parse_hex(&spec.sha256)?,
            name: spec.name.clone(),
            team: spec.team.clone(),
            models: spec.models.clone(),
            expires_at_unix: spec.expires_at_unix,
            budgets: spec.budget.iter().cloned().collect(),
            missing_budget: None,
            limits: limits_of(spec),
            limiter,
        })
    }

    /// Whether the key may call `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

/// A snapshot entry's limits.
pub fn limits_of(spec: &KeySpec) -> Limits {
    Limits {
        rpm: spec.rpm,
        tpm: spec.tpm,
        parallel: spec.max_parallel_requests,
    }
}

/// The keys of one snapshot.
#[derive(Debug, Default)]
pub struct KeyTable {
    by_digest: HashMap<[u8; 32], Arc<Key>>,
    by_name: HashMap<String, Arc<Key>>,
    /// Whether the namespace has keys at all (some may not be generated yet).
    required: bool,
}

impl KeyTable {
    /// A table of `keys`; `required` when the snapshot names any key.
    pub fn new(keys: Vec<Key>, required: bool) -> Self {
        let mut table = KeyTable {
            required,
            ..KeyTable::default()
        };
        for key in keys {
            let key = Arc::new(key);
            table.by_digest.insert(key.digest, key.clone());
            table.by_name.insert(key.name.clone(), key);
        }
        table
    }

    /// Every key.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<Key>> {
        self.by_name.values()
    }

    /// A key by name.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Key>> {
        self.by_name.get(name)
    }

    /// Who is calling: the presented key, else the key this pod is bound to. `Ok(None)`
    /// means the namespace has no keys and the call is anonymous.
    pub fn authenticate(
        &self,
        presented: Option<&str>,
        bound: Option<&str>,
        now_unix: i64,
    ) -> Result<Option<Arc<Key>>, ApiError> {
        if !self.required {
            return Ok(None);
        }
        let key = match (presented, bound) {
            (Some(secret), _) => {
                let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
                let found = digest
                    .as_ref()
                    .try_into()
                    .ok()
                    .and_then(|d: [u8; 32]| self.by_digest.get(&d))
                    .filter(|k| constant_time_eq(&k.digest, digest.as_ref()));
                found.ok_or_else(|| invalid_key(secret))?
            }
            (None, Some(name)) => self.by_name.get(name).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorKind::InvalidRequest,
                    format!("This pod is bound to virtual key `{name}`, which does not exist."),
                )
                .with_code("invalid_api_key")
            })?,
            (None, None) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorKind::InvalidRequest,
                    "You didn't provide an API key. You need to provide your virtual key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )
                .with_code("missing_api_key"));
            }
        };
        if key.expires_at_unix.is_some_and(|at| at <= now_unix) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorKind::InvalidRequest,
                format!("Virtual key `{}` has expired.", key.name),
            )
            .with_code("expired_api_key"));
        }
        if let Some(budget) = &key.missing_budget {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorKind::Permission,
                format!(
                    "Virtual key `{}` spends from Budget `{budget}`, which does not exist or is not ready; its calls are refused until it is.",
                    key.name
                ),
            )
            .with_code("budget_not_found"));
        }
        Ok(Some(key.clone()))
    }
}

/// Refuses a call to a model the key may not use (403, as OpenAI answers a project
/// without access to a model).
pub fn check_model(key: &Key, model: &str) -> Result<(), ApiError> {
    if key.allows(model) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorKind::Permission,
        format!(
            "Virtual key `{}` is not allowed to use model `{model}`.",
            key.name
        ),
    )
    .with_param("model")
    .with_code("model_not_allowed"))
}

/// OpenAI's wording, showing only the key's ends.
fn invalid_key(secret: &str) -> ApiError {
    let shown = if secret.len() > 12 && secret.is_ascii() {
        format!("{}...{}", &secret[..6], &secret[secret.len() - 4..])
    } else {
        "****".to_owned()
    };
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorKind::InvalidRequest,
        format!("Incorrect API key provided: {shown}."),
    )
    .with_code("invalid_api_key")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// Lowercase hex SHA-256 of `secret`, as the snapshot stores keys.
pub fn sha256_hex(secret: &str) -> String {
    crate::hex::hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    fn table(expires: Option<i64>) -> KeyTable {
        let spec = KeySpec {
            name: "team-a".into(),
            sha256: sha256_hex("sk-llmesh-secret-123456"),
            display_prefix: "sk-llm".into(),
            models: vec!["chat".into()],
            rpm: None,
            tpm: None,
            max_parallel_requests: None,
            expires_at_unix: expires,
            team: Some("a".into()),
            user: None,
            budget: None,
        };
        let limiter = Arc::new(KeyLimiter::new(Limits::default(), Instant::now()));
        let key = Key::from_spec(&spec, limiter).unwrap();
        KeyTable::new(vec![key], true)
    }

    #[tokio::test]
    async fn known_keys_pass_and_others_get_openai_errors() {
        let t = table(None);
        let key = t
            .authenticate(Some("sk-llmesh-secret-123456"), None, 0)
            .unwrap()
            .unwrap();
        assert_eq!(key.name, "team-a");
        let err = t
            .authenticate(Some("sk-llmesh-wrong-0000000"), None, 0)
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert_eq!(err.code.as_deref(), Some("invalid_api_key"));
        assert!(err.message.contains("sk-llm...0000"), "{}", err.message);
        assert!(
            !err.message.contains("wrong"),
            "the key is not echoed whole: {}",
            err.message
        );
        let err = t.authenticate(None, None, 0).unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(check_model(&key, "chat").is_ok());
        assert_eq!(
            check_model(&key, "other").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn bound_pods_and_expiry() {
        let t = table(Some(100));
        assert_eq!(
            t.authenticate(None, Some("team-a"), 99)
                .unwrap()
                .unwrap()
                .name,
            "team-a"
        );
        let err = t.authenticate(None, Some("team-a"), 100).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("expired_api_key"));
        assert!(t.authenticate(None, Some("nobody"), 0).is_err());
    }

    #[tokio::test]
    async fn a_namespace_without_keys_is_open() {
        let t = KeyTable::new(Vec::new(), false);
        assert!(t.authenticate(Some("anything"), None, 0).unwrap().is_none());
        assert!(t.authenticate(None, None, 0).unwrap().is_none());
    }
}
