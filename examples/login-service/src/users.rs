//! The in-memory user table: usernames, argon2 password hashes and the identity
//! each user gets on login.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::{headers, Error};

/// The users this service can log in, with their argon2 password hashes.
///
/// Built once at startup ([`Users::demo`] or [`Users::from_toml_str`]); every
/// entry has been validated and its session headers precomputed, so a login
/// only verifies a hash and copies headers.
#[derive(Clone)]
pub struct Users {
    by_name: HashMap<String, Arc<Account>>,
    /// Verified when the username is unknown, so that an unknown user costs
    /// about as much time as a wrong password and timing does not reveal which
    /// usernames exist.
    dummy_hash: Arc<str>,
    session_ttl: Option<HeaderValue>,
}

/// One user, as the login handler needs it.
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) user_id: String,
    pub(crate) roles: Vec<String>,
    password_hash: String,
    /// `X-Gateway-Session-User-Id`, `-Roles` and (when set) `-Default-Role`.
    pub(crate) session_headers: HeaderMap,
}

/// The users file, e.g.
///
/// ```toml
/// session_ttl_secs = 3600            # optional
///
/// [[users]]
/// username = "alice"
/// user_id = "1"
/// roles = ["user"]
/// default_role = "user"              # optional
/// password_hash = "$argon2id$v=19$m=19456,t=2,p=1$...$..."
/// ```
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    session_ttl_secs: Option<u64>,
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    username: String,
    user_id: String,
    roles: Vec<String>,
    #[serde(default)]
    default_role: Option<String>,
    password_hash: String,
}

/// The session lifetime the demo users get.
const DEMO_SESSION_TTL: Duration = Duration::from_secs(3600);

