//! The request's `Cache-Control` directives the cache honours (RFC 9111, section 5.2.1):
//! `no-store` (neither answer from the cache nor keep the answer), `no-cache` (do not
//! answer from the cache, but keep the fresh answer) and `max-age=N` (answer only from
//! an entry at most `N` seconds old; `max-age=0` is `no-cache`). Other directives are
//! ignored; names are case-insensitive, and the header may repeat.

use std::time::Duration;

use http::HeaderMap;
use http::header::CACHE_CONTROL;

/// What a request asked of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`, or `max-age=0`.
    pub no_cache: bool,
    /// `max-age=N`: the oldest entry the client accepts.
    pub max_age: Option<Duration>,
}

/// The directives in `headers`.
pub fn directives(headers: &HeaderMap) -> Directives {
    let mut out = Directives::default();
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") {
                out.no_store = true;
            } else if name.eq_ignore_ascii_case("no-cache") {
                out.no_cache = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                // A value that is not a number is ignored, as RFC 9111 has caches do
                // with directives they cannot read; the smallest of several wins.
                if let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok()) {
                    let age = Duration::from_secs(secs);
                    out.max_age = Some(out.max_age.map_or(age, |m| m.min(age)));
                    if secs == 0 {
                        out.no_cache = true;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn parse(values: &[&str]) -> Directives {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        directives(&headers)
    }

    #[test]
    fn reads_the_directives_the_cache_honours() {
        assert_eq!(parse(&[]), Directives::default());
        assert!(parse(&["no-store"]).no_store);
        assert!(parse(&["No-Cache"]).no_cache);
        let d = parse(&["private, max-age=60", "max-age=\"30\""]);
        assert_eq!(d.max_age, Some(Duration::from_secs(30)));
        assert!(!d.no_cache && !d.no_store);
        let zero = parse(&["max-age=0"]);
        assert!(zero.no_cache);
        assert_eq!(parse(&["max-age=soon"]).max_age, None);
        let both = parse(&["no-cache, no-store"]);
        assert!(both.no_cache && both.no_store);
    }
}
