//! What the router asks before it tries a model: may this call spend on it? Budgets
//! follow the model that serves, and the router is the one that knows which model that
//! is (the one asked for, a fallback, a downgrade), so it asks the gate each time it
//! moves to a model. The router knows nothing of budgets; the meter implements the gate.

use std::future::Future;
use std::sync::Arc;

use crate::domain::ApiError;
use crate::domain::Call;
use crate::router::routes::Model;

/// Admission per model, asked before each model is tried.
pub trait Gate: Send {
    /// Takes what serving `call` with `model` needs, giving back what the model tried
    /// before held. Answers the model to try (`model`, or the one a spent budget
    /// downgrades to), or why the call may not spend on it: the router skips such a
    /// model like one without a healthy deployment.
    fn enter(
        &mut self,
        model: &Arc<Model>,
        call: &Call,
    ) -> impl Future<Output = Result<Arc<Model>, ApiError>> + Send;
}

/// A gate that lets every call through (no metering).
#[derive(Clone, Copy, Debug, Default)]
pub struct Open;

impl Gate for Open {
    fn enter(
        &mut self,
        model: &Arc<Model>,
        _call: &Call,
    ) -> impl Future<Output = Result<Arc<Model>, ApiError>> + Send {
        std::future::ready(Ok(model.clone()))
    }
}