impl Users {
    /// The built-in demo users, hashed with argon2id (default parameters) when
    /// this is called:
    ///
    /// | username | password         | user id | roles         | default role |
    /// |----------|------------------|---------|---------------|--------------|
    /// | `alice`  | `alice-password` | `1`     | `user`        | `user`       |
    /// | `bob`    | `bob-password`   | `2`     | `user, admin` | `user`       |
    ///
    /// Sessions last one hour (`X-Gateway-Session-Ttl: 3600`).
    ///
    /// # Errors
    ///
    /// [`Error::Hash`] if a salt or hash could not be made (the OS random
    /// generator failed).
    pub fn demo() -> Result<Users, Error> {
        let demo = [
            ("alice", "alice-password", "1", &["user"][..]),
            ("bob", "bob-password", "2", &["user", "admin"][..]),
        ];
        let mut entries = Vec::with_capacity(demo.len());
        for (username, password, user_id, roles) in demo {
            entries.push(UserEntry {
                username: username.to_owned(),
                user_id: user_id.to_owned(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                default_role: Some("user".to_owned()),
                password_hash: hash_password(password)?,
            });
        }
        Ok(Users::from_entries(entries)?.with_session_ttl(Some(DEMO_SESSION_TTL)))
    }

    /// Reads a users file in TOML:
    ///
    /// ```toml
    /// session_ttl_secs = 3600            # optional; omit to let the gateway decide
    ///
    /// [[users]]
    /// username = "alice"
    /// user_id = "1"
    /// roles = ["user"]
    /// default_role = "user"              # optional; must be one of `roles`
    /// password_hash = "$argon2id$v=19$m=19456,t=2,p=1$...$..."  # PHC string
    /// ```
    ///
    /// Make a `password_hash` with [`hash_password`] (or the binary's
    /// `hash-password` subcommand). Every entry is checked here, so a bad hash
    /// fails at startup rather than at the first login.
    ///
    /// # Errors
    ///
    /// [`Error::Parse`] for malformed TOML or unknown/missing fields,
    /// [`Error::InvalidPasswordHash`] for a hash that is not an argon2 PHC
    /// string, [`Error::DuplicateUser`], [`Error::InvalidUser`] (no roles, a
    /// default role outside `roles`, a role or user id that is not a plain
    /// header token), [`Error::ZeroSessionTtl`].
    pub fn from_toml_str(toml: &str) -> Result<Users, Error> {
        let file: UsersFile = toml::from_str(toml)?;
        let ttl = match file.session_ttl_secs {
            Some(0) => return Err(Error::ZeroSessionTtl),
            Some(secs) => Some(Duration::from_secs(secs)),
            None => None,
        };
        Ok(Users::from_entries(file.users)?.with_session_ttl(ttl))
    }

    /// Sets the session lifetime announced with `X-Gateway-Session-Ttl`
    /// (rounded up to whole seconds, at least one); `None` leaves the header out
    /// so the gateway applies its own default.
    #[must_use]
    pub fn with_session_ttl(mut self, ttl: Option<Duration>) -> Users {
        self.session_ttl = ttl.map(|ttl| {
            let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
            HeaderValue::from(secs.max(1))
        });
        self
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no users (then nobody can log in).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    fn from_entries(entries: Vec<UserEntry>) -> Result<Users, Error> {
        let mut by_name = HashMap::with_capacity(entries.len());
        let mut dummy_params = None;
        for entry in entries {
            let (account, params) = Account::from_entry(&entry)?;
            dummy_params.get_or_insert(params);
            if by_name
                .insert(entry.username.clone(), Arc::new(account))
                .is_some()
            {
                return Err(Error::DuplicateUser {
                    username: entry.username,
                });
            }
        }
        // The dummy hash uses the same algorithm and cost as a real user, so a
        // miss takes as long as a wrong password.
        let (algorithm, version, params) =
            dummy_params.unwrap_or((Algorithm::default(), Version::default(), Params::default()));
        let dummy_hash = hash_with(
            &Argon2::new(algorithm, version, params),
            b"not-a-real-password",
        )?;
        Ok(Users {
            by_name,
            dummy_hash: dummy_hash.into(),
            session_ttl: None,
        })
    }

    /// Checks `password` for `username`. Blocking and deliberately slow (one
    /// argon2 verification whether or not the user exists): call it off the
    /// async runtime.
    pub(crate) fn verify(&self, username: &str, password: &str) -> Option<Arc<Account>> {
        let argon2 = Argon2::default();
        match self.by_name.get(username) {
            Some(account) => {
                let hash = PasswordHash::new(&account.password_hash).ok()?;
                argon2
                    .verify_password(password.as_bytes(), &hash)
                    .ok()
                    .map(|()| Arc::clone(account))
            }
            None => {
                if let Ok(hash) = PasswordHash::new(&self.dummy_hash) {
                    // The result is irrelevant; only the time spent matters.
                    let _ = argon2.verify_password(password.as_bytes(), &hash);
                }
                None
            }
        }
    }

    pub(crate) fn session_ttl(&self) -> Option<&HeaderValue> {
        self.session_ttl.as_ref()
    }
}

impl fmt::Debug for Users {
    // Hashes stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Users")
            .field("usernames", &names)
            .field("session_ttl", &self.session_ttl)
            .finish_non_exhaustive()
    }
}

impl Account {
    fn from_entry(entry: &UserEntry) -> Result<(Account, (Algorithm, Version, Params)), Error> {
        let invalid = |reason| Error::InvalidUser {
            username: entry.username.clone(),
            reason,
        };
        if entry.username.is_empty() {
            return Err(invalid("username is empty"));
        }
        if entry.user_id.is_empty() || !entry.user_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "user_id must be non-empty printable ASCII without spaces",
            ));
        }
        if entry.roles.is_empty() {
            return Err(invalid("roles is empty"));
        }
        if !entry.roles.iter().all(|role| is_role_token(role)) {
            return Err(invalid(
                "roles must be non-empty and use only ASCII letters, digits, '-', '_', '.' or ':'",
            ));
        }
        if let Some(default_role) = &entry.default_role {
            if !entry.roles.contains(default_role) {
                return Err(invalid("default_role is not one of roles"));
            }
        }
        let params =
            check_phc(&entry.password_hash).map_err(|source| Error::InvalidPasswordHash {
                username: entry.username.clone(),
                source,
            })?;

        // Checked above: user ids and roles are visible ASCII, so these are
        // valid header values.
        let header = |s: &str| HeaderValue::from_str(s).map_err(|_| invalid("not a header value"));
        let mut session_headers = HeaderMap::with_capacity(3);
        session_headers.insert(
            HeaderName::from_static(headers::SESSION_USER_ID),
            header(&entry.user_id)?,
        );
        session_headers.insert(
            HeaderName::from_static(headers::SESSION_ROLES),
            header(&entry.roles.join(","))?,
        );
        if let Some(default_role) = &entry.default_role {
            session_headers.insert(
                HeaderName::from_static(headers::SESSION_DEFAULT_ROLE),
                header(default_role)?,
            );
        }

        let account = Account {
            user_id: entry.user_id.clone(),
            roles: entry.roles.clone(),
            password_hash: entry.password_hash.clone(),
            session_headers,
        };
        Ok((account, params))
    }
}

fn is_role_token(role: &str) -> bool {
    !role.is_empty()
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Checks that `phc` is an argon2 PHC string with parameters argon2 accepts,
/// and returns them.
fn check_phc(phc: &str) -> Result<(Algorithm, Version, Params), argon2::password_hash::Error> {
    let hash = PasswordHash::new(phc)?;
    let algorithm = Algorithm::try_from(hash.algorithm)?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).map_err(argon2::password_hash::Error::from)?,
        None => Version::default(),
    };
    let params = Params::try_from(&hash)?;
    if hash.salt.is_none() || hash.hash.is_none() {
        // `$argon2id$v=19$m=..,t=..,p=..` alone parses, but verifies nothing.
        return Err(argon2::password_hash::Error::PhcStringField);
    }
    Ok((algorithm, version, params))
}

/// Hashes `password` with argon2id (the crate's default parameters) and a fresh
/// random salt, returning the PHC string to put in a users file's
/// `password_hash`.
///
/// # Errors
///
/// [`Error::Hash`] if the OS random generator fails.
pub fn hash_password(password: &str) -> Result<String, Error> {
    hash_with(&Argon2::default(), password.as_bytes())
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    argon2
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}
