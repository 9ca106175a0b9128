use super::*;
use proptest::prelude::*;

const NAME: &str = "sid";

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    h
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

fn extract_of(pairs: &[(&str, &[u8])]) -> Result<Option<Credential>, CredentialError> {
    extract_credential(&headers(pairs), NAME)
}

#[test]
fn no_credential_is_none() {
    assert_eq!(extract_of(&[]), Ok(None));
    assert_eq!(extract_of(&[("cookie", b"other=1; x=2")]), Ok(None));
}

#[test]
fn bearer_is_read_with_any_scheme_case_and_spacing() {
    for v in [
        "Bearer abc",
        "bearer abc",
        "BEARER abc",
        "bEaReR    abc",
        "Bearer\tabc",
        "  Bearer abc  ",
    ] {
        let c = extract_of(&[("authorization", v.as_bytes())])
            .unwrap()
            .unwrap();
        assert_eq!(c.token.expose(), "abc", "{v:?}");
        assert_eq!(c.source, CredentialSource::Bearer);
    }
}

#[test]
fn malformed_bearer_is_a_typed_error() {
    for v in [
        &b"Bearer"[..],
        b"Bearer ",
        b"Bearer a b",
        b"Bearer a;b",
        b"Bearer =abc",
        b"Bearer a\"",
        b"Bearer \xff\xfe",
        b"Bearer abc,",
    ] {
        assert_eq!(
            extract_of(&[("authorization", v)]),
            Err(CredentialError::MalformedAuthorization),
            "{:?}",
            String::from_utf8_lossy(v)
        );
    }
    let long = bearer(&"a".repeat(crate::MAX_TOKEN_LEN + 1));
    assert_eq!(
        extract_of(&[("authorization", &long)]),
        Err(CredentialError::MalformedAuthorization)
    );
}

#[test]
fn two_bearer_credentials_are_rejected_never_first_wins() {
    // SECURITY-CASES 7.
    assert_eq!(
        extract_of(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer b")
        ]),
        Err(CredentialError::DuplicateAuthorization)
    );
    assert_eq!(
        extract_of(&[("authorization", b"Bearer a, Bearer b")]),
        Err(CredentialError::DuplicateAuthorization)
    );
    assert_eq!(
        extract_of(&[("authorization", b"Bearer a,b")]),
        Err(CredentialError::DuplicateAuthorization)
    );
    // Identical twice is still two.
    assert_eq!(
        extract_of(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer a")
        ]),
        Err(CredentialError::DuplicateAuthorization)
    );
    // A bearer plus another scheme in a second header is ambiguous too.
    assert_eq!(
        extract_of(&[
            ("authorization", b"Basic dXNlcjpwYXNz"),
            ("authorization", b"Bearer a")
        ]),
        Err(CredentialError::DuplicateAuthorization)
    );
    assert_eq!(
        extract_of(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Basic x")
        ]),
        Err(CredentialError::DuplicateAuthorization)
    );
    // A bearer smuggled after another scheme.
    assert_eq!(
        extract_of(&[("authorization", b"Basic dXNlcjpwYXNz, Bearer a")]),
        Err(CredentialError::DuplicateAuthorization)
    );
}

#[test]
fn other_schemes_are_not_our_credential() {
    assert_eq!(
        extract_of(&[("authorization", b"Basic dXNlcjpwYXNz")]),
        Ok(None)
    );
    assert_eq!(
        extract_of(&[("authorization", b"Digest username=\"a\", realm=\"b\"")]),
        Ok(None)
    );
    assert_eq!(extract_of(&[("authorization", b"Bearerabc")]), Ok(None));
    assert_eq!(extract_of(&[("authorization", b"")]), Ok(None));
    // Two non-bearer headers are not our business either.
    assert_eq!(
        extract_of(&[("authorization", b"Basic a"), ("authorization", b"Basic b")]),
        Ok(None)
    );
    // ...and the cookie is still used.
    let c = extract_of(&[("authorization", b"Basic a"), ("cookie", b"sid=tok")])
        .unwrap()
        .unwrap();
    assert_eq!(c.source, CredentialSource::Cookie);
}

