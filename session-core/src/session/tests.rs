use super::*;

fn new(user_id: &str, roles: &[&str], default_role: Option<&str>) -> NewSession {
    NewSession {
        user_id: user_id.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        default_role: default_role.map(Into::into),
        ttl: Duration::from_secs(60),
    }
}

#[test]
fn a_plain_session_is_valid() {
    assert_eq!(
        new("user-1", &["user", "editor"], Some("editor")).validate(),
        Ok(())
    );
    assert_eq!(new("u@example.com", &["user"], None).validate(), Ok(()));
}

#[test]
fn user_ids_with_header_breaking_bytes_are_refused() {
    // SECURITY-CASES 6: CR, LF and control bytes never reach a header.
    for (bad, at) in [
        ("a\rb", 1),
        ("a\nb", 1),
        ("a\r\nX-Hasura-Role: admin", 1),
        ("\0", 0),
        ("a\tb", 1),
        ("a b", 1),
        ("a\u{7f}", 1),
        ("caf\u{e9}", 3),
    ] {
        assert_eq!(
            new(bad, &["user"], None).validate(),
            Err(SessionValidationError::InvalidUserId(at)),
            "{bad:?}"
        );
    }
    assert_eq!(
        new("", &["user"], None).validate(),
        Err(SessionValidationError::EmptyUserId)
    );
    assert_eq!(
        new(&"a".repeat(MAX_USER_ID_LEN + 1), &["user"], None).validate(),
        Err(SessionValidationError::UserIdTooLong)
    );
    assert_eq!(
        new(&"a".repeat(MAX_USER_ID_LEN), &["user"], None).validate(),
        Ok(())
    );
}

#[test]
fn roles_with_header_breaking_bytes_or_commas_are_refused() {
    for bad in ["ad\rmin", "ad\nmin", "a,b", "a b", "\u{1}", "r\u{f4}le"] {
        assert!(
            matches!(
                new("u", &[bad], None).validate(),
                Err(SessionValidationError::InvalidRole(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        new("u", &[""], None).validate(),
        Err(SessionValidationError::EmptyRole)
    );
    assert_eq!(
        new("u", &[&"r".repeat(MAX_ROLE_LEN + 1)], None).validate(),
        Err(SessionValidationError::RoleTooLong)
    );
}

#[test]
fn role_list_rules() {
    assert_eq!(
        new("u", &[], None).validate(),
        Err(SessionValidationError::NoRoles)
    );
    assert_eq!(
        new("u", &["a", "a"], None).validate(),
        Err(SessionValidationError::DuplicateRole)
    );
    assert_eq!(
        new("u", &["a"], Some("b")).validate(),
        Err(SessionValidationError::DefaultRoleNotInRoles)
    );
    let many: Vec<String> = (0..=MAX_ROLES).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        new("u", &refs, None).validate(),
        Err(SessionValidationError::TooManyRoles)
    );
}

#[test]
fn ttl_rules() {
    let mut s = new("u", &["a"], None);
    s.ttl = Duration::ZERO;
    assert_eq!(s.validate(), Err(SessionValidationError::InvalidTtl));
    s.ttl = MAX_TTL + Duration::from_secs(1);
    assert_eq!(s.validate(), Err(SessionValidationError::InvalidTtl));
    s.ttl = MAX_TTL;
    assert_eq!(s.validate(), Ok(()));
}

#[test]
fn default_role_index() {
    assert_eq!(new("u", &["a", "b"], None).default_role_index(), 0);
    assert_eq!(new("u", &["a", "b"], Some("b")).default_role_index(), 1);
}

#[test]
fn session_serializes_hex_id_and_unix_seconds() {
    let s = Session {
        id: TokenHash([0xab; 32]),
        user_id: "u".into(),
        roles: vec!["a".into()],
        default_role: "a".into(),
        created_at: UNIX_EPOCH + Duration::from_secs(10),
        expires_at: UNIX_EPOCH + Duration::from_secs(70),
    };
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["id"], "ab".repeat(32));
    assert_eq!(v["created_at"], 10);
    assert_eq!(v["expires_at"], 70);
}
