//! The checks of tools: function declarations, their schemas (Gemini's OpenAPI subset)
//! and the tool config.

use serde_json::{Map, Value};

use super::{Checker, SCHEMA_FIELDS, SCHEMA_TYPES, get, join, short, valid_function_name};

impl Checker {
    pub(super) fn tool(&mut self, value: &Value, path: &str, declared: &mut Vec<String>) {
        let Some(obj) = self.object(value, path, "Tool") else {
            return;
        };
        self.known(
            obj,
            path,
            &[
                "functionDeclarations",
                "googleSearch",
                "googleSearchRetrieval",
                "codeExecution",
                "urlContext",
            ],
        );
        let Some(decls) = get(obj, "functionDeclarations") else {
            return;
        };
        let decls_path = join(path, "functionDeclarations");
        for (i, decl) in self.array(decls, &decls_path).iter().enumerate() {
            let path = format!("{decls_path}[{i}]");
            let Some(decl) = self.object(decl, &path, "FunctionDeclaration") else {
                continue;
            };
            self.known(
                decl,
                &path,
                &[
                    "name",
                    "description",
                    "parameters",
                    "parametersJsonSchema",
                    "response",
                    "responseJsonSchema",
                    "behavior",
                ],
            );
            let name = get(decl, "name").and_then(Value::as_str).unwrap_or("");
            if !valid_function_name(name) {
                self.invalid.push(format!(
                    "* GenerateContentRequest.{path}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.) or dashes (-), with a maximum length of 64."
                ));
            }
            declared.push(name.to_owned());
            if let Some(schema) = get(decl, "parameters") {
                self.schema(schema, &join(&path, "parameters"));
            }
        }
    }

    /// An OpenAPI-subset `Schema`.
    pub(super) fn schema(&mut self, value: &Value, path: &str) {
        let type_name = format!("type.googleapis.com/{}.Schema", self.package());
        let Some(obj) = self.object(value, path, &type_name) else {
            return;
        };
        self.known(obj, path, SCHEMA_FIELDS);
        let mut is_object = false;
        if let Some(ty) = get(obj, "type") {
            let name = ty.as_str().map(str::to_ascii_uppercase);
            match name {
                Some(name) if SCHEMA_TYPES.contains(&name.as_str()) => {
                    is_object = name == "OBJECT";
                }
                _ => self.invalid.push(format!(
                    "Invalid value at '{path}.type' (type.googleapis.com/{}.Type), {}",
                    self.package(),
                    short(ty)
                )),
            }
        }
        if let Some(values) = get(obj, "enum") {
            for (i, v) in self
                .array(values, &format!("{path}.enum"))
                .iter()
                .enumerate()
            {
                if !v.is_string() {
                    self.invalid.push(format!(
                        "Invalid value at '{path}.enum[{i}]' (TYPE_STRING), {}",
                        short(v)
                    ));
                }
            }
        }
        if let Some(required) = get(obj, "required") {
            for (i, v) in self
                .array(required, &format!("{path}.required"))
                .iter()
                .enumerate()
            {
                if !v.is_string() {
                    self.invalid.push(format!(
                        "Invalid value at '{path}.required[{i}]' (TYPE_STRING), {}",
                        short(v)
                    ));
                }
            }
        }
        let properties = get(obj, "properties").and_then(Value::as_object);
        if let Some(properties) = properties {
            for (i, (_, schema)) in properties.iter().enumerate() {
                self.schema(schema, &format!("{path}.properties[{i}].value"));
            }
        }
        if is_object && properties.is_none_or(Map::is_empty) && get(obj, "anyOf").is_none() {
            self.invalid.push(format!(
                "* GenerateContentRequest.{path}.properties: should be non-empty for OBJECT type"
            ));
        }
        if let Some(items) = get(obj, "items") {
            self.schema(items, &join(path, "items"));
        }
        if let Some(any_of) = get(obj, "anyOf") {
            let any_path = join(path, "anyOf");
            for (i, schema) in self.array(any_of, &any_path).iter().enumerate() {
                self.schema(schema, &format!("{any_path}[{i}]"));
            }
        }
    }

    pub(super) fn tool_config(&mut self, value: &Value, declared: &[String]) {
        let Some(obj) = self.object(value, "tool_config", "ToolConfig") else {
            return;
        };
        self.known(
            obj,
            "tool_config",
            &["functionCallingConfig", "retrievalConfig"],
        );
        let Some(fcc) = get(obj, "functionCallingConfig") else {
            return;
        };
        let path = "tool_config.function_calling_config";
        let Some(fcc) = self.object(fcc, path, "FunctionCallingConfig") else {
            return;
        };
        self.known(fcc, path, &["mode", "allowedFunctionNames"]);
        let mode = get(fcc, "mode").map(|m| m.as_str().unwrap_or("?"));
        if let Some(mode) = mode
            && !["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"].contains(&mode)
        {
            self.invalid.push(format!(
                "Invalid value at '{path}.mode' (type.googleapis.com/{}.FunctionCallingConfig.Mode), \"{mode}\"",
                self.package()
            ));
        }
        if let Some(names) = get(fcc, "allowedFunctionNames").and_then(Value::as_array) {
            if !matches!(mode, Some("ANY" | "VALIDATED")) && !names.is_empty() {
                self.invalid.push(format!(
                    "* GenerateContentRequest.{path}.allowed_function_names: allowed_function_names may only be set when mode is ANY or VALIDATED."
                ));
            }
            for name in names {
                if !declared.iter().any(|d| Some(d.as_str()) == name.as_str()) {
                    self.invalid.push(format!(
                        "* GenerateContentRequest.{path}.allowed_function_names: function {} is not declared",
                        short(name)
                    ));
                }
            }
        }
    }
}
