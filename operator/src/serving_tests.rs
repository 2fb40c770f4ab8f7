//! Tests of the serving helper: backoff on accept errors in paused time, and a shutdown
//! that waits for open connections a bounded time.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A lasting accept error is retried with growing pauses, never in a busy loop: in one
/// second, 5 + 10 + 20 + ... ms allows eight attempts. (Without pauses, time would not
/// move and the accept would be called without end; it panics first.)
#[tokio::test(start_paused = true)]
async fn accept_errors_back_off_instead_of_spinning() {
    let attempts = AtomicUsize::new(0);
    let accept = || {
        let n = attempts.fetch_add(1, Ordering::Relaxed);
        assert!(n < 100, "accept retried without pause");
        std::future::ready(Err::<((), SocketAddr), _>(std::io::Error::other("EMFILE")))
    };
    let started = tokio::time::Instant::now();
    accept_loop(
        accept,
        |(), _| {},
        tokio::time::sleep(Duration::from_secs(1)),
        "test",
    )
    .await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "ended on shutdown"
    );
    assert_eq!(attempts.load(Ordering::Relaxed), 8);
}

/// A success starts the pauses over: errors after it pause 5 ms again, not the longest.
#[tokio::test(start_paused = true)]
async fn a_successful_accept_starts_the_pauses_over() {
    let attempts = AtomicUsize::new(0);
    let accepted = AtomicUsize::new(0);
    let accept = || {
        let n = attempts.fetch_add(1, Ordering::Relaxed);
        // Six failures (5 + ... + 160 ms = 315 ms), one success, then failures again.
        let result = if n == 6 {
            Ok(((), SocketAddr::from(([127, 0, 0, 1], 1))))
        } else {
            Err(std::io::Error::other("EMFILE"))
        };
        std::future::ready(result)
    };
    accept_loop(
        accept,
        |(), _| {
            accepted.fetch_add(1, Ordering::Relaxed);
        },
        tokio::time::sleep(Duration::from_millis(327)),
        "test",
    )
    .await;
    assert_eq!(accepted.load(Ordering::Relaxed), 1);
    // After the success at 315 ms: failures at 315 and 320 ms (pauses of 5 and 10 ms);
    // the next would be at 330 ms, after the shutdown.
    assert_eq!(attempts.load(Ordering::Relaxed), 9);
}

/// What a test's server runs until.
type Stopped = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server `spawn` starts on a free port, its stop switch, and a client that sent one
/// request and read the status line of the answer.
async fn started(
    spawn: impl FnOnce(TcpListener, Stopped) -> tokio::task::JoinHandle<()>,
) -> (
    tokio::net::TcpStream,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = spawn(
        listener,
        Box::pin(async move {
            let _ = stopped.await;
        }),
    );
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    (client, stop, server)
}

/// A response that never ends is given the grace, then left: the server's future
/// completes soon after the shutdown signal, not never.
#[tokio::test]
async fn shutdown_waits_for_open_connections_a_bounded_time() {
    let make = |_peer| {
        hyper::service::service_fn(|_req| async {
            let endless = futures_util::stream::pending::<Result<Frame<Bytes>, Infallible>>();
            Ok::<_, Infallible>(Response::new(StreamBody::new(endless).boxed()))
        })
    };
    let server = Server::plain("test").with_grace(Duration::from_millis(300));
    let (_client, stop, server) =
        started(|listener, stopped| tokio::spawn(server.serve(listener, make, stopped))).await;
    let asked = std::time::Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("the server waited for the endless response without bound")
        .unwrap();
    assert!(asked.elapsed() >= Duration::from_millis(300), "no grace");
}

/// A finished request on a kept-alive connection at shutdown: the server completes at
/// once, closing the idle connection rather than waiting out the grace for it.
#[tokio::test]
async fn idle_connections_do_not_hold_the_shutdown() {
    let make = |_peer| {
        hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        })
    };
    let (mut client, stop, server) = started(|listener, stopped| {
        tokio::spawn(Server::plain("test").serve(listener, make, stopped))
    })
    .await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .expect("an idle connection held the shutdown")
        .unwrap();
    // The server closed the connection: the rest of the answer, then the end.
    let mut rest = Vec::new();
    assert!(client.read_to_end(&mut rest).await.is_ok());
}
