//! Test fixtures shared by the compiler's tests.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use llmesh_crds::llm_model::{ModelDeployment, Provider};

use super::{Compiled, Reason, Severity};

pub(crate) fn secret(name: &str, data: &[(&str, &str)], string_data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: (!data.is_empty()).then(|| {
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>()
        }),
        string_data: (!string_data.is_empty()).then(|| {
            string_data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        }),
        ..Secret::default()
    }
}

pub(crate) fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: (!data.is_empty()).then(|| {
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        }),
        ..ConfigMap::default()
    }
}

pub(crate) fn openai(name: &str, secret: &str) -> ModelDeployment {
    ModelDeployment::new(name, Provider::Openai, "gpt-4o-mini").with_secret(secret, "apiKey")
}

pub(crate) fn reasons(compiled: &Compiled) -> Vec<(String, &str, Reason, Severity)> {
    compiled
        .problems
        .iter()
        .map(|p| (p.name.clone(), p.field.as_str(), p.reason, p.severity))
        .collect()
}

/// The names of the models that compiled, in snapshot order.
pub(crate) fn model_names(compiled: &Compiled) -> Vec<&str> {
    compiled
        .snapshot
        .models
        .iter()
        .map(|m| m.name.as_str())
        .collect()
}
