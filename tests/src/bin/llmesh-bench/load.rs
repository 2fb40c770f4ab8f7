//! The load generator: HTTP/1.1 keep-alive connections, one request at a time on each,
//! driven either closed-loop (each connection sends its next request as soon as the
//! last one ends: throughput at a given concurrency) or at a fixed rate (requests
//! scheduled on a clock, spread over the connections: latency at a given load).
//!
//! Latency is taken from just before a request is sent to the end of its response
//! body; time to first token from the same start to the first non-empty body frame of
//! a streamed answer.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One kind of request, ready to send again and again.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Path, e.g. `/v1/chat/completions`.
    pub path: &'static str,
    /// Extra headers (credentials, API versions).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The JSON body.
    pub body: Bytes,
    /// A byte string every good answer contains (checked on the warm-up's first
    /// answer, so a misconfigured proxy cannot pass for a fast one).
    pub expect: &'static str,
}

/// How load is offered.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `n` connections, each sending its next request as soon as the last ended.
    Closed(usize),
    /// `rate` requests per second, spread over `connections` connections.
    Fixed {
        /// Requests per second.
        rate: u32,
        /// Connections (enough that each is idle most of the time).
        connections: usize,
    },
}

/// One request's timings, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Until the end of the body.
    pub total_us: u32,
    /// Until the first non-empty body frame.
    pub first_us: u32,
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Successful requests, in the measured window.
    pub samples: Vec<Sample>,
    /// Failed requests (not 200, wrong content, connection errors), in the window.
    pub errors: u64,
    /// The first failure, to show.
    pub first_error: Option<String>,
    /// From the window's start to the last measured request's end.
    pub elapsed: Duration,
}

impl Outcome {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.samples.len() as f64 / secs
        } else {
            0.0
        }
    }
}

/// Runs `spec` under `mode`: `warmup` unmeasured, then `duration` measured.
pub async fn run(spec: &RequestSpec, mode: Mode, warmup: Duration, duration: Duration) -> Outcome {
    let connections = match mode {
        Mode::Closed(n) => n,
        Mode::Fixed { connections, .. } => connections,
    }
    .max(1);
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..connections {
        let spec = spec.clone();
        let schedule = match mode {
            Mode::Closed(_) => None,
            Mode::Fixed { rate, .. } => Some(Schedule {
                start,
                interval: Duration::from_secs_f64(1.0 / f64::from(rate.max(1))),
                first: index as u64,
                step: connections as u64,
            }),
        };
        tasks.spawn(worker(spec, schedule, measure_from, until, index == 0));
    }
    let mut outcome = Outcome::default();
    let mut last_end = measure_from;
    while let Some(done) = tasks.join_next().await {
        let Ok(part) = done else { continue };
        outcome.samples.extend(part.samples);
        outcome.errors += part.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = part.first_error;
        }
        last_end = last_end.max(part.last_end);
    }
    outcome.elapsed = last_end.saturating_duration_since(measure_from);
    outcome
}

/// Request slots of one connection under a fixed rate: `start + (first + k * step) *
/// interval` for k = 0, 1, ...
struct Schedule {
    start: Instant,
    interval: Duration,
    first: u64,
    step: u64,
}

impl Schedule {
    fn slot(&self, k: u64) -> Instant {
        let n = self.first + k * self.step;
        self.start + self.interval.mul_f64(n as f64)
    }
}

struct WorkerResult {
    samples: Vec<Sample>,
    errors: u64,
    first_error: Option<String>,
    last_end: Instant,
}

async fn worker(
    spec: RequestSpec,
    schedule: Option<Schedule>,
    measure_from: Instant,
    until: Instant,
    check_first: bool,
) -> WorkerResult {
    let mut result = WorkerResult {
        samples: Vec::with_capacity(4096),
        errors: 0,
        first_error: None,
        last_end: measure_from,
    };
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut checked = !check_first;
    let mut k = 0u64;
    loop {
        if let Some(schedule) = &schedule {
            let slot = schedule.slot(k);
            k += 1;
            if slot >= until {
                break;
            }
            tokio::time::sleep_until(slot).await;
        } else if Instant::now() >= until {
            break;
        }
        let started = Instant::now();
        let measured = started >= measure_from;
        let outcome = one(&spec, &mut sender, !checked).await;
        let ended = Instant::now();
        match outcome {
            Ok(first) => {
                checked = true;
                if measured {
                    result.samples.push(Sample {
                        total_us: micros(ended - started),
                        first_us: micros(first - started),
                    });
                    result.last_end = ended;
                }
            }
            Err(message) => {
                // A broken connection is not reused; the next request opens a new one.
                sender = None;
                if measured || !checked {
                    result.errors += 1;
                    result.last_end = result.last_end.max(ended);
                    if result.first_error.is_none() {
                        result.first_error = Some(message);
                    }
                }
                if !checked {
                    // The target is misconfigured: one error is enough to say so.
                    break;
                }
                // Do not spin on a dead target.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    result
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Sends one request; returns when the first non-empty body frame arrived.
async fn one(
    spec: &RequestSpec,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    check: bool,
) -> Result<Instant, String> {
    let send = match sender {
        Some(s) if s.is_ready() => s,
        _ => sender.insert(connect(spec.addr).await?),
    };
    let mut request = Request::post(spec.path)
        .header(HOST, "bench")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(spec.body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    for (name, value) in &spec.headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    let response = send
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut first = None;
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Ok(data) = frame.into_data()
            && !data.is_empty()
        {
            first.get_or_insert_with(Instant::now);
            if check || status != StatusCode::OK {
                kept.extend_from_slice(&data);
            }
        }
    }
    if status != StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&kept[..kept.len().min(300)])
        ));
    }
    if check && !contains(&kept, spec.expect.as_bytes()) {
        return Err(format!(
            "answer lacks {:?}: {}",
            spec.expect,
            String::from_utf8_lossy(&kept[..kept.len().min(300)])
        ));
    }
    first.ok_or_else(|| "empty body".to_owned())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; either is fine here.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The `p`-th percentile (0–100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn fixed_rate_slots_interleave_connections() {
        let start = Instant::now();
        let s = Schedule {
            start,
            interval: Duration::from_millis(1),
            first: 2,
            step: 4,
        };
        assert_eq!(s.slot(0) - start, Duration::from_millis(2));
        assert_eq!(s.slot(3) - start, Duration::from_millis(14));
    }
}
