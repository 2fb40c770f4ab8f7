//! Anthropic's Messages API over chat: requests to chat ([`to_chat`]), whole chat
//! answers ([`reply`]) and chat streams ([`Stream`]) back to Messages.
//!
//! Request, Messages → chat:
//!
//! | Messages | chat |
//! |---|---|
//! | `model`, `stream` | the same; a stream also asks for `stream_options.include_usage` |
//! | `system` string / text blocks | a first `system` message: the string / text parts (with `cache_control`) |
//! | user `text` block | text part (with `cache_control`) |
//! | user `image`, base64 / url source | `image_url` part: a `data:` URL / the URL |
//! | user `document`, base64 source | `file` part, `file_data` a `data:` URL, `filename` the `title` or `document.pdf` |
//! | user `document`, text / content source | text part / text and image parts |
//! | user `tool_result` | a `tool` message before the turn's other content: string content as it is, text blocks joined with `\n`, else parts; `is_error` not marked (an empty error result says `error`) |
//! | assistant `text` | `content` (text parts when a block has `cache_control`) |
//! | assistant `tool_use` | `tool_calls`, `arguments` the JSON text of `input` |
//! | assistant `thinking` / `redacted_thinking` | `thinking_blocks` (same objects), thinking text joined as `reasoning_content` |
//! | `tools` custom (`type` absent or `custom`) | function tools (`input_schema` → `parameters`, `strict`), `cache_control` on the tool |
//! | `tools` server tools (`web_search_…`, `bash_…`, …) | left out, their types in `ChatCall::hosted_tools` |
//! | `tool_choice` auto / any / tool / none | `auto` / `required` / named function / `none` (left out when no function tool remains) |
//! | `tool_choice.disable_parallel_tool_use` | `parallel_tool_calls: false` |
//! | `max_tokens`, `stop_sequences`, `metadata.user_id` | `max_completion_tokens`, `stop`, `user` |
//! | `temperature`, `top_p`, `top_k`, `service_tier` | the same |
//! | `thinking` enabled (budget ≤ 1024 / ≤ 8192 / more), adaptive, disabled | `reasoning_effort` low / medium / high, medium, nothing |
//! | any other field | copied, for the provider's parameter policy to refuse or drop |
//! | a null field | left out |
//!
//! Refused with `invalid` (400): content block types chat cannot carry (server tool
//! blocks, search results, ... named by type), image and document sources by Files API
//! id, document URLs (chat's file parts carry inline data only), roles other than
//! user/assistant, malformed blocks and options (naming the path, as Anthropic does),
//! and chat's own names for fields Messages names otherwise (`max_completion_tokens`,
//! `stop`, `user`, `reasoning_effort`, `parallel_tool_calls`, `stream_options`).
//!
//! Answer, chat → Messages: `thinking_blocks` (or one unsigned block of
//! `reasoning_content`), then the text, then one `tool_use` per call (`input` the parsed
//! arguments, `{}` when they are not a JSON object); `finish_reason` stop → `end_turn`,
//! length → `max_tokens`, tool_calls → `tool_use`, content_filter → `refusal`
//! (`stop_sequence` is always null: chat does not say which sequence stopped it); usage
//! `input_tokens` = prompt − cache reads − cache writes. Streams: see [`stream`].

mod reply;
mod request;
mod stream;
mod wire;

pub use reply::reply;
pub use request::to_chat;
pub use stream::Stream;

#[cfg(test)]
mod tests;
