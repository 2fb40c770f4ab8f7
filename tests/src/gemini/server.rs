//! Server plumbing for the mock: the accept loop, and bodies that drip frames with
//! delays or cut the connection part-way.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The body type every mock response uses.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A poisoned lock only means a test thread panicked while holding it; the data
/// stays consistent, so keep serving.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A whole body in one frame.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// Accepts connections until the task is aborted, answering each request with
/// `handler`. A `true` on `shutdown` fails requests still in flight, so held
/// requests end when the mock is dropped.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, io::Error>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Small SSE events would otherwise wait on Nagle.
                    let _ = stream.set_nodelay(true);
                    let builder = builder.clone();
                    let handler = handler.clone();
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let mut shutdown = shutdown.clone();
                            let answer = handler(req);
                            async move {
                                tokio::select! {
                                    response = answer => response,
                                    _ = shutdown.wait_for(|&stopped| stopped) => {
                                        Err(io::Error::other("mock Gemini stopped"))
                                    }
                                }
                            }
                        });
                        // Clients hanging up and our own cuts are part of the job.
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                // Typically EMFILE; pausing lets connections close.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A body that sends `frames` one per poll, waiting `delay` before each, and fails
/// (cutting the connection) after `cut_after` of them when that is set.
pub(crate) fn drip(frames: Vec<Bytes>, delay: Duration, cut_after: Option<usize>) -> Body {
    struct Drip {
        frames: std::vec::IntoIter<Bytes>,
        sent: usize,
        delay: Duration,
        cut_after: Option<usize>,
        finished: bool,
    }
    let state = Drip {
        frames: frames.into_iter(),
        sent: 0,
        delay,
        cut_after,
        finished: false,
    };
    let stream = futures_util::stream::unfold(state, |mut d| async move {
        if d.finished {
            return None;
        }
        let due = d.cut_after.is_some_and(|n| d.sent >= n);
        let next = if due { None } else { d.frames.next() };
        let Some(bytes) = next else {
            d.finished = true;
            d.cut_after?;
            // One pending poll lets hyper flush what was sent before the failure
            // discards its buffer, so the client sees the frames before the cut.
            tokio::task::yield_now().await;
            let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "mock: disconnect_after");
            return Some((Err(cut), d));
        };
        if !d.delay.is_zero() {
            tokio::time::sleep(d.delay).await;
        }
        d.sent += 1;
        Some((Ok(Frame::data(bytes)), d))
    });
    StreamBody::new(stream).boxed_unsync()
}
