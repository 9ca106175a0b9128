//! Reading the credential of a request: `Authorization: Bearer <token>` or the session cookie.
//!
//! # Rules
//!
//! - `Authorization: Bearer <token>`: the scheme is case-insensitive, one or more spaces follow
//!   it, and the token must be RFC 6750 `token68` (at most [`MAX_TOKEN_LEN`] bytes).
//! - The session cookie (its name is configurable) is parsed with the `cookie` crate from every
//!   `Cookie` header (HTTP/2 clients may split cookies over several). Cookie names are
//!   case-sensitive; a value wrapped in double quotes is unwrapped.
//! - The header wins over the cookie.
//! - Ambiguity is an error, never "first one wins": two `Authorization` headers of which one is
//!   Bearer, `Bearer a, Bearer b` in one header, or `Basic x, Bearer y` are
//!   [`CredentialError::DuplicateAuthorization`]; the session cookie twice (even with a bearer
//!   header present) is [`CredentialError::DuplicateCookie`].
//! - Other schemes (`Basic`, `Digest`, …) are **not our credential**: a request carrying only
//!   such a header is anonymous as far as this crate goes, and the header is left untouched for
//!   the upstream that understands it.
//!
//! [`MAX_TOKEN_LEN`]: crate::MAX_TOKEN_LEN

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::token::{is_token68, Token};

/// Where a credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The session cookie.
    Cookie,
}

/// A credential read from a request. Its `Debug` redacts the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The token.
    pub token: Token,
    /// Where it came from.
    pub source: CredentialSource,
}

/// Why a request's credential could not be read. Every variant answers 400.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// More than one credential in `Authorization`: two headers of which one is Bearer,
    /// `Bearer a, Bearer b`, or a Bearer credential listed after another scheme.
    #[error("more than one credential in the Authorization header")]
    DuplicateAuthorization,
    /// `Authorization: Bearer` without a valid `token68` token.
    #[error("malformed bearer credential")]
    MalformedAuthorization,
    /// The session cookie appears more than once.
    #[error("the session cookie appears more than once")]
    DuplicateCookie,
    /// The session cookie's value is not a valid token. The [`SessionLayer`](crate::SessionLayer)
    /// does not reject this one: it clears the cookie and goes on as anonymous.
    #[error("malformed session cookie")]
    MalformedCookie,
    /// A string given to [`Token::parse`] is not a valid token.
    #[error("malformed token")]
    MalformedToken,
}

impl CredentialError {
    /// The HTTP status this error answers with: always 400 Bad Request.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    /// The rejection this error answers with.
    pub fn rejection(&self) -> crate::rejection::Rejection {
        use crate::rejection as r;
        match self {
            CredentialError::DuplicateAuthorization => r::DUPLICATE_AUTHORIZATION,
            CredentialError::MalformedAuthorization => r::MALFORMED_AUTHORIZATION,
            CredentialError::DuplicateCookie => r::DUPLICATE_COOKIE,
            CredentialError::MalformedCookie => r::MALFORMED_COOKIE,
            CredentialError::MalformedToken => r::MALFORMED_TOKEN,
        }
    }

    /// The machine-readable `code` of the JSON rejection.
    pub fn code(&self) -> &'static str {
        self.rejection().code
    }
}

/// Reads the request's credential following the module rules.
///
/// `Ok(None)`: no credential of ours (a request the layer treats as anonymous).
pub fn extract_credential(
    headers: &HeaderMap,
    cookie_name: &str,
) -> Result<Option<Credential>, CredentialError> {
    let found = extract(headers, cookie_name)?;
    if found.credential.is_none() && found.cookie == CookieState::Malformed {
        return Err(CredentialError::MalformedCookie);
    }
    Ok(found.credential)
}

/// What [`extract`] saw: the credential plus what the layer needs to clean up.
#[derive(Debug)]
pub(crate) struct Extracted {
    pub(crate) credential: Option<Credential>,
    /// An `Authorization: Bearer` header is present.
    pub(crate) bearer: bool,
    pub(crate) cookie: CookieState,
}

/// Whether the session cookie was present and usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieState {
    Absent,
    Valid,
    Malformed,
}

/// The rules of the module docs. A malformed cookie is reported in `cookie`, not as an error.
pub(crate) fn extract(
    headers: &HeaderMap,
    cookie_name: &str,
) -> Result<Extracted, CredentialError> {
    let bearer = bearer_token(headers)?;
    let (cookie_state, cookie_token) = cookie_token(headers, cookie_name)?;
    let bearer_present = bearer.is_some();
    let credential = match (bearer, cookie_token) {
        (Some(token), _) => Some(Credential {
            token,
            source: CredentialSource::Bearer,
        }),
        (None, Some(token)) => Some(Credential {
            token,
            source: CredentialSource::Cookie,
        }),
        (None, None) => None,
    };
    Ok(Extracted {
        credential,
        bearer: bearer_present,
        cookie: cookie_state,
    })
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !is_ows(*first) {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !is_ows(*last) {
            break;
        }
        b = rest;
    }
    b
}

/// `Bearer` (any case) followed by whitespace or the end.
fn starts_with_bearer_scheme(b: &[u8]) -> bool {
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"bearer") && (b.len() == 6 || is_ows(b[6]))
}

fn bearer_token(headers: &HeaderMap) -> Result<Option<Token>, CredentialError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let token = parse_authorization(first)?;
    for other in values {
        // A second Authorization header is fine only if neither is ours.
        if token.is_some() || parse_authorization(other)?.is_some() {
            return Err(CredentialError::DuplicateAuthorization);
        }
    }
    Ok(token)
}

