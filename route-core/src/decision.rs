//! The decision record: what the gateway decided about one request and why, filled in by the
//! layers as the request passes them, read once the answer is known (the access log, the
//! explain API).
//!
//! The outermost layer puts a [`DecisionRecord`] into the request's extensions; each layer that
//! learns something writes it there: the router the route (or, beside its rejection, why there
//! is none), the session layer the credential, the resolver that answered and the identity, the
//! role check why it refused, the proxy the upstream. A layer that finds no record (an embedder
//! who does not want one) skips the writing: nothing else changes.
//!
//! Every rejection response of the workspace also carries its code ([`Refused`]), so a reader
//! gets the reason of a refusal even from a layer that does not write the record. Nothing here
//! ever holds a token, a cookie or a secret.
//!
//! A record marked [`dry run`](DecisionRecord::dry_run) asks every layer for its decision
//! without side effects: the proxy answers instead of forwarding, resolvers do not slide
//! expiries or count metrics.
//!
//! ```
//! use route_core::decision::DecisionRecord;
//!
//! let mut req = http::Request::new(());
//! let record = DecisionRecord::new();
//! req.extensions_mut().insert(record.clone());
//! // ... the layers run and write into it ...
//! if let Some(r) = req.extensions().get::<DecisionRecord>() {
//!     r.update(|d| d.service = Some("data".into()));
//! }
//! assert_eq!(record.snapshot().service.as_deref(), Some("data"));
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use parking_lot::Mutex;

/// The reason code of an allowed request.
pub const ALLOWED: &str = "allowed";

/// A shared handle on one request's [`Decision`]. Cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct DecisionRecord {
    inner: Arc<Mutex<Decision>>,
    dry_run: bool,
}

impl std::fmt::Debug for DecisionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionRecord")
            .field("decision", &*self.inner.lock())
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

impl DecisionRecord {
    /// An empty record for a request that is really served.
    pub fn new() -> DecisionRecord {
        DecisionRecord::default()
    }

    /// An empty record for a request that is only explained: no layer may have side effects.
    pub fn dry_run() -> DecisionRecord {
        DecisionRecord {
            dry_run: true,
            ..DecisionRecord::default()
        }
    }

    /// True for an explained request (see the module docs).
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// Changes the decision. Layers call this at most a few times per request; the lock is
    /// never held across anything but the closure.
    pub fn update(&self, f: impl FnOnce(&mut Decision)) {
        f(&mut self.inner.lock());
    }

    /// Reads the decision without copying it.
    pub fn read<T>(&self, f: impl FnOnce(&Decision) -> T) -> T {
        f(&self.inner.lock())
    }

    /// A copy of the decision as it stands.
    pub fn snapshot(&self) -> Decision {
        self.inner.lock().clone()
    }
}

/// How the request presented its identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CredentialKind {
    /// No credential (or none the gateway reads).
    #[default]
    None,
    /// `Authorization: Bearer`.
    Bearer,
    /// The session cookie (or an identity provider's cookie).
    Cookie,
}

impl CredentialKind {
    /// `none`, `bearer` or `cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::None => "none",
            CredentialKind::Bearer => "bearer",
            CredentialKind::Cookie => "cookie",
        }
    }
}

/// What the layers found out about one request. Every field is optional: a request refused
/// early has only the first few.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    /// The service (route) the request was routed to.
    pub service: Option<Arc<str>>,
    /// The upstream the proxy chose (`scheme://host:port`).
    pub upstream: Option<Arc<str>>,
    /// How the request presented its identity.
    pub credential: CredentialKind,
    /// Which resolver answered: `sessions`, `jwt`, `webhook`, or `anonymous` for a request
    /// admitted without an identity.
    pub resolver: Option<&'static str>,
    /// The user id.
    pub user_id: Option<Arc<str>>,
    /// The role the request asked for (`X-Hasura-Role`), when it asked for one the gateway
    /// could read.
    pub requested_role: Option<Arc<str>>,
    /// The role selected for the request.
    pub role: Option<Arc<str>>,
    /// Every role of the identity.
    pub allowed_roles: Option<Arc<[Arc<str>]>>,
    /// The roles the service allows, when the role check refused the request (it writes
    /// nothing for an allowed one, to cost allowed requests nothing).
    pub service_roles: Option<Arc<[Box<str>]>>,
    /// The reason code of a refusal decided by a layer whose answer is not a rejection
    /// response (a browser redirected to the login page, say).
    pub refusal: Option<&'static str>,
    /// More about the refusal, for people: the roles a service allows, why a host has no
    /// route. Never a credential.
    pub detail: Option<Cow<'static, str>>,
    /// The request's trace context, written by
    /// [`TracePropagation`](crate::trace::TracePropagation) (which then leaves it off the
    /// response's extensions).
    pub trace: Option<crate::trace::TraceContext>,
}

/// A response extension on every rejection: its code and message. Set by
/// [`Rejection::response`](crate::Rejection::response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The rejection's code (`invalid-token`, `unknown-host`, ...).
    pub code: &'static str,
    /// The rejection's message, in words.
    pub message: &'static str,
}

/// A response extension on the answer of a dry-run request that would have been proxied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WouldProxy;

/// The reason code of a request: the refusal a layer recorded, the rejection's code, or
/// [`ALLOWED`].
pub fn reason(decision: &Decision, refused: Option<&Refused>) -> &'static str {
    decision
        .refusal
        .or(refused.map(|r| r.code))
        .unwrap_or(ALLOWED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_layers_then_the_rejections_then_allowed() {
        let mut d = Decision::default();
        assert_eq!(reason(&d, None), ALLOWED);
        let r = Refused {
            code: "invalid-token",
            message: "m",
        };
        assert_eq!(reason(&d, Some(&r)), "invalid-token");
        d.refusal = Some("authorization-required");
        assert_eq!(reason(&d, Some(&r)), "authorization-required");
    }

    #[test]
    fn clones_share_the_decision_and_dry_run_is_kept() {
        let a = DecisionRecord::dry_run();
        let b = a.clone();
        b.update(|d| d.credential = CredentialKind::Bearer);
        assert_eq!(a.snapshot().credential, CredentialKind::Bearer);
        assert!(b.is_dry_run());
        assert!(!DecisionRecord::new().is_dry_run());
        assert_eq!(CredentialKind::Cookie.as_str(), "cookie");
    }
}