#[test]
fn cookie_is_read_among_others_and_across_headers() {
    let c = extract_of(&[("cookie", b"a=1; sid=tok123; b=2")])
        .unwrap()
        .unwrap();
    assert_eq!(c.token.expose(), "tok123");
    assert_eq!(c.source, CredentialSource::Cookie);
    let c = extract_of(&[("cookie", b"a=1"), ("cookie", b"sid=tok")])
        .unwrap()
        .unwrap();
    assert_eq!(c.token.expose(), "tok");
    let c = extract_of(&[("cookie", b"sid=\"tok\"")]).unwrap().unwrap();
    assert_eq!(c.token.expose(), "tok");
    // Names are case-sensitive and must match exactly.
    assert_eq!(
        extract_of(&[("cookie", b"SID=tok; sidx=1; xsid=2")]),
        Ok(None)
    );
}

#[test]
fn the_cookie_twice_is_rejected() {
    // SECURITY-CASES 7.
    assert_eq!(
        extract_of(&[("cookie", b"sid=a; sid=b")]),
        Err(CredentialError::DuplicateCookie)
    );
    assert_eq!(
        extract_of(&[("cookie", b"sid=a"), ("cookie", b"sid=a")]),
        Err(CredentialError::DuplicateCookie)
    );
    assert_eq!(
        extract_of(&[("cookie", b"sid=a; sid=!!")]),
        Err(CredentialError::DuplicateCookie)
    );
    // Even when a bearer header would win.
    assert_eq!(
        extract_of(&[("authorization", b"Bearer t"), ("cookie", b"sid=a; sid=b")]),
        Err(CredentialError::DuplicateCookie)
    );
}

#[test]
fn malformed_cookie_is_reported() {
    assert_eq!(
        extract_of(&[("cookie", b"sid=not a token")]),
        Err(CredentialError::MalformedCookie)
    );
    assert_eq!(
        extract_of(&[("cookie", b"sid=")]),
        Err(CredentialError::MalformedCookie)
    );
    let found = extract(&headers(&[("cookie", b"sid=a,b")]), NAME).unwrap();
    assert!(found.credential.is_none());
    assert_eq!(found.cookie, CookieState::Malformed);
}

