//! The Secrets resolver: the values resources reference by Secret name and key, with
//! every name asked for remembered (the hub reads only those Secrets' values).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;

use super::Reason;

/// Secret data by Secret name and key, with `stringData` overriding `data` as the API
/// server does on write.
pub(super) struct Secrets<'a> {
    by_name: BTreeMap<&'a str, BTreeMap<&'a str, &'a [u8]>>,
    /// Every name asked for.
    used: std::cell::RefCell<BTreeSet<String>>,
}

impl<'a> Secrets<'a> {
    pub(super) fn new(secrets: &'a [Secret]) -> Self {
        let mut by_name = BTreeMap::new();
        for secret in secrets {
            let Some(name) = secret.metadata.name.as_deref() else {
                continue;
            };
            let mut values: BTreeMap<&str, &[u8]> = BTreeMap::new();
            for (key, value) in secret.data.iter().flatten() {
                values.insert(key, &value.0);
            }
            for (key, value) in secret.string_data.iter().flatten() {
                values.insert(key, value.as_bytes());
            }
            by_name.insert(name, values);
        }
        Secrets {
            by_name,
            used: std::cell::RefCell::new(BTreeSet::new()),
        }
    }

    /// Every Secret name asked for, found or not.
    pub(super) fn into_used(self) -> BTreeSet<String> {
        self.used.into_inner()
    }

    /// The value of `key` in Secret `name`, trimmed of surrounding whitespace (a trailing
    /// newline from `--from-file` is never part of a credential).
    pub(super) fn get(&self, name: &str, key: &str) -> Result<String, (Reason, String)> {
        self.used.borrow_mut().insert(name.to_owned());
        let data = self
            .by_name
            .get(name)
            .ok_or_else(|| (Reason::SecretNotFound, format!("Secret {name:?} not found")))?;
        let raw = data.get(key).ok_or_else(|| {
            (
                Reason::SecretKeyMissing,
                format!("Secret {name:?} has no key {key:?}"),
            )
        })?;
        let text = std::str::from_utf8(raw).map_err(|_| {
            (
                Reason::InvalidSecretValue,
                format!("Secret {name:?} key {key:?} is not UTF-8"),
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err((
                Reason::InvalidSecretValue,
                format!("Secret {name:?} key {key:?} is empty"),
            ));
        }
        if text.chars().any(char::is_control) {
            return Err((
                Reason::InvalidSecretValue,
                format!("Secret {name:?} key {key:?} contains control characters"),
            ));
        }
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::fixtures::secret;

    #[test]
    fn values_are_trimmed_and_string_data_wins() {
        let all = [
            secret("a", &[("k", " sk-1\n")], &[]),
            secret("b", &[("k", "old")], &[("k", "new")]),
        ];
        let secrets = Secrets::new(&all);
        assert_eq!(secrets.get("a", "k"), Ok("sk-1".to_owned()));
        assert_eq!(secrets.get("b", "k"), Ok("new".to_owned()));
    }

    #[test]
    fn each_failure_has_its_reason_and_every_name_asked_for_is_remembered() {
        let all = [secret(
            "s",
            &[("empty", "  "), ("ctl", "a\u{7}b"), ("bytes", "ok")],
            &[],
        )];
        let secrets = Secrets::new(&all);
        let reason = |name: &str, key: &str| secrets.get(name, key).map_err(|(r, _)| r);
        assert_eq!(reason("ghost", "k"), Err(Reason::SecretNotFound));
        assert_eq!(reason("s", "nokey"), Err(Reason::SecretKeyMissing));
        assert_eq!(reason("s", "empty"), Err(Reason::InvalidSecretValue));
        assert_eq!(reason("s", "ctl"), Err(Reason::InvalidSecretValue));
        assert_eq!(reason("s", "bytes"), Ok("ok".to_owned()));
        let used: Vec<String> = secrets.into_used().into_iter().collect();
        assert_eq!(used, ["ghost", "s"]);
    }
}
