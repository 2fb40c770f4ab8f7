//! The cache key: what makes two calls the same, and what tells them apart.

use serde_json::{Value, json};

use super::*;

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn chat_key(value: Value) -> Key {
    key(
        Endpoint::ChatCompletions,
        Some("team-a"),
        None,
        &body(value),
    )
}

fn text(value: &Value) -> String {
    let mut out = Vec::new();
    canonical(value, &mut out);
    String::from_utf8(out).unwrap()
}

fn base() -> Value {
    json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"}
        ]
    })
}

#[test]
fn the_canonical_form_sorts_keys_drops_nulls_and_writes_numbers_one_way() {
    assert_eq!(
        text(
            &json!({"b": 1.0, "a": [true, null, "x\"y\\z\n"], "c": null, "d": {"f": 0.5, "e": -0.0}})
        ),
        r#"{"a":[true,null,"x\"y\\z\u000a"],"b":1,"d":{"e":0,"f":0.5}}"#
    );
    assert_eq!(text(&json!(1e300)), "1e300");
    assert_eq!(text(&json!(u64::MAX)), u64::MAX.to_string());
}

#[test]
fn field_order_whitespace_and_nulls_do_not_change_the_key() {
    let a = chat_key(base());
    let reordered: Value = serde_json::from_str(
        r#"{ "messages" : [ {"content":"Be brief.","role":"system"},
               {"content": "What is the capital of France?", "role": "user"} ],
             "model":"chat", "temperature": null }"#,
    )
    .unwrap();
    assert_eq!(chat_key(reordered), a);
    let mut with_float = base();
    with_float["temperature"] = json!(1.0);
    let mut with_int = base();
    with_int["temperature"] = json!(1);
    assert_eq!(chat_key(with_float), chat_key(with_int));
}

#[test]
fn fields_that_cannot_change_the_answer_are_left_out() {
    let a = chat_key(base());
    for (field, value) in [
        ("stream", json!(true)),
        ("stream_options", json!({"include_usage": true})),
        ("user", json!("alice")),
        ("metadata", json!({"run": "7"})),
        ("store", json!(true)),
        ("prompt_cache_key", json!("k")),
        ("safety_identifier", json!("u-1")),
    ] {
        let mut changed = base();
        changed[field] = value;
        assert_eq!(chat_key(changed), a, "{field} changed the key");
    }
}

#[test]
fn every_parameter_that_can_change_the_answer_changes_the_key() {
    let a = chat_key(base());
    let mut seen = vec![a];
    for (field, value) in [
        ("model", json!("chat-2")),
        (
            "messages",
            json!([{"role": "user", "content": "What is the capital of Spain?"}]),
        ),
        ("temperature", json!(0.7)),
        ("top_p", json!(0.9)),
        ("max_tokens", json!(100)),
        ("max_completion_tokens", json!(100)),
        ("stop", json!(["\n"])),
        ("seed", json!(7)),
        ("n", json!(1)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(0.5)),
        ("logit_bias", json!({"1234": -100})),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("response_format", json!({"type": "json_object"})),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ),
        ("tool_choice", json!("required")),
        ("parallel_tool_calls", json!(false)),
        ("reasoning_effort", json!("high")),
        ("verbosity", json!("low")),
        ("modalities", json!(["text", "audio"])),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("prediction", json!({"type": "content", "content": "x"})),
        ("web_search_options", json!({})),
        ("service_tier", json!("flex")),
        ("some_future_parameter", json!(1)),
    ] {
        let mut changed = base();
        changed[field] = value;
        let k = chat_key(changed);
        assert!(!seen.contains(&k), "{field} did not change the key");
        seen.push(k);
    }
}

#[test]
fn the_api_the_virtual_key_and_anthropic_beta_change_the_key() {
    let b = body(base());
    let chat = key(Endpoint::ChatCompletions, Some("team-a"), None, &b);
    let keys = [
        key(Endpoint::Messages, Some("team-a"), None, &b),
        key(Endpoint::ChatCompletions, Some("team-b"), None, &b),
        key(Endpoint::ChatCompletions, None, None, &b),
        key(
            Endpoint::ChatCompletions,
            Some("team-a"),
            Some("beta-1"),
            &b,
        ),
    ];
    for (i, k) in keys.iter().enumerate() {
        assert_ne!(*k, chat, "variant {i}");
    }
    // No ambiguity between the parts: a scope and a beta do not run into each other.
    assert_ne!(
        key(Endpoint::ChatCompletions, Some("a"), Some("b"), &b),
        key(Endpoint::ChatCompletions, Some("ab"), None, &b)
    );
}

#[test]
fn messages_embeddings_and_responses_keep_their_own_inert_fields() {
    let messages = json!({
        "model": "claude", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}]
    });
    let k = |v: Value| key(Endpoint::Messages, None, None, &body(v));
    let a = k(messages.clone());
    let mut m = messages.clone();
    m["metadata"] = json!({"user_id": "u"});
    m["stream"] = json!(true);
    assert_eq!(k(m), a);
    for (field, value) in [
        ("system", json!("Be brief.")),
        ("max_tokens", json!(200)),
        ("temperature", json!(0.2)),
        ("top_k", json!(5)),
        ("stop_sequences", json!(["END"])),
        (
            "thinking",
            json!({"type": "enabled", "budget_tokens": 1024}),
        ),
        (
            "tools",
            json!([{"name": "f", "input_schema": {"type": "object"}}]),
        ),
        ("tool_choice", json!({"type": "any"})),
    ] {
        let mut m = messages.clone();
        m[field] = value;
        assert_ne!(k(m), a, "{field} did not change the key");
    }

    let e = |v: Value| key(Endpoint::Embeddings, None, None, &body(v));
    let embed = json!({"model": "embed", "input": ["a", "b"]});
    let a = e(embed.clone());
    let mut with_user = embed.clone();
    with_user["user"] = json!("u");
    assert_eq!(e(with_user), a);
    for (field, value) in [
        ("input", json!(["a", "c"])),
        ("dimensions", json!(256)),
        ("encoding_format", json!("base64")),
    ] {
        let mut changed = embed.clone();
        changed[field] = value;
        assert_ne!(e(changed), a, "{field} did not change the key");
    }
}

#[test]
fn samples_and_stateful_responses_calls_are_not_cached() {
    let chat = body(json!({"model": "m", "messages": [], "n": 2}));
    assert_eq!(
        cacheable(Endpoint::ChatCompletions, &chat),
        Err(Uncacheable::Samples)
    );
    let one = body(json!({"model": "m", "messages": [], "n": 1}));
    assert_eq!(cacheable(Endpoint::ChatCompletions, &one), Ok(()));
    let responses = |v: Value| cacheable(Endpoint::Responses, &body(v));
    assert_eq!(
        responses(json!({"model": "m", "input": "hi"})),
        Err(Uncacheable::Stateful),
        "stored by default"
    );
    assert_eq!(
        responses(json!({"model": "m", "input": "hi", "store": false})),
        Ok(())
    );
    for extra in [
        json!({"previous_response_id": "resp_1"}),
        json!({"conversation": "conv_1"}),
        json!({"background": true}),
    ] {
        let mut v = json!({"model": "m", "input": "hi", "store": false});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        assert_eq!(responses(v.clone()), Err(Uncacheable::Stateful), "{v}");
    }
    let messages = body(json!({"model": "m", "messages": []}));
    assert_eq!(cacheable(Endpoint::Messages, &messages), Ok(()));
}