/// One `Authorization` value: `Ok(Some)` for a valid bearer, `Ok(None)` for another scheme.
pub(crate) fn parse_authorization(value: &HeaderValue) -> Result<Option<Token>, CredentialError> {
    let v = trim_ows(value.as_bytes());
    if !starts_with_bearer_scheme(v) {
        // Not our scheme, unless a bearer credential hides later in a list.
        let smuggled = v
            .split(|&b| b == b',')
            .skip(1)
            .any(|item| starts_with_bearer_scheme(trim_ows(item)));
        return if smuggled {
            Err(CredentialError::DuplicateAuthorization)
        } else {
            Ok(None)
        };
    }
    let rest = trim_ows(&v[6..]);
    if rest.contains(&b',') {
        let items = rest
            .split(|&b| b == b',')
            .filter(|item| !trim_ows(item).is_empty())
            .count();
        return Err(if items > 1 {
            CredentialError::DuplicateAuthorization
        } else {
            CredentialError::MalformedAuthorization
        });
    }
    if !is_token68(rest) {
        return Err(CredentialError::MalformedAuthorization);
    }
    Ok(Some(Token::from_token68(rest)))
}

/// Finds the session cookie in every `Cookie` header.
fn cookie_token(
    headers: &HeaderMap,
    name: &str,
) -> Result<(CookieState, Option<Token>), CredentialError> {
    let mut state = CookieState::Absent;
    let mut token = None;
    for value in headers.get_all(COOKIE) {
        // Cheap pre-check: most requests carry cookies, few carry ours twice.
        if !contains(value.as_bytes(), name.as_bytes()) {
            continue;
        }
        // Cookie values may hold obs-text; our name and token are ASCII and survive a lossy
        // conversion, and a token with invalid bytes stays invalid.
        let text: Cow<'_, str> = String::from_utf8_lossy(value.as_bytes());
        for cookie in cookie::Cookie::split_parse(text).flatten() {
            if cookie.name() != name {
                continue;
            }
            if state != CookieState::Absent {
                return Err(CredentialError::DuplicateCookie);
            }
            match Token::parse(cookie.value_trimmed()) {
                Ok(t) => {
                    state = CookieState::Valid;
                    token = Some(t);
                }
                Err(_) => state = CookieState::Malformed,
            }
        }
    }
    Ok((state, token))
}

/// The value of the cookie `name` in every `Cookie` header, borrowed from the headers, with
/// the same reading as the session cookie's (the `cookie` crate, surrounding double quotes
/// removed). Twice is [`CredentialError::DuplicateCookie`]; in a header that is not UTF-8 (so
/// not readable without copying) it is [`CredentialError::MalformedCookie`].
pub(crate) fn find_cookie<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, CredentialError> {
    let mut found = None;
    for value in headers.get_all(COOKIE) {
        if !contains(value.as_bytes(), name.as_bytes()) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            let lossy = String::from_utf8_lossy(value.as_bytes());
            if cookie::Cookie::split_parse(lossy.as_ref())
                .flatten()
                .any(|c| c.name() == name)
            {
                return Err(CredentialError::MalformedCookie);
            }
            continue;
        };
        for cookie in cookie::Cookie::split_parse(text).flatten() {
            if cookie.name() != name {
                continue;
            }
            if found.is_some() {
                return Err(CredentialError::DuplicateCookie);
            }
            found = Some(trim_quotes(cookie.value_raw().unwrap_or_default()));
        }
    }
    Ok(found)
}

fn trim_quotes(s: &str) -> &str {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner,
        None => s,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Removes every `name=…` pair from the `Cookie` headers, keeping the other cookies. A header
/// left empty is removed. Returns whether anything was removed.
///
/// A pair's name is what precedes its first `=`, trimmed, as the `cookie` crate reads it, so
/// anything [`extract`] could have read as the session cookie is removed.
pub(crate) fn remove_cookie(headers: &mut HeaderMap, name: &str) -> bool {
    let mut changed = false;
    let mut kept: Vec<HeaderValue> = Vec::new();
    for value in headers.get_all(COOKIE) {
        let bytes = value.as_bytes();
        if !bytes
            .split(|&b| b == b';')
            .any(|pair| is_cookie_named(pair, name))
        {
            kept.push(value.clone());
            continue;
        }
        changed = true;
        let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
        for pair in bytes.split(|&b| b == b';') {
            let pair = trim_ows(pair);
            if pair.is_empty() || is_cookie_named(pair, name) {
                continue;
            }
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(pair);
        }
        if !out.is_empty() {
            // The bytes come from a valid header value minus some pairs; still checked.
            if let Ok(v) = HeaderValue::from_bytes(&out) {
                kept.push(v);
            }
        }
    }
    if changed {
        headers.remove(COOKIE);
        for v in kept {
            headers.append(COOKIE, v);
        }
    }
    changed
}

fn is_cookie_named(pair: &[u8], name: &str) -> bool {
    match pair.iter().position(|&b| b == b'=') {
        // Same reading as the `cookie` crate: the name is what precedes the first `=`, trimmed
        // of Unicode whitespace, after the lossy UTF-8 conversion `cookie_token` applies.
        Some(i) => String::from_utf8_lossy(&pair[..i]).trim() == name,
        None => false,
    }
}

#[cfg(test)]
mod tests;
