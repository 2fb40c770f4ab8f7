//! Who may call: the API key of AI Studio paths, the bearer token and project of Vertex
//! AI paths, each failure answered with Google's own error.

use http::HeaderMap;

use super::handle::{Api, error};
use super::oauth::Refused;
use super::{API_KEY, Gemini, PROJECT, wire};
use crate::mock::Resolved;

/// Checks the API key (AI Studio) or bearer token and project (Vertex), answering
/// with Google's errors for each failure.
pub(super) fn authenticate(
    shared: &Gemini,
    api: Api<'_>,
    model: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<(), Resolved> {
    match api {
        Api::AiStudio => {
            let key = headers
                .get("x-goog-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| {
                    query
                        .split('&')
                        .find_map(|p| p.strip_prefix("key="))
                        .map(str::to_owned)
                });
            match key {
                Some(key) if key == API_KEY => Ok(()),
                // Google answers a wrong key with 400, not 401.
                Some(_) => Err(error(
                    400,
                    "API key not valid. Please pass a valid API key.",
                    vec![wire::error_info(
                        "API_KEY_INVALID",
                        "generativelanguage.googleapis.com",
                    )],
                )),
                None => Err(error(
                    403,
                    "Method doesn't allow unregistered callers (callers without established \
                     identity). Please use API Key or other form of API consumer identity to call \
                     this API.",
                    Vec::new(),
                )),
            }
        }
        Api::Vertex { project, location } => {
            match shared.issuer.check_bearer(headers) {
                Ok(()) => {}
                Err(Refused::Missing) if headers.contains_key("x-goog-api-key") => {
                    return Err(error(
                        401,
                        "API keys are not supported by this API. Expected OAuth2 access token or \
                         other authentication credentials that assert a principal. See \
                         https://cloud.google.com/docs/authentication",
                        vec![wire::error_info(
                            "CREDENTIALS_MISSING",
                            "aiplatform.googleapis.com",
                        )],
                    ));
                }
                Err(Refused::Missing) => {
                    return Err(error(
                        401,
                        "Request is missing required authentication credential. Expected OAuth 2 \
                         access token, login cookie or other valid authentication credential. See \
                         https://developers.google.com/identity/sign-in/web/devconsole-project.",
                        vec![wire::error_info(
                            "CREDENTIALS_MISSING",
                            "aiplatform.googleapis.com",
                        )],
                    ));
                }
                Err(Refused::Invalid) => {
                    return Err(error(
                        401,
                        "Request had invalid authentication credentials. Expected OAuth 2 access \
                         token, login cookie or other valid authentication credential. See \
                         https://developers.google.com/identity/sign-in/web/devconsole-project.",
                        vec![wire::error_info(
                            "ACCESS_TOKEN_EXPIRED",
                            "aiplatform.googleapis.com",
                        )],
                    ));
                }
            }
            if project != PROJECT {
                let message = format!(
                    "Permission 'aiplatform.endpoints.predict' denied on resource \
                     '//aiplatform.googleapis.com/projects/{project}/locations/{location}/publishers/google/models/{model}' \
                     (or it may not exist)."
                );
                return Err(error(
                    403,
                    &message,
                    vec![wire::error_info(
                        "IAM_PERMISSION_DENIED",
                        "aiplatform.googleapis.com",
                    )],
                ));
            }
            Ok(())
        }
    }
}
