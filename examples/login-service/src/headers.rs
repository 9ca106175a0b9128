//! The response headers through which this service tells the gateway to start or
//! end a session.
//!
//! The gateway strips all of them before the response reaches the client.
//! Names are lowercase, as they appear on the wire in HTTP/2.

/// The id of the user who just logged in, e.g. `1`. Its presence on a response
/// is what asks the gateway to mint a session.
pub const SESSION_USER_ID: &str = "x-gateway-session-user-id";

/// The user's roles, comma-separated without spaces, e.g. `user,admin`.
pub const SESSION_ROLES: &str = "x-gateway-session-roles";

/// The role the session uses when the request does not ask for one, e.g. `user`.
/// Sent only when the user has a default role.
pub const SESSION_DEFAULT_ROLE: &str = "x-gateway-session-default-role";

/// The session lifetime in whole seconds, e.g. `3600`. Sent only when configured.
pub const SESSION_TTL: &str = "x-gateway-session-ttl";

/// `true` on a logout response: the gateway revokes the current session and
/// clears the cookie.
pub const SESSION_END: &str = "x-gateway-session-end";
