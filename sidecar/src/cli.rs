//! Command lines of llmesh's binaries, from one description per binary ([`Spec`]).
//!
//! A [`Spec`] lists a binary's flags, the `LLMESH_*` environment variable behind each
//! (a flag wins over its variable) and the variables read without a flag. The same value
//! parses the command line, prints `--help` and renders the Markdown tables in
//! `docs/operations.md`, so what the binary accepts, says and documents cannot drift.
//!
//! Flags are written `--name value` or `--name=value` (the chart uses the second form);
//! `-h`/`--help` and `-V`/`--version` print and exit 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::server::Settings;
use crate::telemetry::LogFormat;

/// One flag and the environment variable that stands in for it.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    /// The flag's name without dashes, e.g. `listen`.
    pub name: &'static str,
    /// What its value is, for the help text, e.g. `ADDR`.
    pub value: &'static str,
    /// The variable read when the flag is absent.
    pub env: &'static str,
    /// What applies when neither is set, as a user would read it (`""`: nothing).
    pub default: &'static str,
    /// One sentence: what it does.
    pub help: &'static str,
}

/// An environment variable read without a flag.
#[derive(Clone, Copy, Debug)]
pub struct Var {
    /// The variable's name.
    pub name: &'static str,
    /// What applies when it is unset (`""`: nothing).
    pub default: &'static str,
    /// One sentence: what it does.
    pub help: &'static str,
}

/// A binary's whole command line.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The binary's name.
    pub bin: &'static str,
    /// One line: what the binary is.
    pub about: &'static str,
    /// Usage lines, without the binary's name.
    pub usage: &'static [&'static str],
    /// Its flags.
    pub flags: &'static [Flag],
    /// Variables read without a flag.
    pub vars: &'static [Var],
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run with these values.
    Run(Values),
    /// Print [`Spec::help`] and exit 0.
    Help,
    /// Print [`Spec::version`] and exit 0.
    Version,
}

/// Each flag's value, from the command line or else its variable. Empty variables count
/// as unset; an empty flag value is refused at parse time.
#[derive(Debug, Default)]
pub struct Values {
    values: BTreeMap<&'static str, String>,
}

impl Values {
    /// The value of flag `name` (without dashes), if given either way.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

impl Spec {
    /// Parses `args` (without the program name); flags not given fall back to `env`.
    pub fn parse(
        &self,
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Invocation, String> {
        let mut given: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(Invocation::Help),
                "-V" | "--version" => return Ok(Invocation::Version),
                _ => {}
            }
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (body, None),
            };
            let Some(flag) = self.flags.iter().find(|f| f.name == name) else {
                return Err(format!("unknown flag --{name}"));
            };
            let value = match inline {
                Some(value) => value,
                // A following flag is not a value: `--listen --log-format json` is a
                // forgotten value, not a listen address of "--log-format".
                None => args
                    .next()
                    .filter(|v| !v.starts_with("--"))
                    .ok_or_else(|| format!("--{name} needs a value ({})", flag.value))?,
            };
            if value.is_empty() {
                return Err(format!("--{name} needs a value ({})", flag.value));
            }
            if given.insert(flag.name, value).is_some() {
                return Err(format!("--{name} is given twice"));
            }
        }
        for flag in self.flags {
            if !given.contains_key(flag.name)
                && let Some(v) = env(flag.env).filter(|v| !v.trim().is_empty())
            {
                given.insert(flag.name, v);
            }
        }
        Ok(Invocation::Run(Values { values: given }))
    }

    /// `NAME VERSION`, what `--version` prints.
    pub fn version(&self) -> String {
        format!("{} {}", self.bin, env!("CARGO_PKG_VERSION"))
    }

    /// The usage lines, for an error message.
    pub fn usage(&self) -> String {
        let mut out = String::from("usage:");
        for line in self.usage {
            out.push_str(&format!("\n  {} {line}", self.bin));
        }
        out.push_str(&format!("\n  {} --help", self.bin));
        out
    }

    /// What `--help` prints: usage, every flag with its variable and default, and the
    /// variables read without a flag.
    pub fn help(&self) -> String {
        let mut out = format!("{}: {}\n\n{}\n\n", self.version(), self.about, self.usage());
        out.push_str("Flags (--name value or --name=value; each flag's variable applies when the flag is absent):\n");
        let width = self
            .flags
            .iter()
            .map(|f| f.name.len() + f.value.len() + 3)
            .max()
            .unwrap_or(0);
        for f in self.flags {
            let left = format!("--{} {}", f.name, f.value);
            out.push_str(&format!("  {left:width$}  {}\n", f.help));
            let mut meta = format!("{:width$}  env {}", "", f.env);
            if !f.default.is_empty() {
                meta.push_str(&format!(", default {}", f.default));
            }
            out.push_str(&format!("  {meta}\n"));
        }
        out.push_str(&format!("  {:width$}  print this help\n", "-h, --help"));
        out.push_str(&format!(
            "  {:width$}  print the version\n",
            "-V, --version"
        ));
        if !self.vars.is_empty() {
            out.push_str("\nEnvironment (no flag):\n");
            let width = self.vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
            for v in self.vars {
                out.push_str(&format!("  {:width$}  {}", v.name, v.help));
                if !v.default.is_empty() {
                    out.push_str(&format!(" (default {})", v.default));
                }
                out.push('\n');
            }
        }
        out
    }

    /// The Markdown tables `docs/operations.md` carries for this binary (a test checks
    /// the page holds exactly this text).
    pub fn markdown(&self) -> String {
        let cell = |s: &str| {
            if s.is_empty() {
                "—".to_owned()
            } else {
                format!("`{s}`")
            }
        };
        let mut out =
            String::from("| flag | environment | default | what it does |\n|---|---|---|---|\n");
        for f in self.flags {
            out.push_str(&format!(
                "| `--{} {}` | `{}` | {} | {} |\n",
                f.name,
                f.value.replace('|', "\\|"),
                f.env,
                cell(f.default),
                f.help.replace('|', "\\|")
            ));
        }
        if !self.vars.is_empty() {
            out.push_str("\n| environment only | default | what it does |\n|---|---|---|\n");
            for v in self.vars {
                out.push_str(&format!(
                    "| `{}` | {} | {} |\n",
                    v.name,
                    cell(v.default),
                    v.help.replace('|', "\\|")
                ));
            }
        }
        out
    }

    /// Every variable the binary reads: flags' and flag-less ones.
    pub fn env_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.flags
            .iter()
            .map(|f| f.env)
            .chain(self.vars.iter().map(|v| v.name))
    }
}

