//! Revocation events within one process: what a store revokes (the [`MemoryStore`](super::MemoryStore),
//! the Redis store) and, with Redis, what other replicas publish on `<prefix>:revocations`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// `user:<user_id>`, either of them optionally after a publish time (see
    /// [`Revocation::parse_timed`]). Anything else is [`Revocation::Resync`], the safe reading.
    pub fn parse(payload: &[u8]) -> Revocation {
        Revocation::parse_timed(payload).0
    }

    /// Parses a message that may start with its publish time, `@<Unix microseconds> `, as the
    /// gateway's scripts publish it (`@1765090000123456 <hex>`), and returns that time too.
    ///
    /// The time comes first so that a replica of a version before it reads a stamped message as
    /// something it does not understand (a [`Revocation::Resync`]: it drops its whole cache)
    /// rather than as a revocation of a user whose id ends in the stamp. Messages without a
    /// stamp (other services, older replicas) parse as before.
    pub fn parse_timed(payload: &[u8]) -> (Revocation, Option<SystemTime>) {
        let Some(rest) = payload.strip_prefix(b"@") else {
            return (Revocation::parse_plain(payload), None);
        };
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            return (Revocation::Resync, None);
        };
        let at = std::str::from_utf8(&rest[..space])
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
            .and_then(|us| UNIX_EPOCH.checked_add(Duration::from_micros(us)));
        match at {
            Some(at) => (Revocation::parse_plain(&rest[space + 1..]), Some(at)),
            None => (Revocation::Resync, None),
        }
    }

    fn parse_plain(payload: &[u8]) -> Revocation {
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

    /// The message with its publish time, `@<Unix microseconds> <payload>`.
    pub fn timed_payload(&self, at: SystemTime) -> Option<String> {
        let us = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        self.payload().map(|p| format!("@{us} {p}"))
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
    fn timed_payloads_carry_their_publish_time() {
        let id = Token::generate().hash();
        let at = UNIX_EPOCH + Duration::from_micros(1_765_090_000_123_456);
        for r in [
            Revocation::Session(id),
            Revocation::User(Arc::from("alice:1")),
        ] {
            let p = r.timed_payload(at).unwrap();
            assert!(p.starts_with("@1765090000123456 "), "{p}");
            assert_eq!(Revocation::parse_timed(p.as_bytes()), (r.clone(), Some(at)));
            assert_eq!(Revocation::parse(p.as_bytes()), r);
        }
        assert_eq!(
            Revocation::parse_timed(id.to_hex().as_bytes()),
            (Revocation::Session(id), None)
        );
        // A stamp that is not a number, or a stamp with nothing after it, is not understood.
        for junk in [
            &b"@"[..],
            b"@ user:a",
            b"@12x user:a",
            b"@123",
            b"@-1 user:a",
        ] {
            assert_eq!(Revocation::parse_timed(junk), (Revocation::Resync, None));
        }
        // Before this format, a replica read `user:<id> <stamp>`-like messages as a user id:
        // the stamp goes first so that an old replica sees an unknown message (a resync).
        let p = Revocation::User(Arc::from("bob"))
            .timed_payload(at)
            .unwrap();
        assert!(!p.starts_with("user:"));
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
