//! Runs one container of a Kubernetes pod spec as a local process, so tests start what
//! the chart and the injection webhook really render instead of only parsing it.
//!
//! [`Node`] plays the kubelet for one pod, as far as a process on this machine can:
//!
//! - the container's image is mapped to a built binary (by the image's repository name);
//! - `args` and `env` are taken as written, with `$(VAR)` expanded as the kubelet does,
//!   `valueFrom` resolved (`fieldRef`, `secretKeyRef`, `configMapKeyRef`), and two
//!   rewrites that stand in for a pod's own filesystem and network:
//!   - a volume's mount path becomes the directory that holds the volume's files;
//!   - `host:port` of a Service becomes `localhost:<local port>`, and the pod's own
//!     ports (`0.0.0.0:8443`, `127.0.0.1:4000`) are moved to free local ports;
//! - `emptyDir`, `secret`, `configMap` and `projected` volumes become files, the
//!   projected service-account token coming from the test;
//! - the process starts with an empty environment but `PATH` and what [`Node::env`]
//!   adds (the API server's `KUBECONFIG`: a process cannot have in-cluster config).
//!
//! Anything else the spec asks for (`command`, `envFrom`, `subPath`, other volume types)
//! is an error rather than silently ignored. Not emulated: security contexts, resources,
//! probes (the test polls the URLs [`Node::probe_url`] gives), restarts, DNS. The limits
//! are listed in `docs/testing.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// A Service the pod's processes reach on loopback.
#[derive(Clone, Debug)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Service port → local port serving it.
    pub ports: Vec<(u16, u16)>,
}

impl Service {
    fn matches(&self, host: &str) -> bool {
        let ns = &self.namespace;
        let name = &self.name;
        host == name
            || host == format!("{name}.{ns}")
            || host == format!("{name}.{ns}.svc")
            || host == format!("{name}.{ns}.svc.cluster.local")
    }
}

/// What a kubelet would give one pod, for [`Node::command`] and [`Node::env`].
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Where volumes become directories (one per pod and volume).
    pub dir: PathBuf,
    /// Image repository name (the last path segment, without tag) → binary.
    pub binaries: Vec<(String, PathBuf)>,
    /// Services reachable from the pod.
    pub services: Vec<Service>,
    /// The pod's own ports → the local ports its processes use instead.
    pub ports: Vec<(u16, u16)>,
    /// Secrets of the pod's namespace: name → key → bytes.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// ConfigMaps of the pod's namespace: name → key → text.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// The projected service-account token, for every audience.
    pub token: Option<String>,
    /// Variables added to every process (after the container's own).
    pub env: Vec<(String, String)>,
}

/// A spec this helper cannot run faithfully.
pub type Error = String;

/// The container `name` of the pod (containers first, then init containers).
pub fn container<'a>(pod: &'a Value, name: &str) -> Result<&'a Value, Error> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|list| pod["spec"][list].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .ok_or_else(|| format!("the pod has no container {name:?}"))
}

/// A pod made from a Deployment's template, named `name` in `namespace`.
pub fn from_deployment(deployment: &Value, name: &str, namespace: &str) -> Value {
    let mut pod = deployment["spec"]["template"].clone();
    pod["metadata"]["name"] = name.into();
    pod["metadata"]["namespace"] = namespace.into();
    pod
}

impl Node {
    /// The container's environment, resolved and rewritten (see the module docs).
    pub fn env(&self, pod: &Value, name: &str) -> Result<Vec<(String, String)>, Error> {
        let c = container(pod, name)?;
        if c.get("envFrom").is_some() {
            return Err(format!("{name}: envFrom is not supported"));
        }
        let mounts = self.mounts(pod, c)?;
        let mut out: Vec<(String, String)> = Vec::new();
        for var in c["env"].as_array().into_iter().flatten() {
            let key = str_at(var, "name")?;
            let value = if let Some(v) = var.get("value") {
                let v = v.as_str().ok_or("env value is not a string")?;
                expand(v, &out)
            } else if let Some(from) = var.get("valueFrom") {
                self.value_from(pod, from)?
            } else {
                String::new()
            };
            out.push((key.to_owned(), self.rewrite(&value, &mounts)));
        }
        Ok(out)
    }

