//! Command-line and environment settings shared by the binaries that run a sidecar.
//! Every flag has an `LLMESH_*` environment variable; flags win.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::server::Settings;
use crate::telemetry::LogFormat;

/// `--listen`: the API address.
pub const ENV_LISTEN: &str = "LLMESH_LISTEN";
/// `--admin-listen`: the admin address.
pub const ENV_ADMIN_LISTEN: &str = "LLMESH_ADMIN_LISTEN";
/// `--max-body-bytes`: request body limit.
pub const ENV_MAX_BODY_BYTES: &str = "LLMESH_MAX_BODY_BYTES";
/// `--log-format`: `text` or `json`.
pub const ENV_LOG_FORMAT: &str = "LLMESH_LOG_FORMAT";
/// `--virtual-key`: the VirtualKey this pod is bound to (calls without a key use it).
pub const ENV_VIRTUAL_KEY: &str = "LLMESH_VIRTUAL_KEY";

/// Parsed settings plus the binary's own flags.
#[derive(Debug)]
pub struct Parsed {
    /// Server settings.
    pub settings: Settings,
    /// Log format.
    pub log_format: LogFormat,
    /// Values of the binary-specific flags (name without dashes → value).
    pub extra: HashMap<&'static str, String>,
}

/// Parses `args` (without the program name), falling back to `env` for unset flags.
/// `extra` names the binary's own value flags, e.g. `["config"]`.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
    extra: &[&'static str],
) -> Result<Parsed, String> {
    let mut flags: HashMap<String, String> = HashMap::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(name) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                (name.to_owned(), value)
            }
        };
        let known = [
            "listen",
            "admin-listen",
            "max-body-bytes",
            "log-format",
            "virtual-key",
        ];
        if !known.contains(&name.as_str()) && !extra.contains(&name.as_str()) {
            return Err(format!("unknown flag --{name}"));
        }
        flags.insert(name, value);
    }
    let get = |flag: &str, var: &str| flags.get(flag).cloned().or_else(|| env(var));
    let mut settings = Settings::default();
    if let Some(v) = get("listen", ENV_LISTEN) {
        settings.api_addr = addr("--listen", &v)?;
    }
    if let Some(v) = get("admin-listen", ENV_ADMIN_LISTEN) {
        settings.admin_addr = addr("--admin-listen", &v)?;
    }
    if let Some(v) = get("max-body-bytes", ENV_MAX_BODY_BYTES) {
        settings.max_body_bytes = v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("--max-body-bytes: {v:?} is not a positive integer"))?;
    }
    settings.bound_key = get("virtual-key", ENV_VIRTUAL_KEY).filter(|k| !k.is_empty());
    let log_format = match get("log-format", ENV_LOG_FORMAT).as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => return Err(format!("--log-format: {other:?} is not text or json")),
    };
    let mut values = HashMap::new();
    for name in extra {
        let var = format!("LLMESH_{}", name.to_ascii_uppercase().replace('-', "_"));
        if let Some(v) = get(name, &var) {
            values.insert(*name, v);
        }
    }
    Ok(Parsed {
        settings,
        log_format,
        extra: values,
    })
}

fn addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not an address like 127.0.0.1:4000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_override_env_and_defaults_apply() {
        let env = |k: &str| match k {
            "LLMESH_LISTEN" => Some("127.0.0.1:9".to_owned()),
            "LLMESH_CONFIG" => Some("/etc/x.json".to_owned()),
            _ => None,
        };
        let p = parse(
            args(&["--listen=127.0.0.1:5", "--log-format", "json"]),
            env,
            &["config"],
        )
        .unwrap();
        assert_eq!(p.settings.api_addr.port(), 5);
        assert_eq!(p.settings.admin_addr.port(), 4001);
        assert_eq!(p.log_format, LogFormat::Json);
        assert_eq!(p.extra["config"], "/etc/x.json");
    }

    #[test]
    fn bad_input_is_explained() {
        let none = |_: &str| None;
        assert!(
            parse(args(&["--nope", "1"]), none, &[])
                .unwrap_err()
                .contains("--nope")
        );
        assert!(
            parse(args(&["--listen", "4000"]), none, &[])
                .unwrap_err()
                .contains("--listen")
        );
        assert!(
            parse(args(&["--listen"]), none, &[])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(parse(args(&["stray"]), none, &[]).is_err());
        assert!(parse(args(&["--max-body-bytes", "0"]), none, &[]).is_err());
    }
}
