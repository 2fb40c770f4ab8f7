//! The upstream clients, one per distinct [`Trust`], shared across deployments and
//! config reloads.
//!
//! Most deployments trust the sidecar-wide CAs only (the web roots, `--ca-file`,
//! `--system-roots`) and share the default client. A deployment whose `tls` adds CAs
//! gets the client of the sidecar-wide trust plus its own, found by the trust's
//! [`Trust::key`]: deployments that add the same CAs share one pool, and a reload that
//! keeps a deployment's CAs keeps its client and pooled connections. Clients no
//! deployment asked for in the last applied config are dropped
//! ([`Transports::begin`]/[`Transports::sweep`]), and there are at most
//! [`MAX_CLIENTS`], so what a config holds bounds what is kept.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::tls::Trust;
use super::{HttpTransport, Transport};

/// The most clients with their own trust at once: far above what a sidecar's
/// deployments need (each private CA is usually shared by many).
pub const MAX_CLIENTS: usize = 32;

type Key = [u8; 32];

/// The default client and the clients of deployments that add CAs.
pub struct Transports {
    inner: Mutex<Inner>,
}

struct Inner {
    /// What every deployment trusts (`--ca-file`, `--system-roots`).
    base: Trust,
    /// The client of deployments that add nothing to `base`.
    default: Arc<dyn Transport>,
    /// Clients by the key of the whole trust they were built with.
    by_key: HashMap<Key, Arc<dyn Transport>>,
    /// Keys asked for since [`Transports::begin`].
    used: HashSet<Key>,
}

/// Why a deployment's client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Too many distinct trusts.
    #[error(
        "more than {MAX_CLIENTS} distinct sets of CA certificates across deployments; share CA bundles between deployments"
    )]
    TooMany,
    /// rustls refused the config.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl Transports {
    /// Real clients, every one trusting `base` besides the web roots.
    pub fn new(base: Trust) -> Result<Self, rustls::Error> {
        let default = Arc::new(HttpTransport::with_trust(&base)?);
        Ok(Self::with_default(default, base))
    }

    /// `default` for the deployments that add no CA (tests pass an in-process one);
    /// real clients trusting `base` plus their own CAs for the others.
    pub fn with_default(default: Arc<dyn Transport>, base: Trust) -> Self {
        Transports {
            inner: Mutex::new(Inner {
                base,
                default,
                by_key: HashMap::new(),
                used: HashSet::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client of deployments that add no CA.
    pub fn default_transport(&self) -> Arc<dyn Transport> {
        self.lock().default.clone()
    }

    /// The client trusting the sidecar-wide CAs and `own` (a deployment's).
    pub fn get(&self, own: &Trust) -> Result<Arc<dyn Transport>, ClientError> {
        let mut inner = self.lock();
        let trust = inner.base.with(own);
        if trust == inner.base {
            return Ok(inner.default.clone());
        }
        let key = trust.key();
        inner.used.insert(key);
        if let Some(client) = inner.by_key.get(&key) {
            return Ok(client.clone());
        }
        if inner.by_key.len() >= MAX_CLIENTS {
            inner.used.remove(&key);
            return Err(ClientError::TooMany);
        }
        let client: Arc<dyn Transport> = Arc::new(HttpTransport::with_trust(&trust)?);
        inner.by_key.insert(key, client.clone());
        Ok(client)
    }

    /// Starts a config's build: [`Transports::sweep`] then keeps what it asks for.
    pub fn begin(&self) {
        self.lock().used.clear();
    }

    /// Drops the clients the config built since [`Transports::begin`] did not ask for
    /// (call once it is applied: a refused config changes nothing).
    pub fn sweep(&self) {
        let mut inner = self.lock();
        let Inner { by_key, used, .. } = &mut *inner;
        by_key.retain(|key, _| used.contains(key));
    }

    /// How many clients with their own trust are kept.
    pub fn own_clients(&self) -> usize {
        self.lock().by_key.len()
    }

    /// What every deployment trusts now.
    pub fn base(&self) -> Trust {
        self.lock().base.clone()
    }

    /// Trusts `base` from now on: a new default client and no other (the next build
    /// makes them again with the new base). Connections already pooled close with the
    /// routes that hold their old clients.
    pub fn set_base(&self, base: Trust) -> Result<(), rustls::Error> {
        let default = Arc::new(HttpTransport::with_trust(&base)?);
        let mut inner = self.lock();
        inner.base = base;
        inner.default = default;
        inner.by_key.clear();
        inner.used.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::demo::DemoTransport;
    use crate::upstream::tls::parse_pem;

    fn ca(name: &str) -> Trust {
        let pem = crate::upstream::tls::test_ca_pem(name);
        Trust {
            extra: parse_pem(pem.as_bytes()).unwrap(),
            system_roots: false,
        }
    }

    #[test]
    fn equal_trust_shares_a_client_and_unused_ones_go_after_a_build() {
        let transports = Transports::with_default(Arc::new(DemoTransport), Trust::default());
        let default = transports.default_transport();
        let (a, b) = (ca("a"), ca("b"));
        transports.begin();
        assert!(Arc::ptr_eq(
            &transports.get(&Trust::default()).unwrap(),
            &default
        ));
        let first = transports.get(&a).unwrap();
        assert!(!Arc::ptr_eq(&first, &default));
        assert!(Arc::ptr_eq(&first, &transports.get(&a.with(&a)).unwrap()));
        let ab = transports.get(&a.with(&b)).unwrap();
        assert!(Arc::ptr_eq(&ab, &transports.get(&b.with(&a)).unwrap()));
        transports.sweep();
        assert_eq!(transports.own_clients(), 2);

        // The next config keeps `a` only: its client (and pool) survives, `a+b` goes.
        transports.begin();
        assert!(Arc::ptr_eq(&first, &transports.get(&a).unwrap()));
        transports.sweep();
        assert_eq!(transports.own_clients(), 1);
    }

    #[test]
    fn the_base_is_in_every_client_and_a_new_base_starts_over() {
        let a = ca("a");
        let transports = Transports::with_default(Arc::new(DemoTransport), a.clone());
        // A deployment adding what the sidecar already trusts uses the default client.
        assert!(Arc::ptr_eq(
            &transports.get(&a).unwrap(),
            &transports.default_transport()
        ));
        let system = Trust {
            extra: vec![],
            system_roots: true,
        };
        transports.get(&system).unwrap();
        assert_eq!(transports.own_clients(), 1);
        transports.set_base(ca("b")).unwrap();
        assert_eq!(transports.own_clients(), 0);
        assert_eq!(transports.base().extra.len(), 1);
    }

    #[test]
    fn distinct_trusts_are_bounded() {
        let transports = Transports::with_default(Arc::new(DemoTransport), Trust::default());
        transports.begin();
        for i in 0..MAX_CLIENTS {
            transports.get(&ca(&format!("ca {i}"))).unwrap();
        }
        let err = transports.get(&ca("one more")).err().unwrap();
        assert!(matches!(err, ClientError::TooMany), "{err}");
        // A trust already held is still served.
        assert_eq!(transports.own_clients(), MAX_CLIENTS);
    }
}
