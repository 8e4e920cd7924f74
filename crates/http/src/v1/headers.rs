//! The headers `serve` sends the runtime agent. The `x-openagents-*` names
//! are the seed's; the gateway's own clients never use them, so they cannot
//! collide with what a client sends through the ingress.

use axum::http::HeaderName;

/// The instance's service token, on every `/v1` call and every ingress
/// request (`/gateway/...`). On `/v1`, `Authorization: Bearer` is accepted
/// too; on the ingress `Authorization` belongs to the gateway's clients.
pub const SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-openagents-service-token");

/// On an ingress request: `serve` has checked the instance owner's console
/// session and asks the runtime to send the request to its gateway as the
/// owner (a direct local client signed in with the gateway token, which
/// never leaves the runtime). Honoured only with a valid service token and
/// the value [`GATEWAY_OWNER_YES`]; the runtime strips it before the gateway.
pub const GATEWAY_OWNER: HeaderName = HeaderName::from_static("x-openagents-gateway-owner");

/// The one value of [`GATEWAY_OWNER`] the runtime honours.
pub const GATEWAY_OWNER_YES: &str = "1";

/// On an ingress request: the client's address as `serve` decided it (one
/// address; the runtime refuses a non-owner request without one).
pub const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// On an ingress request: `http` or `https`, as the client reached `serve`.
pub const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
