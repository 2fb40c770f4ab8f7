//! The `llmesh-mock` binary as its users see it: one `listening on` line on
//! stdout, then OpenAI answers scripted by model name.

// Test code may panic on broken expectations; that is how it reports them.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmesh-mock"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn llmesh-mock");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read line");
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (server, addr)
}

/// A hand-written HTTP/1.1 request, so the test sees the raw response.
fn post(addr: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}

#[test]
fn serves_model_scripted_replies_with_fixed_latency() {
    let (_server, addr) = start(&["--listen", "127.0.0.1:0", "--latency-ms", "50"]);

    let started = Instant::now();
    let ok = post(
        &addr,
        "/v1/chat/completions",
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains(r#""content":"mock reply to: hi""#), "{ok}");

    let limited = post(
        &addr,
        "/v1/chat/completions",
        r#"{"model":"mock-error-429","messages":[]}"#,
    );
    assert!(
        limited.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{limited}"
    );
    assert!(limited.contains("\r\nretry-after: 1\r\n"), "{limited}");
    assert!(
        limited.contains(r#""code":"rate_limit_exceeded""#),
        "{limited}"
    );

    let streamed = post(
        &addr,
        "/v1/chat/completions",
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert!(
        streamed.contains("content-type: text/event-stream"),
        "{streamed}"
    );
    assert!(streamed.contains("data: [DONE]\n\n"), "{streamed}");
}

#[test]
fn rejects_bad_arguments() {
    let status = Command::new(env!("CARGO_BIN_EXE_llmesh-mock"))
        .arg("--latency-ms")
        .arg("soon")
        .stderr(Stdio::null())
        .status()
        .expect("run llmesh-mock");
    assert_eq!(status.code(), Some(2));
}
