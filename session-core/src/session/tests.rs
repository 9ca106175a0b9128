use super::*;

fn new(user_id: &str, roles: &[&str], default_role: Option<&str>) -> NewSession {
    NewSession {
        user_id: user_id.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        default_role: default_role.map(Into::into),
        ttl: Duration::from_secs(60),
        ..Default::default()
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
        variables: vars(&[("x-hasura-org-id", "42")]),
    };
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["id"], "ab".repeat(32));
    assert_eq!(v["created_at"], 10);
    assert_eq!(v["expires_at"], 70);
    assert_eq!(
        v["variables"],
        serde_json::json!({ "x-hasura-org-id": "42" })
    );
}

fn vars(list: &[(&str, &str)]) -> Variables {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn with_vars(list: &[(&str, &str)]) -> NewSession {
    NewSession {
        variables: vars(list),
        ..new("u", &["user"], None)
    }
}

#[test]
fn variables_are_optional_and_checked() {
    assert_eq!(with_vars(&[]).validate(), Ok(()));
    assert_eq!(
        with_vars(&[("x-hasura-org-id", "42"), ("x-hasura-team", "a@b.c")]).validate(),
        Ok(())
    );
    let name = |n: &str| with_vars(&[(n, "1")]).validate();
    for bad in [
        "",
        "X-Hasura-Org-Id",
        "x_hasura_org_id",
        "x-hasura-org id",
        "x-hasura-org:id",
        "x-hasura-\u{e9}",
        "x-hasura-a\r\nx-evil",
    ] {
        assert_eq!(
            name(bad),
            Err(SessionValidationError::InvalidVariableName),
            "{bad:?}"
        );
    }
    let long = format!("x-hasura-{}", "a".repeat(MAX_VARIABLE_NAME_LEN));
    assert_eq!(
        name(&long[..MAX_VARIABLE_NAME_LEN]),
        Ok(()),
        "the longest name"
    );
    assert_eq!(
        name(&long),
        Err(SessionValidationError::InvalidVariableName)
    );
}

#[test]
fn variable_values_follow_the_user_id_rule() {
    let value = |v: &str| with_vars(&[("x-hasura-org-id", v)]).validate();
    for (bad, at) in [
        ("a\rb", 1),
        ("a\nb", 1),
        ("\0", 0),
        ("a b", 1),
        ("a\u{7f}", 1),
        ("caf\u{e9}", 3),
    ] {
        assert_eq!(
            value(bad),
            Err(SessionValidationError::InvalidVariableValue(at)),
            "{bad:?}"
        );
    }
    assert_eq!(value(""), Err(SessionValidationError::EmptyVariableValue));
    assert_eq!(value(&"v".repeat(MAX_VARIABLE_VALUE_LEN)), Ok(()));
    assert_eq!(
        value(&"v".repeat(MAX_VARIABLE_VALUE_LEN + 1)),
        Err(SessionValidationError::VariableValueTooLong)
    );
}

#[test]
fn variable_count_is_capped() {
    let names: Vec<String> = (0..=MAX_VARIABLES)
        .map(|i| format!("x-hasura-v{i}"))
        .collect();
    let mut s = with_vars(&[]);
    for n in &names[..MAX_VARIABLES] {
        s.variables.insert(n.clone(), "1".into());
    }
    assert_eq!(s.validate(), Ok(()));
    s.variables.insert(names[MAX_VARIABLES].clone(), "1".into());
    assert_eq!(s.validate(), Err(SessionValidationError::TooManyVariables));
}

#[test]
fn variable_names_stay_under_the_identity_prefix() {
    let default = SessionConfig::default();
    let check = |n: &str, config: &SessionConfig| with_vars(&[(n, "1")]).validate_for(config);
    assert_eq!(check("x-hasura-org-id", &default), Ok(()));
    // Outside the prefix (the client could send it), the bare prefix, and the three identity
    // headers (a variable must never replace the identity).
    for bad in [
        "x-other",
        "authorization",
        "host",
        "x-hasura-",
        "x-hasura-user-id",
        "x-hasura-role",
        "x-hasura-allowed-roles",
    ] {
        assert_eq!(
            check(bad, &default),
            Err(SessionValidationError::VariableNameNotAllowed),
            "{bad:?}"
        );
    }
    // The configured prefix and names, not the defaults.
    let custom = SessionConfig {
        identity_prefix: "x-app-".into(),
        user_id_header: http::HeaderName::from_static("x-app-user"),
        ..SessionConfig::default()
    };
    assert_eq!(check("x-app-org", &custom), Ok(()));
    assert_eq!(
        check("x-app-user", &custom),
        Err(SessionValidationError::VariableNameNotAllowed)
    );
    assert_eq!(
        check("x-hasura-org-id", &custom),
        Err(SessionValidationError::VariableNameNotAllowed)
    );
    // validate_for runs validate first.
    assert_eq!(
        with_vars(&[("x-hasura-org-id", "a b")]).validate_for(&default),
        Err(SessionValidationError::InvalidVariableValue(1))
    );
}

#[test]
fn variable_headers_round_trip() {
    assert_eq!(variable_headers(&vars(&[])), Ok(None));
    let v = vars(&[("x-hasura-team", "blue"), ("x-hasura-org-id", "42")]);
    let headers = variable_headers(&v).unwrap().unwrap();
    // Name order, whatever order they were given in.
    assert_eq!(headers[0].0.as_str(), "x-hasura-org-id");
    assert_eq!(headers[0].1, "42");
    assert_eq!(variables_of(Some(&headers)), v);
    assert_eq!(variables_of(None), Variables::new());
    assert!(variable_headers(&vars(&[("x-hasura-a", "a\nb")])).is_err());
}