    /// The container as a command: binary, arguments, environment; volumes written.
    pub fn command(&self, pod: &Value, name: &str) -> Result<Command, Error> {
        let c = container(pod, name)?;
        if c.get("command").is_some() {
            return Err(format!(
                "{name}: command is not supported (the image's entrypoint runs)"
            ));
        }
        let image = str_at(c, "image")?;
        let repo = image
            .rsplit('/')
            .next()
            .and_then(|last| last.split([':', '@']).next())
            .unwrap_or(image);
        let binary = self
            .binaries
            .iter()
            .find(|(r, _)| r == repo)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| format!("no binary for image {image:?}"))?;
        let env = self.env(pod, name)?;
        let mounts = self.mounts(pod, c)?;
        self.write_volumes(pod, c)?;
        let mut cmd = Command::new(binary);
        for arg in c["args"].as_array().into_iter().flatten() {
            let arg = arg.as_str().ok_or("an arg is not a string")?;
            cmd.arg(self.rewrite(&expand(arg, &env), &mounts));
        }
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.envs(env).envs(self.env.iter().cloned());
        cmd.stdin(Stdio::null());
        Ok(cmd)
    }

    /// `http://127.0.0.1:<local port><path>` of the container's `probe`
    /// (`readinessProbe`, `startupProbe`...), when it is an HTTP probe.
    pub fn probe_url(&self, pod: &Value, name: &str, probe: &str) -> Option<String> {
        let c = container(pod, name).ok()?;
        let get = &c[probe]["httpGet"];
        let port = match &get["port"] {
            Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
            Value::String(named) => c["ports"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == named.as_str())
                .and_then(|p| u16::try_from(p["containerPort"].as_u64()?).ok())?,
            _ => return None,
        };
        let local = self.local_port(port)?;
        Some(format!(
            "http://127.0.0.1:{local}{}",
            get["path"].as_str().unwrap_or("/")
        ))
    }

    /// The local port standing in for the pod's `port`.
    pub fn local_port(&self, port: u16) -> Option<u16> {
        self.ports.iter().find(|(p, _)| *p == port).map(|(_, l)| *l)
    }

    fn value_from(&self, pod: &Value, from: &Value) -> Result<String, Error> {
        if let Some(field) = from["fieldRef"]["fieldPath"].as_str() {
            return match field {
                "metadata.name" | "metadata.namespace" | "spec.serviceAccountName" => {
                    let (obj, key) = field.split_once('.').unwrap_or_default();
                    Ok(pod[obj][key].as_str().unwrap_or("default").to_owned())
                }
                "status.podIP" | "status.hostIP" => Ok("127.0.0.1".into()),
                other => Err(format!("fieldRef {other} is not supported")),
            };
        }
        let optional = |r: &Value| r["optional"].as_bool().unwrap_or(false);
        if let Some(r) = from.get("secretKeyRef") {
            let key = str_at(r, "key")?;
            let found = self
                .secrets
                .get(str_at(r, "name")?)
                .and_then(|s| s.get(key));
            return match found {
                Some(bytes) => String::from_utf8(bytes.clone()).map_err(|e| e.to_string()),
                None if optional(r) => Ok(String::new()),
                None => Err(format!("secretKeyRef {r}: not given to the node")),
            };
        }
        if let Some(r) = from.get("configMapKeyRef") {
            let key = str_at(r, "key")?;
            let found = self
                .config_maps
                .get(str_at(r, "name")?)
                .and_then(|m| m.get(key));
            return match found {
                Some(text) => Ok(text.clone()),
                None if optional(r) => Ok(String::new()),
                None => Err(format!("configMapKeyRef {r}: not given to the node")),
            };
        }
        Err(format!("valueFrom {from} is not supported"))
    }

    /// Mount path → local directory, longest mount path first.
    fn mounts(&self, pod: &Value, c: &Value) -> Result<Vec<(String, PathBuf)>, Error> {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("pod");
        let mut out = Vec::new();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            if m.get("subPath").is_some() || m.get("subPathExpr").is_some() {
                return Err("volumeMounts with subPath are not supported".into());
            }
            let volume = str_at(m, "name")?;
            let dir = self.dir.join(pod_name).join(volume);
            out.push((str_at(m, "mountPath")?.to_owned(), dir));
        }
        out.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        Ok(out)
    }

    fn write_volumes(&self, pod: &Value, c: &Value) -> Result<(), Error> {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("pod");
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let name = str_at(m, "name")?;
            let volume = pod["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == name)
                .ok_or_else(|| format!("volume {name:?} is mounted but not defined"))?;
            let dir = self.dir.join(pod_name).join(name);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let sources: Vec<Value> = if let Some(p) = volume.get("projected") {
                p["sources"].as_array().cloned().unwrap_or_default()
            } else {
                vec![volume.clone()]
            };
            for source in &sources {
                self.write_source(source, &dir)?;
            }
        }
        Ok(())
    }

    fn write_source(&self, source: &Value, dir: &Path) -> Result<(), Error> {
        let write = |path: &str, bytes: &[u8]| {
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))
        };
        // Keys to files: every key, or the listed `items`.
        let items = |obj: &Value, data: Vec<(String, Vec<u8>)>| -> Result<(), Error> {
            match obj["items"].as_array() {
                None => data.iter().try_for_each(|(k, v)| write(k, v)),
                Some(items) => items.iter().try_for_each(|item| {
                    let key = str_at(item, "key")?;
                    let (_, bytes) = data
                        .iter()
                        .find(|(k, _)| k == key)
                        .ok_or_else(|| format!("key {key:?} missing for a volume"))?;
                    write(str_at(item, "path")?, bytes)
                }),
            }
        };
        if source.get("emptyDir").is_some() {
            Ok(())
        } else if let Some(s) = source.get("secret") {
            let name = s["secretName"]
                .as_str()
                .or(s["name"].as_str())
                .unwrap_or("");
            let data = self
                .secrets
                .get(name)
                .ok_or_else(|| format!("Secret {name:?} is not given to the node"))?;
            items(
                s,
                data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            )
        } else if let Some(m) = source.get("configMap") {
            let name = str_at(m, "name")?;
            let data = self
                .config_maps
                .get(name)
                .ok_or_else(|| format!("ConfigMap {name:?} is not given to the node"))?;
            let data = data
                .iter()
                .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                .collect();
            items(m, data)
        } else if let Some(t) = source.get("serviceAccountToken") {
            let token = self
                .token
                .as_deref()
                .ok_or("a serviceAccountToken is projected, and the node has no token")?;
            write(str_at(t, "path")?, token.as_bytes())
        } else {
            Err(format!("volume source {source} is not supported"))
        }
    }

    /// Mount paths to local directories, Services and the pod's ports to loopback.
    fn rewrite(&self, value: &str, mounts: &[(String, PathBuf)]) -> String {
        let mut out = self.rewrite_addresses(value);
        for (path, dir) in mounts {
            let mut rewritten = String::new();
            let mut rest = out.as_str();
            while let Some(at) = rest.find(path.as_str()) {
                let after = &rest[at + path.len()..];
                let whole = after.is_empty() || after.starts_with('/');
                rewritten.push_str(&rest[..at]);
                if whole {
                    rewritten.push_str(&dir.display().to_string());
                } else {
                    rewritten.push_str(path);
                }
                rest = after;
            }
            rewritten.push_str(rest);
            out = rewritten;
        }
        out
    }

    fn rewrite_addresses(&self, value: &str) -> String {
        let bytes = value.as_bytes();
        let host_char = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b':' {
                i += 1;
                continue;
            }
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let mut start = i;
            while start > copied && host_char(bytes[start - 1]) {
                start -= 1;
            }
            let end = i + 1 + digits;
            let (host, port) = (&value[start..i], value[i + 1..end].parse::<u16>().ok());
            let replacement = port.and_then(|port| {
                if let Some(s) = self.services.iter().find(|s| s.matches(host)) {
                    let local = s.ports.iter().find(|(p, _)| *p == port)?.1;
                    Some(format!("localhost:{local}"))
                } else if ["", "0.0.0.0", "127.0.0.1", "localhost"].contains(&host) {
                    Some(format!("{host}:{}", self.local_port(port)?))
                } else {
                    None
                }
            });
            if let Some(r) = replacement {
                out.push_str(&value[copied..start]);
                out.push_str(&r);
                copied = end;
            }
            i = end.max(i + 1);
        }
        out.push_str(&value[copied..]);
        out
    }
}

