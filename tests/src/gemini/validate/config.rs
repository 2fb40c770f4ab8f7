//! The checks of generation settings and of the embedding methods' bodies.

use serde_json::{Map, Value};

use super::{Checker, TASK_TYPES, get, join, short, snake};

impl Checker {
    pub(super) fn generation_config(&mut self, value: &Value) {
        let path = "generation_config";
        let Some(obj) = self.object(value, path, "GenerationConfig") else {
            return;
        };
        self.known(
            obj,
            path,
            &[
                "stopSequences",
                "responseMimeType",
                "responseSchema",
                "responseJsonSchema",
                "responseModalities",
                "candidateCount",
                "maxOutputTokens",
                "temperature",
                "topP",
                "topK",
                "seed",
                "presencePenalty",
                "frequencyPenalty",
                "responseLogprobs",
                "logprobs",
                "enableEnhancedCivicAnswers",
                "speechConfig",
                "thinkingConfig",
                "mediaResolution",
            ],
        );
        let number = |name: &str| get(obj, name).and_then(Value::as_f64);
        let mut range = |name: &str, low: f64, high: f64| {
            if let Some(v) = number(name)
                && !(low..=high).contains(&v)
            {
                self.invalid.push(format!(
                    "* GenerateContentRequest.generation_config.{}: must be between {low} and {high}, got {v}",
                    snake(name)
                ));
            }
        };
        range("candidateCount", 1.0, 8.0);
        range("temperature", 0.0, 2.0);
        range("topP", 0.0, 1.0);
        range("presencePenalty", -2.0, 2.0);
        range("frequencyPenalty", -2.0, 2.0);
        if let Some(max) = number("maxOutputTokens")
            && max < 1.0
        {
            self.invalid.push(
                "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
                    .into(),
            );
        }
        if let Some(stops) = get(obj, "stopSequences")
            && self.array(stops, "generation_config.stop_sequences").len() > 5
        {
            self.invalid.push(
                "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences are allowed"
                    .into(),
            );
        }
        let mime = get(obj, "responseMimeType").and_then(Value::as_str);
        if let Some(mime) = mime
            && ![
                "text/plain",
                "application/json",
                "application/xml",
                "application/yaml",
                "text/x.enum",
            ]
            .contains(&mime)
        {
            self.invalid.push(
                "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`."
                    .into(),
            );
        }
        if let Some(schema) = get(obj, "responseSchema") {
            if !matches!(mime, Some("application/json" | "text/x.enum")) {
                self.invalid.push(
                    "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be application/json or text/x.enum when response_schema is set."
                        .into(),
                );
            }
            self.schema(schema, "generation_config.response_schema");
        }
        if let Some(thinking) = get(obj, "thinkingConfig") {
            let path = "generation_config.thinking_config";
            if let Some(thinking) = self.object(thinking, path, "ThinkingConfig") {
                self.known(
                    thinking,
                    path,
                    &["includeThoughts", "thinkingBudget", "thinkingLevel"],
                );
            }
        }
    }

    pub(super) fn embed(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        batch_model: Option<&str>,
    ) {
        self.known(
            obj,
            path,
            &[
                "model",
                "content",
                "taskType",
                "title",
                "outputDimensionality",
            ],
        );
        let request = if batch_model.is_some() {
            "BatchEmbedContentsRequest"
        } else {
            "EmbedContentRequest"
        };
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}.")
        };
        if let Some(model) = batch_model {
            let named = get(obj, "model").and_then(Value::as_str);
            let want = format!("models/{model}");
            if named != Some(want.as_str()) {
                self.invalid.push(format!(
                    "* {request}.{prefix}model: model must be \"{want}\", the model of the batch request, got {}",
                    named.map_or_else(|| "nothing".into(), |n| format!("\"{n}\""))
                ));
            }
        }
        match get(obj, "content") {
            Some(content) => {
                let content_path = join(path, "content");
                if let Some(content) = self.object(content, &content_path, "Content") {
                    self.known(content, &content_path, &["role", "parts"]);
                    let parts_path = join(&content_path, "parts");
                    let parts =
                        get(content, "parts").map_or(&[][..], |v| self.array(v, &parts_path));
                    if parts.is_empty() {
                        self.invalid.push(format!(
                            "* {request}.{prefix}content.parts: must not be empty"
                        ));
                    }
                    for (j, part) in parts.iter().enumerate() {
                        self.part(part, &format!("{parts_path}[{j}]"));
                    }
                }
            }
            None => self
                .invalid
                .push(format!("* {request}.{prefix}content: content is required")),
        }
        if let Some(task) = get(obj, "taskType")
            && !task.as_str().is_some_and(|t| TASK_TYPES.contains(&t))
        {
            self.invalid.push(format!(
                "Invalid value at '{}' (type.googleapis.com/{}.TaskType), {}",
                join(path, "taskType"),
                self.package(),
                short(task)
            ));
        }
    }

    pub(super) fn batch_embed(&mut self, obj: &Map<String, Value>, model: &str) {
        self.known(obj, "", &["requests"]);
        let requests = get(obj, "requests").map_or(&[][..], |v| self.array(v, "requests"));
        if requests.is_empty() {
            self.invalid
                .push("* BatchEmbedContentsRequest.requests: requests is required".into());
        }
        if requests.len() > 100 {
            self.invalid.push(
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
                    .into(),
            );
        }
        for (i, request) in requests.iter().enumerate() {
            let path = format!("requests[{i}]");
            if let Some(request) = self.object(request, &path, "EmbedContentRequest") {
                self.embed(request, &path, Some(model));
            }
        }
    }

    pub(super) fn predict(&mut self, obj: &Map<String, Value>, model: &str) {
        self.known(obj, "", &["instances", "parameters"]);
        let instances = get(obj, "instances").map_or(&[][..], |v| self.array(v, "instances"));
        if instances.is_empty() {
            self.invalid.push("instances must not be empty.".into());
        }
        // Documented: gemini-embedding-001 takes one instance per request.
        if model.starts_with("gemini-embedding") && instances.len() > 1 {
            self.invalid.push(format!(
                "Only 1 instance per request is supported for {model}; got {}.",
                instances.len()
            ));
        }
        for (i, instance) in instances.iter().enumerate() {
            let path = format!("instances[{i}]");
            if let Some(instance) = self.object(instance, &path, "Value") {
                // Instances are free-form values the model server reads by these keys.
                self.known(instance, &path, &["content", "task_type", "title"]);
                if !instance.get("content").is_some_and(Value::is_string) {
                    self.invalid
                        .push(format!("{path}.content must be a string."));
                }
                if let Some(task) = instance.get("task_type")
                    && !task.as_str().is_some_and(|t| TASK_TYPES.contains(&t))
                {
                    self.invalid
                        .push(format!("Unsupported task_type {} at {path}.", short(task)));
                }
            }
        }
        if let Some(parameters) = get(obj, "parameters")
            && let Some(parameters) = self.object(parameters, "parameters", "Value")
        {
            self.known(
                parameters,
                "parameters",
                &["autoTruncate", "outputDimensionality"],
            );
        }
    }
}
