//! What the compiler reports: the [`Kind`] of resource, the [`Severity`], the
//! machine-readable [`Reason`] (a condition `reason`) and the [`Problem`] itself, and
//! [`Report`], which collects one resource's problems while it compiles.

use std::fmt;

/// The kinds of resource a [`Problem`] can be about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `LLMModel`.
    LlmModel,
    /// `VirtualKey`.
    VirtualKey,
    /// `Budget`.
    Budget,
}

impl Kind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LlmModel => "LLMModel",
            Kind::VirtualKey => "VirtualKey",
            Kind::Budget => "Budget",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a problem did to its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The resource was left out of the snapshot.
    Error,
    /// The resource is in the snapshot, without the part named by the problem.
    Warning,
}

/// Defines [`Reason`] from one list, so a variant and its condition word cannot drift.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Machine-readable cause of a problem; used as a condition `reason`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $name,)*
        }

        impl Reason {
            /// The reason as a `CamelCase` word, as Kubernetes conditions expect.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }
        }
    };
}

reasons! {
    /// The resource has no name.
    MissingName,
    /// Another resource of the same kind has the same name.
    DuplicateName,
    /// A referenced Secret does not exist (for a VirtualKey: its key is not generated yet).
    SecretNotFound,
    /// The Secret exists but lacks the key.
    SecretKeyMissing,
    /// The Secret value is empty, not UTF-8, or holds control characters.
    InvalidSecretValue,
    /// A referenced ConfigMap does not exist.
    ConfigMapNotFound,
    /// The ConfigMap exists but lacks the key.
    ConfigMapKeyMissing,
    /// A deployment's `tls` CA text holds no usable CA certificate (or holds a key).
    InvalidCaCertificate,
    /// A hosted provider's deployment has no `apiKeySecretRef` (or, for bedrock and
    /// vertex, none of the credentials they take).
    MissingApiKey,
    /// A deployment of a regional provider (bedrock, vertex) has no `region`.
    MissingRegion,
    /// A deployment's `workloadIdentity` does not suit its provider, comes with a key
    /// Secret it replaces, or lacks what it needs (`project` for gcp-external-account).
    InvalidWorkloadIdentity,
    /// A duration does not parse or is out of range.
    InvalidDuration,
    /// A price or amount is not a non-negative decimal with at most 6 decimals.
    InvalidPrice,
    /// A budget period does not parse.
    InvalidPeriod,
    /// A model has no deployments.
    NoDeployments,
    /// Two deployments of a model share a name.
    DuplicateDeployment,
    /// A deployment's weight is zero.
    InvalidWeight,
    /// A deployment's `baseUrl` is missing (azure, openai-compatible) or not http(s).
    InvalidBaseUrl,
    /// A fallback names a model that does not exist.
    UnknownFallback,
    /// A fallback names a model that exists but did not compile.
    FallbackNotReady,
    /// A fallback names the model itself.
    SelfFallback,
    /// A model name (allow-list, selector, downgrade target) names no usable model.
    UnknownModel,
    /// A key names a budget that does not exist or did not compile.
    UnknownBudget,
    /// A budget selector names a key that does not exist.
    UnknownKey,
    /// A budget selects nothing.
    EmptySelector,
    /// A budget's action is inconsistent (downgrade without a target).
    InvalidAction,
    /// A model's `imageFetch` has a host rule, address range or limit the sidecar
    /// cannot use.
    InvalidImageFetch,
    /// A model's `cache` has no ttl, or a ttl or limit out of range.
    InvalidCache,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something wrong with one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The resource's kind.
    pub kind: Kind,
    /// The resource's name.
    pub name: String,
    /// The field at fault, e.g. `spec.deployments[1].apiKeySecretRef`.
    pub field: String,
    /// Why, for machines.
    pub reason: Reason,
    /// Whether the resource was left out or only lost the faulty part.
    pub severity: Severity,
    /// Why, for people. Never contains a secret value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?}: {}: {} ({})",
            self.kind, self.name, self.field, self.message, self.reason
        )
    }
}

/// Collects the problems of one resource and remembers whether any was fatal.
pub(super) struct Report<'p> {
    kind: Kind,
    name: String,
    problems: &'p mut Vec<Problem>,
    failed: bool,
}

impl<'p> Report<'p> {
    pub(super) fn new(kind: Kind, name: &str, problems: &'p mut Vec<Problem>) -> Self {
        Report {
            kind,
            name: name.to_owned(),
            problems,
            failed: false,
        }
    }

    fn push(&mut self, field: String, reason: Reason, severity: Severity, message: String) {
        self.problems.push(Problem {
            kind: self.kind,
            name: self.name.clone(),
            field,
            reason,
            severity,
            message,
        });
    }

    /// A fatal problem: the resource is left out.
    pub(super) fn error(&mut self, at: impl Into<String>, reason: Reason, why: impl Into<String>) {
        self.failed = true;
        self.push(at.into(), reason, Severity::Error, why.into());
    }

    /// The resource stays, without the part at fault.
    pub(super) fn warn(&mut self, at: impl Into<String>, reason: Reason, why: impl Into<String>) {
        self.push(at.into(), reason, Severity::Warning, why.into());
    }

    /// An error (the resource is not Ready) that keeps the resource in the snapshot,
    /// where the sidecar refuses its use and says why: better than the silence of a
    /// resource left out.
    pub(super) fn refuse(&mut self, at: impl Into<String>, reason: Reason, why: impl Into<String>) {
        self.push(at.into(), reason, Severity::Error, why.into());
    }

    pub(super) fn ok(&self) -> bool {
        !self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_fail_the_resource_and_warnings_and_refusals_do_not() {
        let mut problems = Vec::new();
        let mut report = Report::new(Kind::Budget, "b", &mut problems);
        report.warn("spec.a", Reason::UnknownKey, "w");
        report.refuse("spec.b", Reason::UnknownBudget, "r");
        assert!(report.ok());
        report.error("spec.c", Reason::InvalidPeriod, "e");
        assert!(!report.ok());
        let seen: Vec<_> = problems.iter().map(|p| (p.reason, p.severity)).collect();
        assert_eq!(
            seen,
            [
                (Reason::UnknownKey, Severity::Warning),
                (Reason::UnknownBudget, Severity::Error),
                (Reason::InvalidPeriod, Severity::Error),
            ]
        );
        assert_eq!(
            problems[2].to_string(),
            "Budget \"b\": spec.c: e (InvalidPeriod)"
        );
    }
}