/// Runs the standard prelude of a binary's `main`: parses the process's arguments and
/// environment; prints help, the version or the error itself. `Err(code)` means "exit
/// with this code now".
pub fn from_process(spec: &Spec) -> Result<Values, std::process::ExitCode> {
    match spec.parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(Invocation::Run(values)) => Ok(values),
        Ok(Invocation::Help) => {
            print!("{}", spec.help());
            Err(std::process::ExitCode::SUCCESS)
        }
        Ok(Invocation::Version) => {
            println!("{}", spec.version());
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(err) => Err(usage_error(spec, &err)),
    }
}

/// [`from_process`] for the binaries that serve the API: also reads [`SERVE_FLAGS`] and
/// starts logging in the format asked for.
pub fn serve_from_process(spec: &Spec) -> Result<(Values, Settings), std::process::ExitCode> {
    let values = from_process(spec)?;
    let (settings, log_format) = serve_settings(&values).map_err(|err| usage_error(spec, &err))?;
    crate::telemetry::init(log_format);
    Ok((values, settings))
}

/// Prints `err` with the usage lines and gives exit code 2 (a usage error).
pub fn usage_error(spec: &Spec, err: &str) -> std::process::ExitCode {
    eprintln!("{}: {err}\n{}", spec.bin, spec.usage());
    std::process::ExitCode::from(2)
}

