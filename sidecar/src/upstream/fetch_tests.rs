//! Tests of [`super`]: redirects (each target checked again), size and type limits
//! through a scripted dialer; the guarded resolver with injected answers; and the real
//! dialer against a local HTTP server, reached only when its address is allowed.

use std::collections::HashMap;
use std::sync::Mutex;

use http_body_util::Full;
use llmesh_tests::mock::{MockHttp, Reply};

use super::*;
use crate::upstream::guard::Cidr;

pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
pub(crate) const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

/// One scripted answer: status, headers, body frames.
#[derive(Clone)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub frames: Vec<Bytes>,
}

impl Answer {
    pub fn image(content_type: &'static str, body: &[u8]) -> Answer {
        Answer {
            status: 200,
            headers: vec![("content-type", content_type.to_owned())],
            frames: vec![Bytes::copy_from_slice(body)],
        }
    }

    pub fn redirect(to: &str) -> Answer {
        Answer {
            status: 302,
            headers: vec![("location", to.to_owned())],
            frames: vec![],
        }
    }
}

/// What the scripted dialer does for one URL.
#[derive(Clone)]
pub(crate) enum Step {
    Answer(Answer),
    /// Answers after this long (in tokio time).
    Slow(Duration, Answer),
    /// The resolver refused the host.
    Refused,
    /// Never answers.
    Hang,
}

/// A dialer answering from a script by URL, recording what it was asked.
#[derive(Default)]
pub(crate) struct Scripted {
    pub steps: HashMap<String, Step>,
    pub asked: Mutex<Vec<String>>,
}