/// `$(NAME)` → the value of an earlier variable, as the kubelet expands args and env
/// (`$$` escapes; unknown names stay as written).
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some((name, after)) = tail
            .strip_prefix("$(")
            .and_then(|t| t.split_once(')'))
            .filter(|(name, _)| env.iter().any(|(k, _)| k == name))
        {
            let value = env.iter().rev().find(|(k, _)| k == name);
            out.push_str(value.map_or("", |(_, v)| v.as_str()));
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn str_at<'a>(v: &'a Value, key: &str) -> Result<&'a str, Error> {
    v[key]
        .as_str()
        .ok_or_else(|| format!("{key:?} missing or not a string in {v}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Node {
        Node {
            dir: PathBuf::from("/tmp/n"),
            services: vec![Service {
                name: "op".into(),
                namespace: "sys".into(),
                ports: vec![(8443, 30001)],
            }],
            ports: vec![(4000, 30002), (8443, 30003)],
            ..Node::default()
        }
    }

    #[test]
    fn addresses_and_mounts_are_rewritten() {
        let n = node();
        let mounts = vec![("/run/x".to_owned(), PathBuf::from("/tmp/n/p/run"))];
        let r = |v: &str| n.rewrite(v, &mounts);
        assert_eq!(
            r("--operator=https://op.sys.svc:8443"),
            "--operator=https://localhost:30001"
        );
        assert_eq!(
            r("https://op.sys.svc.cluster.local:8443/x"),
            "https://localhost:30001/x"
        );
        assert_eq!(
            r("--push-listen=0.0.0.0:8443"),
            "--push-listen=0.0.0.0:30003"
        );
        assert_eq!(r("http://127.0.0.1:4000/v1"), "http://127.0.0.1:30002/v1");
        assert_eq!(
            r("img:1.2.3 other.host:8443 10:30"),
            "img:1.2.3 other.host:8443 10:30"
        );
        assert_eq!(r("/run/x/tls"), "/tmp/n/p/run/tls");
        assert_eq!(r("/run/xy"), "/run/xy");
    }

    #[test]
    fn variables_expand_like_the_kubelet() {
        let env = vec![("A".to_owned(), "1".to_owned())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "1-$(B)-$(A)-$");
    }

    #[test]
    fn what_cannot_be_run_faithfully_is_an_error() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "x", "command": ["sh"]},
            {"name": "d", "image": "x", "envFrom": [{}]},
        ]}});
        assert!(node().command(&pod, "c").unwrap_err().contains("command"));
        assert!(node().env(&pod, "d").unwrap_err().contains("envFrom"));
        assert!(node().command(&pod, "e").is_err());
    }
}