/// The flags every binary that serves the API shares.
pub const SERVE_FLAGS: [Flag; 10] = [
    Flag {
        name: "listen",
        value: "ADDR",
        env: "LLMESH_LISTEN",
        default: "127.0.0.1:4000",
        help: "The API address. Loopback by default: only the pod's containers reach it.",
    },
    Flag {
        name: "admin-listen",
        value: "ADDR",
        env: "LLMESH_ADMIN_LISTEN",
        default: "0.0.0.0:4001",
        help: "The admin address: /metrics, /healthz, /readyz.",
    },
    Flag {
        name: "max-body-bytes",
        value: "N",
        env: "LLMESH_MAX_BODY_BYTES",
        default: "16777216",
        help: "The largest request body accepted, in bytes; larger bodies get 413.",
    },
    Flag {
        name: "log-format",
        value: "text|json",
        env: "LLMESH_LOG_FORMAT",
        default: "text",
        help: "Log lines as text or as one JSON object each.",
    },
    Flag {
        name: "virtual-key",
        value: "NAME",
        env: "LLMESH_VIRTUAL_KEY",
        default: "",
        help: "The VirtualKey this pod is bound to: calls without a key are made with it.",
    },
    Flag {
        name: "max-buffered-bytes",
        value: "N",
        env: "LLMESH_MAX_BUFFERED_BYTES",
        default: "67108864",
        help: "Request body bytes all connections may buffer at once; beyond it calls get 503 with Retry-After.",
    },
    Flag {
        name: "responses-ttl-seconds",
        value: "N",
        env: "LLMESH_RESPONSES_TTL_SECONDS",
        default: "3600",
        help: "How long the Responses API's stored responses are kept in memory (`store`, `previous_response_id`); they do not survive a restart.",
    },
    Flag {
        name: "responses-max-bytes",
        value: "N",
        env: "LLMESH_RESPONSES_MAX_BYTES",
        default: "67108864",
        help: "Memory for stored responses; the oldest are forgotten first.",
    },
    Flag {
        name: "ca-file",
        value: "FILES",
        env: "LLMESH_CA_FILE",
        default: "",
        help: "PEM files (comma-separated; each may be a bundle) of CA certificates every upstream is trusted by besides the web roots, e.g. a private CA of self-hosted models. Read at start (a bad file stops it) and every 10 s after: a change applies to new connections, a bad one is logged and the last good CAs stay.",
    },
    Flag {
        name: "system-roots",
        value: "true|false",
        env: "LLMESH_SYSTEM_ROOTS",
        default: "false",
        help: "Also trust the system CA store for every upstream: `SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else the OS's usual files (none in the distroless image: mount them).",
    },
];

/// Variables every binary that serves the API reads.
pub const SERVE_VARS: [Var; 3] = [
    Var {
        name: "LLMESH_LOG",
        default: "info",
        help: "Log filter, in tracing's EnvFilter syntax (e.g. `info,llmesh_sidecar=debug`); `RUST_LOG` is read when it is unset.",
    },
    Var {
        name: "POD_NAME",
        default: "",
        help: "Names this process in usage reports (the injected sidecar gets it from the pod); `HOSTNAME` when unset.",
    },
    Var {
        name: "HOSTNAME",
        default: "sidecar",
        help: "Fallback for `POD_NAME`.",
    },
];

/// Where the injected pod spec mounts the operator's CA.
pub const DEFAULT_OPERATOR_CA: &str = "/var/run/secrets/llmesh/ca.crt";
/// Where the injected pod spec mounts the projected service-account token.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/llmesh/token";

/// `llmesh-sidecar`.
pub const SIDECAR: Spec = Spec {
    bin: "llmesh-sidecar",
    about: "the llmesh data plane: an OpenAI-compatible API on loopback, config from the operator or a file",
    usage: &[
        "--operator URL [--operator-ca FILE] [--token-file FILE] [flags]",
        "--config FILE [flags]",
    ],
    flags: &[
        Flag {
            name: "operator",
            value: "URL",
            env: "LLMESH_OPERATOR",
            default: "",
            help: "The operator's push address (https://...): config is streamed from it and usage reported to it. One of --operator or --config.",
        },
        Flag {
            name: "operator-ca",
            value: "FILE",
            env: "LLMESH_OPERATOR_CA",
            default: DEFAULT_OPERATOR_CA,
            help: "PEM CA that signed the operator's certificate; re-read when it changes.",
        },
        Flag {
            name: "token-file",
            value: "FILE",
            env: "LLMESH_TOKEN_FILE",
            default: DEFAULT_TOKEN_FILE,
            help: "The projected service-account token (audience llmesh) sent to the operator; re-read on every connect.",
        },
        Flag {
            name: "config",
            value: "FILE",
            env: "LLMESH_CONFIG",
            default: "",
            help: "A compiled config snapshot (JSON) to serve instead of the operator's; re-read when it changes.",
        },
        Flag {
            name: "worker-threads",
            value: "N",
            env: "LLMESH_WORKER_THREADS",
            default: "1",
            help: "Threads serving requests; 0 means one per CPU the container may use (its CPU limit, or the node's CPUs without one). One keeps every hand-off between the client's and the upstream's connections on one thread, which costs least; raise it for a pod that sends more than one core can proxy.",
        },
        SERVE_FLAGS[0],
        SERVE_FLAGS[1],
        SERVE_FLAGS[2],
        SERVE_FLAGS[3],
        SERVE_FLAGS[4],
        SERVE_FLAGS[5],
        SERVE_FLAGS[6],
        SERVE_FLAGS[7],
        SERVE_FLAGS[8],
        SERVE_FLAGS[9],
    ],
    vars: &SERVE_VARS,
};

