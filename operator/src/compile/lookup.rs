//! The resolver of the values resources reference by Secret or ConfigMap name and key,
//! with every name asked for remembered (the hub reads only those objects' values).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::Reason;

/// Which kind of object a [`Lookup`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Secret,
    ConfigMap,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    fn not_found(self) -> Reason {
        match self {
            Kind::Secret => Reason::SecretNotFound,
            Kind::ConfigMap => Reason::ConfigMapNotFound,
        }
    }

    fn key_missing(self) -> Reason {
        match self {
            Kind::Secret => Reason::SecretKeyMissing,
            Kind::ConfigMap => Reason::ConfigMapKeyMissing,
        }
    }
}

/// The values of one kind of object by name and key.
pub(super) struct Lookup<'a> {
    kind: Kind,
    by_name: BTreeMap<&'a str, BTreeMap<&'a str, &'a [u8]>>,
    /// Every name asked for.
    used: std::cell::RefCell<BTreeSet<String>>,
}

impl<'a> Lookup<'a> {
    fn new(kind: Kind, by_name: BTreeMap<&'a str, BTreeMap<&'a str, &'a [u8]>>) -> Self {
        Lookup {
            kind,
            by_name,
            used: std::cell::RefCell::new(BTreeSet::new()),
        }
    }

    /// Secrets, with `stringData` overriding `data` as the API server does on write.
    pub(super) fn secrets(secrets: &'a [Secret]) -> Self {
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
        Self::new(Kind::Secret, by_name)
    }

    /// ConfigMaps: `data` and `binaryData` (the API server keeps their keys apart).
    pub(super) fn config_maps(config_maps: &'a [ConfigMap]) -> Self {
        let mut by_name = BTreeMap::new();
        for config_map in config_maps {
            let Some(name) = config_map.metadata.name.as_deref() else {
                continue;
            };
            let mut values: BTreeMap<&str, &[u8]> = BTreeMap::new();
            for (key, value) in config_map.binary_data.iter().flatten() {
                values.insert(key, &value.0);
            }
            for (key, value) in config_map.data.iter().flatten() {
                values.insert(key, value.as_bytes());
            }
            by_name.insert(name, values);
        }
        Self::new(Kind::ConfigMap, by_name)
    }

    /// Every name asked for, found or not.
    pub(super) fn into_used(self) -> BTreeSet<String> {
        self.used.into_inner()
    }

    /// The bytes of `key` in object `name`, as stored.
    pub(super) fn raw(&self, name: &str, key: &str) -> Result<&'a [u8], (Reason, String)> {
        self.used.borrow_mut().insert(name.to_owned());
        let kind = self.kind.as_str();
        let data = self
            .by_name
            .get(name)
            .ok_or_else(|| (self.kind.not_found(), format!("{kind} {name:?} not found")))?;
        data.get(key).copied().ok_or_else(|| {
            (
                self.kind.key_missing(),
                format!("{kind} {name:?} has no key {key:?}"),
            )
        })
    }

    /// The value of `key` in object `name` as a credential: trimmed of surrounding
    /// whitespace (a trailing newline from `--from-file` is never part of one), UTF-8,
    /// not empty, no control characters.
    pub(super) fn get(&self, name: &str, key: &str) -> Result<String, (Reason, String)> {
        let raw = self.raw(name, key)?;
        let kind = self.kind.as_str();
        let text = std::str::from_utf8(raw).map_err(|_| {
            (
                Reason::InvalidSecretValue,
                format!("{kind} {name:?} key {key:?} is not UTF-8"),
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err((
                Reason::InvalidSecretValue,
                format!("{kind} {name:?} key {key:?} is empty"),
            ));
        }
        if text.chars().any(char::is_control) {
            return Err((
                Reason::InvalidSecretValue,
                format!("{kind} {name:?} key {key:?} contains control characters"),
            ));
        }
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::fixtures::{config_map, secret};

    #[test]
    fn values_are_trimmed_and_string_data_wins() {
        let all = [
            secret("a", &[("k", " sk-1\n")], &[]),
            secret("b", &[("k", "old")], &[("k", "new")]),
        ];
        let secrets = Lookup::secrets(&all);
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
        let secrets = Lookup::secrets(&all);
        let reason = |name: &str, key: &str| secrets.get(name, key).map_err(|(r, _)| r);
        assert_eq!(reason("ghost", "k"), Err(Reason::SecretNotFound));
        assert_eq!(reason("s", "nokey"), Err(Reason::SecretKeyMissing));
        assert_eq!(reason("s", "empty"), Err(Reason::InvalidSecretValue));
        assert_eq!(reason("s", "ctl"), Err(Reason::InvalidSecretValue));
        assert_eq!(reason("s", "bytes"), Ok("ok".to_owned()));
        let used: Vec<String> = secrets.into_used().into_iter().collect();
        assert_eq!(used, ["ghost", "s"]);
    }

    #[test]
    fn config_maps_read_data_and_binary_data_with_their_own_reasons() {
        let mut binary = config_map("bin", &[]);
        binary.binary_data = Some(
            [(
                "ca.der".to_owned(),
                k8s_openapi::ByteString(vec![0x30, 0x82]),
            )]
            .into(),
        );
        let all = [config_map("ca", &[("ca.crt", "-----BEGIN\n")]), binary];
        let maps = Lookup::config_maps(&all);
        assert_eq!(maps.raw("ca", "ca.crt"), Ok(&b"-----BEGIN\n"[..]));
        assert_eq!(maps.raw("bin", "ca.der"), Ok(&[0x30, 0x82][..]));
        let failure = |name: &str, key: &str| maps.raw(name, key).unwrap_err();
        assert_eq!(
            failure("ghost", "k"),
            (
                Reason::ConfigMapNotFound,
                "ConfigMap \"ghost\" not found".to_owned()
            )
        );
        assert_eq!(failure("ca", "nokey").0, Reason::ConfigMapKeyMissing);
        let used: Vec<String> = maps.into_used().into_iter().collect();
        assert_eq!(used, ["bin", "ca", "ghost"]);
    }
}
