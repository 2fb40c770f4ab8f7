//! The operator's error type: each variant wraps its cause and names a metric label.

/// Errors of reconciles and the config push.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// An object lacks metadata the operator needs (name, namespace, uid).
    #[error("object has no {0}")]
    MissingMetadata(&'static str),
    /// Serializing a patch failed.
    #[error("serialize: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A budget's period cannot be computed.
    #[error("budget period: {0}")]
    Period(#[source] crate::period::PeriodError),
    /// TLS material could not be made or loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// A write kept conflicting with others.
    #[error("kept conflicting: {0}")]
    Conflict(String),
}

impl Error {
    /// A short label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MissingMetadata(_) => "missing_metadata",
            Error::Serialize(_) => "serialize",
            Error::Period(_) => "period",
            Error::Tls(_) => "tls",
            Error::Conflict(_) => "conflict",
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

/// The operator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