/// `--worker-threads`: how many threads the runtime serves requests with (one by
/// default); 0 is one per CPU the process may use, which the standard library reads
/// from the cgroup's CPU quota.
pub fn worker_threads(values: &Values) -> Result<usize, String> {
    let asked = match values.get("worker-threads") {
        None => 1,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n <= 256)
            .ok_or_else(|| format!("--worker-threads: {v:?} is not a number from 0 to 256"))?,
    };
    Ok(match asked {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    })
}

/// Server settings and log format from the [`SERVE_FLAGS`] values.
pub fn serve_settings(values: &Values) -> Result<(Settings, LogFormat), String> {
    let mut settings = Settings::default();
    if let Some(v) = values.get("listen") {
        settings.api_addr = addr("--listen", v)?;
    }
    if let Some(v) = values.get("admin-listen") {
        settings.admin_addr = addr("--admin-listen", v)?;
    }
    if let Some(v) = values.get("max-body-bytes") {
        settings.max_body_bytes = positive("--max-body-bytes", v)?;
    }
    if let Some(v) = values.get("max-buffered-bytes") {
        settings.max_buffered_bytes = positive("--max-buffered-bytes", v)?;
    }
    if let Some(v) = values.get("responses-ttl-seconds") {
        let secs = positive("--responses-ttl-seconds", v)?;
        settings.responses_ttl = std::time::Duration::from_secs(secs as u64);
    }
    if let Some(v) = values.get("responses-max-bytes") {
        settings.responses_max_bytes = positive("--responses-max-bytes", v)?;
    }
    if let Some(v) = values.get("ca-file") {
        settings.ca_files = v
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(std::path::PathBuf::from)
            .collect();
    }
    settings.system_roots = match values.get("system-roots") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(format!("--system-roots: {other:?} is not true or false")),
    };
    settings.bound_key = values.get("virtual-key").map(str::to_owned);
    let log_format = log_format(values.get("log-format"))?;
    Ok((settings, log_format))
}

/// `--log-format`: `text` (the default) or `json`.
pub fn log_format(value: Option<&str>) -> Result<LogFormat, String> {
    match value {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(format!("--log-format: {other:?} is not text or json")),
    }
}

/// A positive integer, or an error naming the flag.
fn positive(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag}: {value:?} is not a positive integer"))
}

