//! Session tokens and their SHA-256 store keys.
//!
//! A [`Token`] is the bearer secret a client holds. It is never stored, never logged and has no
//! `Display`: its `Debug` prints `Token(<redacted>)`. Stores key sessions by [`TokenHash`]
//! (SHA-256 of the token's bytes), so a leaked store holds no live credential.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::credential::CredentialError;

/// The longest token [`Token::parse`] accepts, in bytes.
///
/// Our own tokens are 43 bytes; the limit leaves room for other resolvers' tokens (JWTs from
/// identity providers that list many groups pass 4 KiB) while bounding the hashing and parsing
/// work an attacker can ask for.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Number of random bytes in a generated token (256 bits).
const TOKEN_BYTES: usize = 32;

/// A bearer secret: either minted by [`Token::generate`] or read from a request.
///
/// Guarantees: the content is RFC 6750 `token68` syntax (so it is safe in a header value and a
/// cookie value), at most [`MAX_TOKEN_LEN`] bytes. Equality is constant-time.
#[derive(Clone)]
pub struct Token(Repr);

/// Tokens up to this many bytes (ours are 43) are stored inline: reading one from a request
/// costs no allocation.
const INLINE: usize = 64;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Arc<str>),
}

impl Token {
    /// Mints a new token: 32 bytes from the OS CSPRNG, base64url without padding (43 chars).
    ///
    /// # Panics
    ///
    /// If the operating system's random source fails, which on supported platforms only happens
    /// when it is not available at all. Use [`Token::try_generate`] to handle that case.
    pub fn generate() -> Token {
        match Token::try_generate() {
            Ok(token) => token,
            // Minting a predictable token is never an option; there is no safe fallback.
            Err(e) => panic!("the OS random number generator failed: {e}"),
        }
    }

    /// Mints a new token like [`Token::generate`], reporting a failing OS random source.
    pub fn try_generate() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        let mut buf = [0u8; 43];
        // 32 bytes always encode to exactly 43 base64url characters.
        let len = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut buf)
            .unwrap_or_default();
        Ok(Token::from_token68(&buf[..len]))
    }

    /// Checks RFC 6750 `token68` syntax (`1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
    /// *"="`) and the length limit, and wraps the string.
    pub fn parse(s: &str) -> Result<Token, CredentialError> {
        if is_token68(s.as_bytes()) {
            Ok(Token::from_token68(s.as_bytes()))
        } else {
            Err(CredentialError::MalformedToken)
        }
    }

    /// Wraps bytes that passed [`is_token68`] (so they are ASCII).
    pub(crate) fn from_token68(b: &[u8]) -> Token {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            // len <= INLINE (64) fits in a u8.
            Token(Repr::Inline {
                len: b.len() as u8,
                buf,
            })
        } else {
            Token(Repr::Heap(String::from_utf8_lossy(b).into()))
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(s) => s.as_bytes(),
        }
    }

    /// The raw token. Only for answering the client (`Set-Cookie`, a login response); never log
    /// it.
    pub fn expose(&self) -> &str {
        match &self.0 {
            // token68 bytes are ASCII, so this never takes the empty fallback.
            Repr::Inline { .. } => std::str::from_utf8(self.bytes()).unwrap_or_default(),
            Repr::Heap(s) => s,
        }
    }

    /// The store key: SHA-256 of the token's bytes.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.bytes()).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        // `ct_eq` on slices of different lengths returns false without comparing contents; the
        // length of a token is not secret.
        self.bytes().ct_eq(other.bytes()).into()
    }
}

impl Eq for Token {}

/// Compares two secrets (an admin secret, an API key) in constant time, whatever their
/// lengths: both are hashed with SHA-256 and the digests compared with `subtle`, so neither the
/// position of the first difference nor the length of the expected secret leaks through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let a: [u8; 32] = Sha256::digest(a).into();
    let b: [u8; 32] = Sha256::digest(b).into();
    a.ct_eq(&b).into()
}

/// The `token68` characters other than the trailing `=` padding.
const TOKEN68_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        c += 1;
    }
    t
};

/// `token68` from RFC 7235 / RFC 6750, plus our length limit.
pub(crate) fn is_token68(b: &[u8]) -> bool {
    if b.is_empty() || b.len() > MAX_TOKEN_LEN {
        return false;
    }
    let mut body = b;
    while let [rest @ .., b'='] = body {
        body = rest;
    }
    // At least one non-padding character is required.
    !body.is_empty() && body.iter().all(|&c| TOKEN68_CHAR[usize::from(c)])
}

/// SHA-256 of a [`Token`]: the only form of a token a store ever sees.
///
/// Equality is constant-time. `Debug` and `Serialize` print lowercase hex.
#[derive(Clone, Copy)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Option<TokenHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(TokenHash(out))
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for TokenHash {}

impl Hash for TokenHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}

impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_base64url_chars_and_unique() {
        let a = Token::generate();
        let b = Token::generate();
        assert_eq!(a.expose().len(), 43);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn generated_tokens_parse() {
        let t = Token::generate();
        let p = Token::parse(t.expose()).unwrap();
        assert_eq!(t, p);
        assert_eq!(t.hash(), p.hash());
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"admin-secret", b"admin-secret"));
        assert!(!constant_time_eq(b"admin-secret", b"admin-secreT"));
        assert!(!constant_time_eq(b"admin-secret", b"admin"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn debug_is_redacted() {
        let t = Token::parse("supersecretvalue").unwrap();
        let s = format!("{t:?}");
        assert_eq!(s, "Token(<redacted>)");
        assert!(!s.contains("supersecret"));
    }

    #[test]
    fn hash_is_sha256() {
        let t = Token::parse("abc").unwrap();
        assert_eq!(
            t.hash().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip() {
        let h = Token::generate().hash();
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(TokenHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(TokenHash::from_hex("abc"), None);
        assert_eq!(TokenHash::from_hex(&"g".repeat(64)), None);
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            format!("\"{}\"", h.to_hex())
        );
    }

    #[test]
    fn long_tokens_are_stored_on_the_heap_and_still_work() {
        let long = "a".repeat(INLINE + 1);
        let t = Token::parse(&long).unwrap();
        assert!(matches!(t.0, Repr::Heap(_)));
        assert_eq!(t.expose(), long);
        assert_eq!(t, Token::parse(&long).unwrap());
        let short = Token::parse(&long[..INLINE]).unwrap();
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert_eq!(short.expose(), &long[..INLINE]);
        assert_ne!(t, short);
    }

    #[test]
    fn token68_syntax() {
        for ok in ["a", "abc==", "A-._~+/9", "x="] {
            assert!(Token::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "=",
            "==",
            "a b",
            "a,b",
            "a\r\nb",
            "a=b",
            "tok\u{e9}",
            "a\"",
            "a;b",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Token::parse(&"a".repeat(MAX_TOKEN_LEN)).is_ok());
        assert!(Token::parse(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }
}