impl Scripted {
    pub fn with(steps: &[(&str, Step)]) -> Scripted {
        Scripted {
            steps: steps
                .iter()
                .map(|(url, step)| ((*url).to_owned(), step.clone()))
                .collect(),
            asked: Mutex::default(),
        }
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

fn respond(answer: Answer) -> http::Response<UpstreamBody> {
    let mut builder = http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        builder = builder.header(*name, value);
    }
    let body: Bytes = answer.frames.concat().into();
    builder
        .body(Full::new(body).map_err(|e| match e {}).boxed())
        .unwrap()
}

impl Dialer for Scripted {
    fn get(&self, uri: http::Uri, _addresses: Arc<AddressPolicy>) -> DialFuture {
        let url = uri.to_string();
        self.asked.lock().unwrap().push(url.clone());
        let step = self.steps.get(&url).cloned();
        Box::pin(async move {
            match step {
                Some(Step::Answer(answer)) => Ok(respond(answer)),
                Some(Step::Slow(wait, answer)) => {
                    tokio::time::sleep(wait).await;
                    Ok(respond(answer))
                }
                Some(Step::Refused) => Err(DialError::Refused),
                Some(Step::Hang) => std::future::pending().await,
                None => Err(DialError::Failed(format!("no route to {url}"))),
            }
        })
    }
}

fn policy(max_bytes: u64) -> FetchPolicy {
    FetchPolicy {
        hosts: Vec::new(),
        addresses: Arc::default(),
        max_bytes,
    }
}

async fn fetch(script: Scripted, url: &str) -> (Result<Fetched, FetchError>, Vec<String>) {
    let script = Arc::new(script);
    let fetcher = ImageFetcher::new(script.clone());
    let result = fetcher.fetch(url, &policy(1024)).await;
    (result, script.asked())
}

const A: &str = "https://images.example.com/a.png";

#[tokio::test]
async fn fetches_an_image_after_redirects_up_to_the_limit() {
    let (result, asked) = fetch(
        Scripted::with(&[
            (A, Step::Answer(Answer::redirect("/b.png"))),
            (
                "https://images.example.com/b.png",
                Step::Answer(Answer::redirect("https://cdn.example.com/c.png")),
            ),
            (
                "https://cdn.example.com/c.png",
                Step::Answer(Answer::redirect("//cdn.example.com/d.png")),
            ),
            (
                "https://cdn.example.com/d.png",
                Step::Answer(Answer::image("image/PNG; charset=binary", PNG)),
            ),
        ]),
        A,
    )
    .await;
    assert_eq!(
        result,
        Ok(Fetched {
            media_type: "image/png",
            bytes: Bytes::from_static(PNG)
        })
    );
    assert_eq!(asked.len(), 4);

    let mut steps: Vec<(String, Step)> = (0..=MAX_REDIRECTS)
        .map(|i| {
            (
                format!("https://images.example.com/{i}.png"),
                Step::Answer(Answer::redirect(&format!("/{}.png", i + 1))),
            )
        })
        .collect();
    steps.push((
        format!("https://images.example.com/{}.png", MAX_REDIRECTS + 1),
        Step::Answer(Answer::image("image/png", PNG)),
    ));
    let steps: Vec<(&str, Step)> = steps.iter().map(|(u, s)| (u.as_str(), s.clone())).collect();
    let (result, asked) = fetch(Scripted::with(&steps), "https://images.example.com/0.png").await;
    assert_eq!(result, Err(FetchError::Redirects));
    assert_eq!(asked.len(), MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn a_redirect_to_a_refused_target_is_refused_before_it_is_dialled() {
    for (target, refusal) in [
        ("http://127.0.0.1/x.png", Refusal::Address),
        ("http://169.254.169.254/latest/meta-data/", Refusal::Address),
        ("http://[::ffff:7f00:1]/", Refusal::Address),
        ("http://2130706433/", Refusal::Address),
        ("http://localhost/x.png", Refusal::Host),
        ("http://metadata.google.internal/", Refusal::Host),
        ("http://images.example.com:8080/x.png", Refusal::Port),
        ("file:///etc/passwd", Refusal::Scheme),
        ("http://u:p@images.example.com/", Refusal::Userinfo),
    ] {
        let (result, asked) = fetch(
            Scripted::with(&[(A, Step::Answer(Answer::redirect(target)))]),
            A,
        )
        .await;
        assert_eq!(
            result,
            Err(FetchError::Refused {
                refusal,
                redirected: true
            }),
            "{target}"
        );
        assert_eq!(asked, [A], "{target} was never dialled");
    }
    // A redirect to a name whose addresses the resolver refuses.
    let (result, _) = fetch(
        Scripted::with(&[
            (
                A,
                Step::Answer(Answer::redirect("https://rebind.example.com/")),
            ),
            ("https://rebind.example.com/", Step::Refused),
        ]),
        A,
    )
    .await;
    assert_eq!(
        result,
        Err(FetchError::Refused {
            refusal: Refusal::Address,
            redirected: true
        })
    );
}

#[tokio::test]
async fn statuses_refusals_and_failures() {
    let not_found = Answer {
        status: 404,
        ..Answer::image("text/html", b"<html>")
    };
    let (result, _) = fetch(Scripted::with(&[(A, Step::Answer(not_found))]), A).await;
    assert_eq!(result, Err(FetchError::Status(404)));
    let no_location = Answer {
        status: 301,
        headers: vec![],
        frames: vec![],
    };
    let (result, _) = fetch(Scripted::with(&[(A, Step::Answer(no_location))]), A).await;
    assert_eq!(result, Err(FetchError::Status(301)));
    let (result, _) = fetch(Scripted::with(&[(A, Step::Refused)]), A).await;
    assert_eq!(
        result,
        Err(FetchError::Refused {
            refusal: Refusal::Address,
            redirected: false
        })
    );
    let (result, _) = fetch(Scripted::default(), A).await;
    assert_eq!(result, Err(FetchError::Failed));
    let (result, asked) = fetch(Scripted::default(), "http://10.0.0.1/a.png").await;
    assert_eq!(
        result,
        Err(FetchError::Refused {
            refusal: Refusal::Address,
            redirected: false
        })
    );
    assert!(asked.is_empty());
}

#[tokio::test]
async fn types_must_be_declared_and_match_the_bytes() {
    for (content_type, body, expected) in [
        ("image/png", PNG, Ok("image/png")),
        ("image/jpeg", JPEG, Ok("image/jpeg")),
        ("image/jpg", JPEG, Ok("image/jpeg")),
        (
            "image/gif",
            b"GIF89a\x01\0\x01\0".as_slice(),
            Ok("image/gif"),
        ),
        (
            "image/webp",
            b"RIFF\x24\0\0\0WEBPVP8 ".as_slice(),
            Ok("image/webp"),
        ),
        ("image/png", JPEG, Err(FetchError::Type)),
        (
            "image/jpeg",
            b"<svg onload=alert(1)>".as_slice(),
            Err(FetchError::Type),
        ),
        ("image/svg+xml", b"<svg/>".as_slice(), Err(FetchError::Type)),
        ("text/html", PNG, Err(FetchError::Type)),
        ("application/octet-stream", PNG, Err(FetchError::Type)),
        ("image/png", b"".as_slice(), Err(FetchError::Type)),
    ] {
        let (result, _) = fetch(
            Scripted::with(&[(A, Step::Answer(Answer::image(content_type, body)))]),
            A,
        )
        .await;
        assert_eq!(
            result.map(|f| f.media_type),
            expected,
            "{content_type} {body:?}"
        );
    }
    let untyped = Answer {
        headers: vec![],
        ..Answer::image("image/png", PNG)
    };
    let (result, _) = fetch(Scripted::with(&[(A, Step::Answer(untyped))]), A).await;
    assert_eq!(result, Err(FetchError::Type));
}

#[tokio::test]
async fn sizes_are_bounded_by_the_declared_length_and_while_reading() {
    let big = vec![0u8; 2000];
    let mut declared = Answer::image("image/png", PNG);
    declared
        .headers
        .push(("content-length", "5000000000".into()));
    // The declared length is refused before the body is read (it is not that long).
    let (result, _) = fetch(Scripted::with(&[(A, Step::Answer(declared))]), A).await;
    assert_eq!(result, Err(FetchError::TooLarge));
    let mut undeclared = Answer::image("image/png", PNG);
    undeclared.frames.push(Bytes::from(big));
    let (result, _) = fetch(Scripted::with(&[(A, Step::Answer(undeclared))]), A).await;
    assert_eq!(result, Err(FetchError::TooLarge));
    let mut exact = Answer::image("image/png", PNG);
    exact.frames.push(Bytes::from(vec![0u8; 1024 - PNG.len()]));
    let (result, _) = fetch(Scripted::with(&[(A, Step::Answer(exact))]), A).await;
    assert_eq!(result.map(|f| f.bytes.len()), Ok(1024));
}

#[test]
fn sniffs_each_signature() {
    assert_eq!(sniff(PNG), Some("image/png"));
    assert_eq!(sniff(JPEG), Some("image/jpeg"));
    assert_eq!(sniff(b"GIF87a.."), Some("image/gif"));
    assert_eq!(sniff(b"RIFF\0\0\0\0WEBP"), Some("image/webp"));
    assert_eq!(sniff(b"RIFF\0\0\0\0WAVE"), None);
    assert_eq!(sniff(b"RIFF"), None);
    assert_eq!(sniff(b"\x89PN"), None);
}

/// Names answered from a table, as a DNS server would (rebinding, split horizons...).
struct Table(HashMap<&'static str, Vec<IpAddr>>);

impl Lookup for Table {
    fn lookup(&self, name: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        let answer = self
            .0
            .get(name)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"));
        Box::pin(std::future::ready(answer))
    }
}

fn table(entries: &[(&'static str, &[&str])]) -> Arc<Table> {
    Arc::new(Table(
        entries
            .iter()
            .map(|(name, ips)| (*name, ips.iter().map(|ip| ip.parse().unwrap()).collect()))
            .collect(),
    ))
}

#[tokio::test]
async fn the_resolver_refuses_a_name_with_any_non_public_address() {
    let lookup = table(&[
        ("public.example", &["93.184.216.34", "2606:2800:220:1::1"]),
        ("loopback.example", &["127.0.0.1"]),
        ("mixed.example", &["93.184.216.34", "10.0.0.1"]),
        ("mapped.example", &["::ffff:127.0.0.1"]),
        ("nat64.example", &["64:ff9b::7f00:1"]),
        ("metadata.example", &["169.254.169.254"]),
        ("ula.example", &["fd00::1"]),
        ("empty.example", &[]),
    ]);
    let resolver = GuardedResolver::new(lookup.clone(), Arc::default());
    let addrs = resolver.resolve("public.example").await.unwrap();
    assert_eq!(addrs.len(), 2);
    assert!(!resolver.refused());
    for hostile in [
        "loopback.example",
        "mixed.example",
        "mapped.example",
        "nat64.example",
        "metadata.example",
        "ula.example",
    ] {
        let resolver = GuardedResolver::new(lookup.clone(), Arc::default());
        let err = resolver.resolve(hostile).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{hostile}");
        assert!(resolver.refused(), "{hostile}");
    }
    for missing in ["empty.example", "unknown.example"] {
        let resolver = GuardedResolver::new(lookup.clone(), Arc::default());
        assert!(resolver.resolve(missing).await.is_err());
        assert!(!resolver.refused(), "{missing} is a failure, not a refusal");
    }
    let internal = Arc::new(AddressPolicy::new(vec![
        "10.0.0.0/8".parse::<Cidr>().unwrap(),
    ]));
    let resolver = GuardedResolver::new(lookup, internal);
    assert_eq!(resolver.resolve("mixed.example").await.unwrap().len(), 2);
}

/// The real dialer, resolving `images.test` to the mock's loopback address: refused by
/// default, reached with the right `Host` once loopback is allowed.
#[tokio::test]
async fn the_real_dialer_connects_only_to_checked_addresses() {
    let server = MockHttp::start().await;
    server.set_default(Reply::raw(200, "image/png", vec![Bytes::from_static(PNG)]));
    let port = server.addr().port();
    let lookup = table(&[("images.test", &["127.0.0.1"])]);
    let fetcher = ImageFetcher::new(Arc::new(GuardedDialer::new(lookup)));
    let url = format!("http://images.test:{port}/cat.png");
    let mut policy = FetchPolicy {
        hosts: vec![format!("images.test:{port}").parse().unwrap()],
        addresses: Arc::default(),
        max_bytes: 1024,
    };
    assert_eq!(
        fetcher.fetch(&url, &policy).await,
        Err(FetchError::Refused {
            refusal: Refusal::Address,
            redirected: false
        })
    );
    assert_eq!(
        server.request_count(),
        0,
        "the refused address was never dialled"
    );
    policy.addresses = Arc::new(AddressPolicy::new(vec!["127.0.0.1".parse().unwrap()]));
    let fetched = fetcher.fetch(&url, &policy).await.unwrap();
    assert_eq!(fetched.bytes, PNG);
    let request = &server.requests()[0];
    assert_eq!(request.path, "/cat.png");
    assert_eq!(
        request.header("host"),
        Some(format!("images.test:{port}").as_str())
    );
    assert_eq!(request.header("accept"), Some(ACCEPTED));
    assert!(request.header("authorization").is_none());
}
