//! Bedrock's error responses: each exception's HTTP status, a message in AWS's words,
//! and the `x-amzn-ErrorType` header that names it (`Name:namespace/`), which clients
//! read before the body.

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use crate::mock::to_bytes;

/// The namespace Bedrock's own exceptions carry in `x-amzn-ErrorType`.
const BEDROCK_NS: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
/// The namespace of the front door's authentication and protocol errors.
const CORAL_NS: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";

/// An exception Bedrock's runtime API answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The shape name, e.g. `ThrottlingException`.
    pub name: &'static str,
    /// Its HTTP status.
    pub status: u16,
    /// What AWS says by default.
    pub message: &'static str,
    /// Whether the front door (not Bedrock) raises it; decides the namespace.
    coral: bool,
}

/// Every exception the mock knows, with the status AWS documents for it.
pub const EXCEPTIONS: &[Exception] = &[
    Exception {
        name: "ValidationException",
        status: 400,
        message: "The input fails to satisfy the constraints specified by Amazon Bedrock.",
        coral: false,
    },
    Exception {
        name: "ServiceQuotaExceededException",
        status: 400,
        message: "Your request exceeds the service quota for your account.",
        coral: false,
    },
    Exception {
        name: "SerializationException",
        status: 400,
        message: "Start of structure or map found where not expected.",
        coral: true,
    },
    Exception {
        name: "AccessDeniedException",
        status: 403,
        message: "You don't have access to the model with the specified model ID.",
        coral: false,
    },
    Exception {
        name: "UnrecognizedClientException",
        status: 403,
        message: "The security token included in the request is invalid.",
        coral: true,
    },
    Exception {
        name: "ExpiredTokenException",
        status: 403,
        message: "The security token included in the request is expired",
        coral: true,
    },
    Exception {
        name: "InvalidSignatureException",
        status: 403,
        message: "The request signature we calculated does not match the signature you \
                  provided. Check your AWS Secret Access Key and signing method. Consult the \
                  service documentation for details.",
        coral: true,
    },
    Exception {
        name: "IncompleteSignatureException",
        status: 403,
        message: "Authorization header requires 'Credential' parameter.",
        coral: true,
    },
    Exception {
        name: "MissingAuthenticationTokenException",
        status: 403,
        message: "Missing Authentication Token",
        coral: true,
    },
    Exception {
        name: "ResourceNotFoundException",
        status: 404,
        message: "Could not resolve the foundation model from the provided model identifier.",
        coral: false,
    },
    Exception {
        name: "UnknownOperationException",
        status: 404,
        message: "Unknown operation.",
        coral: true,
    },
    Exception {
        name: "ModelTimeoutException",
        status: 408,
        message: "Model has timed out in processing the request. Try your request again.",
        coral: false,
    },
    Exception {
        name: "ModelErrorException",
        status: 424,
        message: "The model encountered an error while processing the request.",
        coral: false,
    },
    Exception {
        name: "ThrottlingException",
        status: 429,
        message: "Too many requests, please wait before trying again.",
        coral: false,
    },
    Exception {
        name: "ModelNotReadyException",
        status: 429,
        message: "Model is not ready for inference. Wait and try your request again. Refer to \
                  the Bedrock User Guide for more information.",
        coral: false,
    },
    Exception {
        name: "InternalServerException",
        status: 500,
        message: "The server encountered an internal error while processing the request.",
        coral: false,
    },
    Exception {
        name: "ServiceUnavailableException",
        status: 503,
        message: "Bedrock is unable to process your request.",
        coral: false,
    },
];

/// The exception called `name`; `None` for names the mock does not know.
pub fn exception(name: &str) -> Option<Exception> {
    EXCEPTIONS.iter().copied().find(|e| e.name == name)
}

impl Exception {
    /// The HTTP status.
    pub fn status_code(self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The `x-amzn-ErrorType` header value.
    pub fn error_type(self) -> String {
        let ns = if self.coral { CORAL_NS } else { BEDROCK_NS };
        format!("{}:{ns}", self.name)
    }

    /// The JSON body: `{"message": ...}`, plus `originalStatusCode` and `resourceName`
    /// for `ModelErrorException`, as AWS documents.
    pub fn body(self, message: &str, model: &str) -> Bytes {
        if self.name == "ModelErrorException" {
            return to_bytes(&json!({
                "message": message,
                "originalStatusCode": 500,
                "resourceName": model,
            }));
        }
        to_bytes(&json!({ "message": message }))
    }

    /// The member name ConverseStream uses for this exception mid-stream
    /// (`throttlingException`), which is what `:exception-type` carries.
    pub fn stream_member(self) -> String {
        let mut chars = self.name.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_ascii_lowercase().to_string() + chars.as_str()
        })
    }
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let throttle = exception("ThrottlingException").unwrap();
        assert_eq!(throttle.status, 429);
        assert_eq!(
            throttle.error_type(),
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        );
        assert_eq!(throttle.stream_member(), "throttlingException");
        assert_eq!(exception("ModelTimeoutException").unwrap().status, 408);
        assert_eq!(exception("ModelNotReadyException").unwrap().status, 429);
        assert!(
            exception("InvalidSignatureException")
                .unwrap()
                .error_type()
                .contains("com.amazon.coral.service")
        );
        assert!(exception("NoSuchException").is_none());
        let body: serde_json::Value =
            serde_json::from_slice(&exception("ModelErrorException").unwrap().body("x", "m"))
                .unwrap();
        assert_eq!(body["originalStatusCode"], 500);
    }
}
