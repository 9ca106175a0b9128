//! Revocation events within one process: what a store revokes (the [`MemoryStore`](super::MemoryStore),
//! the Redis store) and, with Redis, what other replicas publish on `<prefix>:revocations`.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::token::TokenHash;

/// Something that ended sessions, or may have.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// One session (by the SHA-256 of its token) was revoked.
    Session(TokenHash),
    /// Every session of this user was revoked.
    User(Arc<str>),
    /// The revocation channel came back after a gap (or carried a message this build does not
    /// understand): any session may have been revoked meanwhile. Listeners should drop or
    /// re-check everything they hold.
    Resync,
}

impl Revocation {
    /// Parses a message of the revocation channel: 64 hex characters (a session) or
    /// `user:<user_id>`. Anything else is [`Revocation::Resync`], the safe reading.
    pub fn parse(payload: &[u8]) -> Revocation {
        if let Some(user) = payload.strip_prefix(b"user:") {
            if let Ok(user) = std::str::from_utf8(user) {
                if !user.is_empty() {
                    return Revocation::User(Arc::from(user));
                }
            }
            return Revocation::Resync;
        }
        std::str::from_utf8(payload)
            .ok()
            .filter(|s| s.len() == 64)
            .and_then(TokenHash::from_hex)
            .map_or(Revocation::Resync, Revocation::Session)
    }

    /// The message published for this revocation (`None` for [`Revocation::Resync`]).
    pub fn payload(&self) -> Option<String> {
        match self {
            Revocation::Session(id) => Some(id.to_hex()),
            Revocation::User(user) => Some(format!("user:{user}")),
            Revocation::Resync => None,
        }
    }
}

type Listener = Arc<dyn Fn(&Revocation) + Send + Sync>;

/// The listeners of one process, told about every revocation at once. Cloning is cheap and
/// clones share the listeners.
#[derive(Clone, Default)]
pub struct Revocations {
    listeners: Arc<RwLock<Vec<Listener>>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("listeners", &self.listeners.read().len())
            .finish()
    }
}

impl Revocations {
    /// Adds a listener. It runs on the thread that reports the revocation (a request's or the
    /// subscriber task's), so it must be quick and must not block.
    pub fn listen(&self, listener: impl Fn(&Revocation) + Send + Sync + 'static) {
        self.listeners.write().push(Arc::new(listener));
    }

    /// Tells every listener.
    pub fn notify(&self, r: &Revocation) {
        let listeners = self.listeners.read().clone();
        for l in &listeners {
            l(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;

    #[test]
    fn payloads_round_trip() {
        let id = Token::generate().hash();
        let s = Revocation::Session(id);
        assert_eq!(Revocation::parse(s.payload().unwrap().as_bytes()), s);
        let u = Revocation::User(Arc::from("alice:1"));
        assert_eq!(u.payload().unwrap(), "user:alice:1");
        assert_eq!(Revocation::parse(b"user:alice:1"), u);
        for junk in [&b""[..], b"user:", b"abc", b"\xff\xfe", &[b'g'; 64]] {
            assert_eq!(Revocation::parse(junk), Revocation::Resync);
        }
        assert_eq!(Revocation::Resync.payload(), None);
    }

    #[test]
    fn every_listener_hears_every_revocation() {
        let hub = Revocations::default();
        let seen = Arc::new(RwLock::new(Vec::new()));
        for _ in 0..2 {
            let seen = seen.clone();
            hub.listen(move |r| seen.write().push(r.clone()));
        }
        hub.notify(&Revocation::Resync);
        assert_eq!(seen.read().len(), 2);
    }
}
