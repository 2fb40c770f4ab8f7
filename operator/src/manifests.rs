//! Loads a directory of the manifests a user would `kubectl apply` (`LLMModel`,
//! `VirtualKey`, `Budget`, `Secret` and `ConfigMap` documents in `*.yaml`/`*.yml` files)
//! into [`Inputs`], and compiles them.
//!
//! Errors name the file, the document and the field, e.g.
//! `models.yaml: document 2 (LLMModel "chat"): spec.deployments[0].weight: invalid type:
//! string "x", expected u32`. Unknown fields are errors too, as with `kubectl apply`'s
//! strict validation: locally nothing else would catch a misspelt `fallback:`.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use llmesh_crds::{API_VERSION, Budget, GROUP, LlmModel, VirtualKey};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::compile::{Compiled, Inputs, compile};

/// Why a directory of manifests could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory could not be listed.
    #[error("{}: {source}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("{}: {source}", file.display())]
    ReadFile {
        /// The file.
        file: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML, does not fit its kind's schema, or redefines an
    /// object.
    #[error("{0}")]
    Document(Box<DocumentError>),
}

/// What is wrong with one document, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentError {
    /// The file.
    pub file: PathBuf,
    /// 1-based among the file's non-empty documents.
    pub document: usize,
    /// 1-based line of the file where the document starts.
    pub line: usize,
    /// The object, once its YAML parsed.
    pub object: Option<ObjectRef>,
    /// The field at fault, e.g. `spec.deployments[0].weight`.
    pub path: Option<String>,
    /// What is wrong. For YAML syntax errors, line numbers count from the document's
    /// start.
    pub message: String,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file.display(), self.document)?;
        match &self.object {
            Some(object) => write!(f, " ({object})")?,
            None => write!(f, " (line {})", self.line)?,
        }
        if let Some(path) = &self.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A kind and name, shown as `LLMModel "chat"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// The `kind`, or what stood in its place.
    pub kind: String,
    /// The `metadata.name`, if any.
    pub name: Option<String>,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} {name:?}", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

/// Loads and compiles every manifest in `dir`. Compile problems are returned in
/// [`Compiled::problems`], not as errors: the caller decides whether they are fatal.
pub fn load_dir(dir: &Path) -> Result<Compiled, LoadError> {
    Ok(compile(&load_inputs(dir)?))
}

/// Reads every `*.yaml` and `*.yml` file in `dir` (not recursing), in name order.
pub fn load_inputs(dir: &Path) -> Result<Inputs, LoadError> {
    let mut loader = Loader::default();
    for file in manifest_files(dir)? {
        let text = fs::read_to_string(&file).map_err(|source| LoadError::ReadFile {
            file: file.clone(),
            source,
        })?;
        loader.add_file(&file, &text)?;
    }
    Ok(loader.inputs)
}

/// The manifest files of `dir`, sorted by name.
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_dir = |source| LoadError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir)? {
        let path = entry.map_err(read_dir)?.path();
        let is_yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses the documents of one file into `inputs`; `file` only labels errors.
pub fn parse_into(inputs: &mut Inputs, file: &Path, text: &str) -> Result<(), LoadError> {
    let mut loader = Loader {
        inputs: std::mem::take(inputs),
        seen: Vec::new(),
    };
    let result = loader.add_file(file, text);
    *inputs = loader.inputs;
    result
}

#[derive(Default)]
struct Loader {
    inputs: Inputs,
    /// (kind, name, file) of every object loaded, to refuse redefinitions.
    seen: Vec<(&'static str, String, PathBuf)>,
}

impl Loader {
    fn add_file(&mut self, file: &Path, text: &str) -> Result<(), LoadError> {
        for (index, doc) in split_documents(text).into_iter().enumerate() {
            self.add_document(file, index + 1, doc)?;
        }
        Ok(())
    }

    fn add_document(
        &mut self,
        file: &Path,
        document: usize,
        doc: Document<'_>,
    ) -> Result<(), LoadError> {
        let error = |object: Option<ObjectRef>, path: Option<&str>, message: String| {
            LoadError::Document(Box::new(DocumentError {
                file: file.to_path_buf(),
                document,
                line: doc.line,
                object,
                path: path.map(str::to_owned),
                message,
            }))
        };
        let value: Value =
            serde_saphyr::from_str(doc.text).map_err(|err| error(None, None, err.to_string()))?;
        let str_field = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let object = ObjectRef {
            kind: str_field("kind").unwrap_or_else(|| "document".to_owned()),
            name: value
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let invalid =
            |path: &str, message: String| error(Some(object.clone()), Some(path), message);
        if !value.is_object() {
            return Err(invalid(
                ".",
                "expected a mapping with apiVersion and kind".to_owned(),
            ));
        }
        let Some(kind) = str_field("kind") else {
            return Err(invalid("kind", "missing field `kind`".to_owned()));
        };
        let api_version = str_field("apiVersion").unwrap_or_default();
        let kind: &'static str = match kind.as_str() {
            "LLMModel" => "LLMModel",
            "VirtualKey" => "VirtualKey",
            "Budget" => "Budget",
            "Secret" if api_version == "v1" => "Secret",
            "ConfigMap" if api_version == "v1" => "ConfigMap",
            _ => {
                tracing::debug!(file = %file.display(), document, kind, api_version, "skipping a document of a kind llmesh does not read");
                return Ok(());
            }
        };
        let core = kind == "Secret" || kind == "ConfigMap";
        if !core && api_version != API_VERSION {
            // Same-named kinds of other API groups are someone else's business.
            let ours = api_version.is_empty() || api_version.split('/').next() == Some(GROUP);
            if !ours {
                tracing::debug!(file = %file.display(), document, kind, api_version, "skipping a document of another API group");
                return Ok(());
            }
            return Err(invalid(
                "apiVersion",
                format!("unsupported apiVersion {api_version:?}, expected {API_VERSION:?}"),
            ));
        }
        let Some(name) = object.name.clone() else {
            return Err(invalid("metadata.name", "missing field `name`".to_owned()));
        };
        let object = match kind {
            "LLMModel" => Object::Model(typed(value, &invalid)?),
            "VirtualKey" => Object::Key(typed(value, &invalid)?),
            "Budget" => Object::Budget(typed(value, &invalid)?),
            "ConfigMap" => Object::ConfigMap(typed(value, &invalid)?),
            _ => Object::Secret(typed(value, &invalid)?),
        };
        if let Some((_, _, first)) = self.seen.iter().find(|(k, n, _)| *k == kind && *n == name) {
            let object = ObjectRef {
                kind: kind.to_owned(),
                name: Some(name),
            };
            let message = format!("already defined in {}", first.display());
            return Err(error(Some(object), None, message));
        }
        match object {
            Object::Model(model) => self.inputs.models.push(model),
            Object::Key(key) => self.inputs.keys.push(key),
            Object::Budget(budget) => self.inputs.budgets.push(budget),
            Object::Secret(secret) => self.inputs.secrets.push(secret),
            Object::ConfigMap(config_map) => self.inputs.config_maps.push(config_map),
        }
        self.seen.push((kind, name, file.to_path_buf()));
        Ok(())
    }
}

/// One typed document.
enum Object {
    Model(LlmModel),
    Key(VirtualKey),
    Budget(Budget),
    Secret(Secret),
    ConfigMap(ConfigMap),
}

/// Deserializes `value` as `T`, naming the failing field, then refuses fields `T` does
/// not know.
fn typed<T: DeserializeOwned + Serialize>(
    value: Value,
    invalid: &dyn Fn(&str, String) -> LoadError,
) -> Result<T, LoadError> {
    let parsed: T = serde_path_to_error::deserialize(&value).map_err(|err| {
        let path = err.path().to_string();
        invalid(&path, err.into_inner().to_string())
    })?;
    let known = serde_json::to_value(&parsed).map_err(|err| invalid(".", err.to_string()))?;
    let mut unknown = Vec::new();
    unknown_fields(&value, &known, &mut String::new(), &mut unknown);
    match unknown.first() {
        Some(path) => Err(invalid(path, "unknown field".to_owned())),
        None => Ok(parsed),
    }
}

/// Paths present in `input` but absent from `known` (the typed value serialized back).
/// Empty values are let through: the types omit them when serializing.
fn unknown_fields(input: &Value, known: &Value, path: &mut String, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match known.get(key) {
                    Some(known) => unknown_fields(value, known, path, out),
                    None if !is_empty(value) => out.push(path.clone()),
                    None => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, known)) in input.iter().zip(known).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                unknown_fields(value, known, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// One YAML document of a file.
#[derive(Debug, PartialEq, Eq)]
struct Document<'a> {
    /// 1-based line of the file where the document's text starts.
    line: usize,
    text: &'a str,
}

/// Splits a YAML stream at its `---` and `...` markers, dropping documents with nothing
/// but blank lines and comments.
///
/// YAML forbids a line starting with `---` or `...` followed by a space or line end
/// inside a document's content, so splitting on those lines is exact; doing it here
/// rather than in the parser keeps document numbers right when some are empty.
fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = ["---", "..."].into_iter().find(|m| {
            bare.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        });
        if let Some(marker) = marker {
            push_document(&mut docs, &text[start..offset], start_line);
            // Content after `--- ` on the same line belongs to the next document.
            (start, start_line) = if marker == "---" {
                (offset + 3, number + 1)
            } else {
                (offset + line.len(), number + 2)
            };
        }
        offset += line.len();
    }
    push_document(&mut docs, &text[start..], start_line);
    docs
}

fn push_document<'a>(docs: &mut Vec<Document<'a>>, text: &'a str, line: usize) {
    let has_content = text.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#') && !l.starts_with('%')
    });
    if has_content {
        docs.push(Document { line, text });
    }
}

#[cfg(test)]
mod tests {
    use llmesh_sidecar::config::snapshot::ProviderKind;

    use super::*;

    fn parse(text: &str) -> Result<Inputs, LoadError> {
        let mut inputs = Inputs::default();
        parse_into(&mut inputs, Path::new("models.yaml"), text)?;
        Ok(inputs)
    }

    const CHAT: &str = "apiVersion: llmesh.io/v1alpha1
kind: LLMModel
metadata: {name: chat}
spec:
  deployments:
  - {name: d, provider: demo, model: echo}
";

    #[test]
    fn documents_split_at_markers_and_empty_ones_are_dropped() {
        let text = "# header\n---\na: 1\n---\n# only a comment\n---\n\n--- b: 2\n...\nc: 3\n";
        let docs = split_documents(text);
        let found: Vec<_> = docs.iter().map(|d| (d.line, d.text.trim())).collect();
        assert_eq!(found, [(2, "a: 1"), (8, "b: 2"), (10, "c: 3")]);
        assert!(split_documents("").is_empty());
        // `----` and `---x` are content, not markers.
        assert_eq!(split_documents("a: |\n  ---x\n").len(), 1);
    }

    #[test]
    fn errors_name_the_file_document_object_and_field() {
        let text = format!(
            "{CHAT}---\n{}",
            CHAT.replace("model: echo}", "model: echo, weight: x}")
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "models.yaml: document 2 (LLMModel \"chat\"): spec.deployments[0].weight: invalid type: string \"x\", expected u32"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse(&CHAT.replace("spec:\n", "spec:\n  fallback: [x]\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "models.yaml: document 1 (LLMModel \"chat\"): spec.fallback: unknown field"
        );
        // Empty values the types leave out when serializing are fine.
        assert!(parse(&CHAT.replace("spec:\n", "spec:\n  fallbacks: []\n")).is_ok());
    }

    #[test]
    fn kinds_and_api_versions() {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n---\n\
             apiVersion: billing.example.com/v1\nkind: Budget\nmetadata: {{name: b}}\n---\n{CHAT}"
        );
        let inputs = parse(&text).unwrap();
        assert_eq!(inputs.models.len(), 1);
        assert!(inputs.budgets.is_empty());

        let err = parse(&CHAT.replace("v1alpha1", "v1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "models.yaml: document 1 (LLMModel \"chat\"): apiVersion: unsupported apiVersion \"llmesh.io/v1\", expected \"llmesh.io/v1alpha1\""
        );
        let err = parse("kind: LLMModel\nmetadata: {name: x}\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("apiVersion: unsupported apiVersion \"\""),
            "{err}"
        );
        let err = parse("apiVersion: llmesh.io/v1alpha1\nkind: LLMModel\nspec: {}\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("(LLMModel): metadata.name: missing field"),
            "{err}"
        );
    }

    #[test]
    fn secrets_decode_data_and_string_data() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\n\
                    data: {a: c2stZGF0YQ==}\nstringData: {b: sk-string}\n";
        let inputs = parse(text).unwrap();
        let secret = &inputs.secrets[0];
        assert_eq!(secret.data.as_ref().unwrap()["a"].0, b"sk-data");
        assert_eq!(secret.string_data.as_ref().unwrap()["b"], "sk-string");

        let err = parse(&text.replace("c2stZGF0YQ==", "not base64!")).unwrap_err();
        assert!(
            err.to_string().contains("(Secret \"s\"): data.a: "),
            "{err}"
        );
    }

    #[test]
    fn config_maps_are_read_with_data_and_binary_data() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: internal-ca}\n\
                    data:\n  ca.crt: |\n    -----BEGIN CERTIFICATE-----\n\
                    binaryData: {ca.der: MII=}\n";
        let inputs = parse(text).unwrap();
        let map = &inputs.config_maps[0];
        assert_eq!(map.metadata.name.as_deref(), Some("internal-ca"));
        assert_eq!(
            map.data.as_ref().unwrap()["ca.crt"],
            "-----BEGIN CERTIFICATE-----\n"
        );
        assert_eq!(map.binary_data.as_ref().unwrap()["ca.der"].0, [0x30, 0x82]);
        let err = parse(&text.replace("\ndata:", "\ndta:")).unwrap_err();
        assert!(
            err.to_string()
                .contains("(ConfigMap \"internal-ca\"): dta: unknown field"),
            "{err}"
        );
    }

    #[test]
    fn yaml_syntax_errors_name_the_document_and_its_line() {
        let err = parse(&format!("{CHAT}---\nkind: [unclosed\n")).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with("models.yaml: document 2 (line 7): "),
            "{shown}"
        );
    }

    #[test]
    fn redefinitions_are_refused() {
        let err = parse(&format!("{CHAT}---\n{CHAT}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "models.yaml: document 2 (LLMModel \"chat\"): already defined in models.yaml"
        );
    }

    #[test]
    fn missing_directories_are_errors() {
        let err = load_dir(Path::new("/nonexistent/llmesh")).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/llmesh: "),
            "{err}"
        );
    }

    #[test]
    fn the_quickstart_compiles_cleanly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        let compiled = load_dir(&dir).unwrap();
        assert_eq!(compiled.problems, []);
        let snapshot = &compiled.snapshot;
        let names: Vec<_> = snapshot.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "chat",
                "chat-backup",
                "claude",
                "embed",
                "flaky",
                "gpt-4o-mini"
            ]
        );

        let chat = &snapshot.models[0];
        let weights: Vec<_> = chat
            .deployments
            .iter()
            .map(|d| (d.model.as_str(), d.weight))
            .collect();
        assert_eq!(weights, [("echo", 3), ("echo", 1)]);
        assert!(
            chat.deployments
                .iter()
                .all(|d| d.provider == ProviderKind::Demo)
        );
        assert_eq!(chat.fallbacks, ["chat-backup"]);
        assert_eq!(chat.pricing.input_micros_per_million, 150_000);

        let claude = &snapshot.models[2];
        assert_eq!(claude.deployments[0].provider, ProviderKind::Anthropic);
        assert_eq!(claude.default_max_tokens, Some(4096));
        assert_eq!(snapshot.models[3].deployments[0].model, "embed");
        let flaky = &snapshot.models[4];
        assert_eq!(flaky.deployments[0].model, "error-503");
        assert_eq!(flaky.fallbacks, ["chat"]);

        let gpt = &snapshot.models[5];
        assert_eq!(gpt.deployments[0].provider, ProviderKind::Openai);
        assert!(gpt.deployments[0].api_key.is_some());
        assert_eq!(gpt.fallbacks, ["claude", "chat"]);

        let key = &snapshot.keys[0];
        assert_eq!(
            (key.name.as_str(), key.display_prefix.as_str()),
            ("team-a", "sk-llmesh-quic")
        );
        assert_eq!(key.budget.as_deref(), Some("team-a-monthly"));
        let budget = &snapshot.budgets[0];
        assert_eq!(
            (budget.limit_micros, budget.keys.as_slice()),
            (50_000_000, &["team-a".to_owned()][..])
        );
    }
}