/// A socket address, or an error naming the flag.
pub fn addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not an address like 127.0.0.1:4000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        bin: "llmesh-test",
        about: "a test binary",
        usage: &["--config FILE [flags]"],
        flags: &[
            SERVE_FLAGS[0],
            SERVE_FLAGS[1],
            SERVE_FLAGS[2],
            SERVE_FLAGS[3],
            SERVE_FLAGS[4],
            Flag {
                name: "config",
                value: "FILE",
                env: "LLMESH_CONFIG",
                default: "",
                help: "a file",
            },
        ],
        vars: &SERVE_VARS,
    };

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    fn run(a: &[&str], env: impl Fn(&str) -> Option<String>) -> Result<Values, String> {
        match SPEC.parse(args(a), env)? {
            Invocation::Run(values) => Ok(values),
            other => Err(format!("expected to run, got {other:?}")),
        }
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_responses_store_is_sized_by_flag_or_variable() {
        let env = |k: &str| (k == "LLMESH_RESPONSES_TTL_SECONDS").then(|| "60".to_owned());
        let Ok(Invocation::Run(values)) =
            SIDECAR.parse(args(&["--responses-max-bytes", "1024"]), env)
        else {
            panic!("the sidecar's flags did not parse");
        };
        let (settings, _) = serve_settings(&values).unwrap();
        assert_eq!(settings.responses_ttl, std::time::Duration::from_secs(60));
        assert_eq!(settings.responses_max_bytes, 1024);
        let Ok(Invocation::Run(values)) =
            SIDECAR.parse(args(&["--responses-ttl-seconds", "0"]), none)
        else {
            panic!("the sidecar's flags did not parse");
        };
        assert!(serve_settings(&values).is_err());
    }

    #[test]
    fn upstream_trust_is_read_from_flags_or_variables() {
        let env = |k: &str| (k == "LLMESH_SYSTEM_ROOTS").then(|| "true".to_owned());
        let Ok(Invocation::Run(values)) =
            SIDECAR.parse(args(&["--ca-file=/etc/a.pem, /etc/b.pem,"]), env)
        else {
            panic!("the sidecar's flags did not parse");
        };
        let (settings, _) = serve_settings(&values).unwrap();
        assert_eq!(
            settings.ca_files,
            [
                std::path::PathBuf::from("/etc/a.pem"),
                std::path::PathBuf::from("/etc/b.pem")
            ]
        );
        assert!(settings.system_roots);
        let (settings, _) = serve_settings(&Values::default()).unwrap();
        assert!(settings.ca_files.is_empty() && !settings.system_roots);
        let Ok(Invocation::Run(values)) = SIDECAR.parse(args(&["--system-roots=yes"]), none) else {
            panic!("the sidecar's flags did not parse");
        };
        assert!(
            serve_settings(&values)
                .unwrap_err()
                .contains("true or false")
        );
    }

    #[test]
    fn both_spellings_parse_and_flags_override_env() {
        let env = |k: &str| match k {
            "LLMESH_LISTEN" => Some("127.0.0.1:9".to_owned()),
            "LLMESH_CONFIG" => Some("/etc/x.json".to_owned()),
            "LLMESH_VIRTUAL_KEY" => Some("  ".to_owned()),
            _ => None,
        };
        let values = run(&["--listen=127.0.0.1:5", "--log-format", "json"], env).unwrap();
        let (settings, format) = serve_settings(&values).unwrap();
        assert_eq!(settings.api_addr.port(), 5);
        assert_eq!(settings.admin_addr.port(), 4001);
        assert_eq!(settings.bound_key, None, "a blank variable is unset");
        assert_eq!(format, LogFormat::Json);
        assert_eq!(values.get("config"), Some("/etc/x.json"));
        // A value may itself hold '=' (split at the first one only).
        let values = run(&["--config=/a=b"], none).unwrap();
        assert_eq!(values.get("config"), Some("/a=b"));
    }

    #[test]
    fn help_and_version_win_wherever_they_are() {
        for a in [
            &["--help"][..],
            &["-h"],
            &["--listen", "127.0.0.1:1", "--help"],
        ] {
            assert!(matches!(SPEC.parse(args(a), none), Ok(Invocation::Help)));
        }
        for a in [&["--version"][..], &["-V"]] {
            assert!(matches!(SPEC.parse(args(a), none), Ok(Invocation::Version)));
        }
        let help = SPEC.help();
        for f in SPEC.flags {
            assert!(
                help.contains(&format!("--{} {}", f.name, f.value)),
                "{help}"
            );
            assert!(help.contains(f.env), "{help}");
        }
        assert!(help.contains("LLMESH_LOG") && help.contains("default 127.0.0.1:4000"));
        assert_eq!(
            SPEC.version(),
            format!("llmesh-test {}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn bad_input_is_explained() {
        let err = |a: &[&str]| run(a, none).unwrap_err();
        assert!(err(&["--nope", "1"]).contains("unknown flag --nope"));
        assert!(err(&["--nope=1"]).contains("unknown flag --nope"));
        assert!(err(&["--listen"]).contains("--listen needs a value"));
        assert!(err(&["--listen="]).contains("--listen needs a value"));
        assert!(err(&["--listen", "--log-format", "json"]).contains("--listen needs a value"));
        assert!(err(&["--listen=1:2", "--listen=3:4"]).contains("given twice"));
        assert!(err(&["stray"]).contains("unexpected argument"));
        assert!(err(&["-x"]).contains("unexpected argument"));
        let settings = |a: &[&str]| serve_settings(&run(a, none).unwrap()).unwrap_err();
        assert!(settings(&["--listen", "4000"]).contains("--listen"));
        assert!(settings(&["--max-body-bytes=0"]).contains("positive integer"));
        assert!(settings(&["--log-format=xml"]).contains("text or json"));
    }

    #[test]
    fn one_worker_thread_unless_asked() {
        let threads = |a: &[&str]| {
            let values = match SIDECAR.parse(args(a), none) {
                Ok(Invocation::Run(values)) => values,
                other => panic!("{other:?}"),
            };
            worker_threads(&values)
        };
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(threads(&[]), Ok(1));
        assert_eq!(threads(&["--worker-threads", "0"]), Ok(cpus));
        assert_eq!(threads(&["--worker-threads=3"]), Ok(3));
        assert!(threads(&["--worker-threads", "many"]).is_err());
        assert!(threads(&["--worker-threads", "1000"]).is_err());
    }

    #[test]
    fn markdown_lists_every_flag_and_variable() {
        let md = SPEC.markdown();
        for name in SPEC.env_names() {
            assert!(md.contains(&format!("`{name}`")), "{md}");
        }
        assert!(md.contains("| `--max-body-bytes N` | `LLMESH_MAX_BODY_BYTES` | `16777216` |"));
        assert!(md.contains("| `--virtual-key NAME` | `LLMESH_VIRTUAL_KEY` | — |"));
    }
}