#[test]
fn header_wins_over_cookie() {
    let c = extract_of(&[
        ("cookie", b"sid=fromcookie"),
        ("authorization", b"Bearer fromheader"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(c.token.expose(), "fromheader");
    assert_eq!(c.source, CredentialSource::Bearer);
    // Even when the cookie is malformed.
    let c = extract_of(&[("cookie", b"sid=bad value"), ("authorization", b"Bearer h")])
        .unwrap()
        .unwrap();
    assert_eq!(c.source, CredentialSource::Bearer);
}

#[test]
fn errors_are_400_with_codes() {
    for e in [
        CredentialError::DuplicateAuthorization,
        CredentialError::MalformedAuthorization,
        CredentialError::DuplicateCookie,
        CredentialError::MalformedCookie,
        CredentialError::MalformedToken,
    ] {
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e
            .code()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-'));
    }
}

#[test]
fn credential_debug_redacts_the_token() {
    let c = extract_of(&[("authorization", b"Bearer secret123")])
        .unwrap()
        .unwrap();
    assert!(!format!("{c:?}").contains("secret123"));
}

#[test]
fn remove_cookie_keeps_other_cookies() {
    let mut h = headers(&[
        ("cookie", b"a=1; sid=tok; b=2"),
        ("cookie", b"sid=x"),
        ("cookie", b"c=3"),
    ]);
    assert!(remove_cookie(&mut h, NAME));
    let values: Vec<_> = h
        .get_all(COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(values, ["a=1; b=2", "c=3"]);
    assert!(!remove_cookie(&mut h, NAME));
    let mut h = headers(&[("cookie", b" sid = tok ")]);
    assert!(remove_cookie(&mut h, NAME));
    assert!(h.get(COOKIE).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes in Authorization and Cookie headers never panic, and a credential found
    /// is always a valid token.
    #[test]
    fn arbitrary_header_bytes_never_panic(
        auth in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..3),
        cookies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..3),
    ) {
        let mut h = HeaderMap::new();
        for v in &auth {
            if let Ok(v) = HeaderValue::from_bytes(v) { h.append(AUTHORIZATION, v); }
        }
        for v in &cookies {
            if let Ok(v) = HeaderValue::from_bytes(v) { h.append(COOKIE, v); }
        }
        match extract_credential(&h, NAME) {
            Ok(Some(c)) => prop_assert!(Token::parse(c.token.expose()).is_ok()),
            Ok(None) => {}
            Err(e) => prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST),
        }
        let mut stripped = h.clone();
        remove_cookie(&mut stripped, NAME);
        let after = extract(&stripped, NAME);
        prop_assert!(after.map_or(true, |f| f.cookie == CookieState::Absent));
    }

    /// Bearer-looking input built from arbitrary pieces.
    #[test]
    fn arbitrary_bearer_values_never_panic(scheme in "(?i)bearer|basic|", sep in "[ \t,]{0,3}", rest in ".{0,40}") {
        let v = format!("{scheme}{sep}{rest}");
        if let Ok(v) = HeaderValue::from_str(&v) {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v);
            let _ = extract_credential(&h, NAME);
        }
    }

    /// A valid token always round-trips through the header and through the cookie, whatever
    /// the scheme's case and the other cookies around it.
    #[test]
    fn valid_tokens_round_trip(
        token in "[A-Za-z0-9._~+/-]{1,100}={0,2}",
        scheme in "(?i)bearer",
        spaces in "[ \t]{1,4}",
        before in proptest::collection::vec("[a-z]{1,8}=[a-z0-9]{0,8}", 0..4),
        after in proptest::collection::vec("[a-z]{1,8}=[a-z0-9]{0,8}", 0..4),
    ) {
        prop_assume!(!before.iter().chain(&after).any(|c| c.starts_with("sid=")));
        let t = Token::parse(&token).unwrap();
        prop_assert_eq!(t.expose(), token.as_str());

        let h = headers(&[("authorization", format!("{scheme}{spaces}{token}").as_bytes())]);
        let c = extract_credential(&h, NAME).unwrap().unwrap();
        prop_assert_eq!(c.token.expose(), token.as_str());
        prop_assert_eq!(c.source, CredentialSource::Bearer);

        let mut jar = before.clone();
        jar.push(format!("sid={token}"));
        jar.extend(after.iter().cloned());
        let h = headers(&[("cookie", jar.join("; ").as_bytes())]);
        let c = extract_credential(&h, NAME).unwrap().unwrap();
        prop_assert_eq!(c.token.expose(), token.as_str());
        prop_assert_eq!(c.source, CredentialSource::Cookie);

        // Removing the session cookie keeps exactly the others.
        let mut h = h;
        prop_assert!(remove_cookie(&mut h, NAME));
        let mut others = before.clone();
        others.extend(after.iter().cloned());
        let kept = h.get(COOKIE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        prop_assert_eq!(kept, others.join("; "));
    }

    /// Generated tokens round-trip.
    #[test]
    fn generated_tokens_round_trip(_seed in any::<u8>()) {
        let t = Token::generate();
        let h = headers(&[("authorization", format!("Bearer {}", t.expose()).as_bytes())]);
        let c = extract_credential(&h, NAME).unwrap().unwrap();
        prop_assert_eq!(c.token, t);
    }
}
