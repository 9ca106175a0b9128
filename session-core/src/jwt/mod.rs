//! [`JwtResolver`]: JWTs as credentials, configured as Hasura GraphQL Engine's JWT mode is
//! ([`JwtConfig`], the `HASURA_GRAPHQL_JWT_SECRET` JSON or the same keys in TOML), with a
//! static key or a JWKS URL.
//!
//! # Verification
//!
//! - The algorithm must be exactly the configured `type`, or, with a JWKS, the key's `alg`
//!   (the algorithms of its key type when it has none). `alg: none` and an algorithm of
//!   another family (HS256 signed with an RSA public key as the secret) are refused. ES512
//!   (P-521), which ring lacks, is verified with RustCrypto's `p521`; every other algorithm
//!   with jsonwebtoken (ring).
//! - `exp` is required, `nbf` honoured, both with `allowed_skew` as leeway; `aud` and `iss`
//!   are required and checked when configured (a token without `aud` is refused when an
//!   `audience` is set, which Hasura lets through).
//! - The claims give the identity: see the `claims` rules below. Any failure makes the token
//!   invalid (`Ok(None)`), logged at debug level with a reason, never the token.
//!
//! # Which config reads which token
//!
//! A config reads its token where its `header` says: the bearer token the session layer found
//! (`Authorization`), or its own cookie (`Cookie`). A token in the cookie when the config says
//! `Authorization`, or in the header when it says `Cookie`, is not that config's. When the
//! request carries a bearer token, cookie configs are not consulted (the bearer token decides:
//! 401 if no config verifies it). With several configs, a token goes only to those whose
//! `issuer` equals its (unverified) `iss`, or that have none, in the configured order; the first
//! that verifies it wins.
//!
//! # JWKS
//!
//! Fetched at start by a spawned task; until a usable set is held, [`Resolver::not_ready`]
//! says why and JWT-carrying requests get `Err(ResolveError::Unavailable)` (503). Refreshed as
//! `Cache-Control: max-age` / `Expires` say, clamped to `jwks_refresh_min` ..
//! `jwks_refresh_max` (the maximum when the response says nothing); a failed refresh keeps the
//! last good set and is retried after `jwks_refetch_interval`. A token whose `kid` is not in the
//! set makes the set be fetched at once, at most once per `jwks_refetch_interval`: past that,
//! such tokens are invalid (401), not 503. Keys that cannot verify (an encryption key, an
//! unsupported type or curve, such as `oct` or secp256k1) are skipped with a warning.
//!
//! # Metrics
//!
//! `gateway_jwt_refused_total{reason}` (a fixed reason: `expired`, `bad signature`,
//! `unknown kid`, …) and `gateway_jwks_fetches_total{result="ok"|"error"}`.
//!
//! # Verified-token cache
//!
//! A verified token's identity is cached per config, keyed by SHA-256 of the token, until the
//! earlier of its `exp` and `cache_ttl`, at most `cache_entries` entries. An entry remembers the
//! key that verified it: once that key is no longer in the set, the entry no longer answers (it
//! is checked on lookup, and entries are purged when a new set arrives).
//!
//! # Claims
//!
//! - With a namespace (`claims_namespace`, default `https://hasura.io/jwt/claims`, or
//!   `claims_namespace_path`): the object there (with `stringified_json`, the object in the
//!   string there) holds the `x-hasura-*` claims, names compared case-insensitively.
//! - With `claims_map`: each session variable is read at its JSON path in the whole payload,
//!   or takes its `default`, or is a literal.
//! - `x-hasura-allowed-roles` (a list) and `x-hasura-default-role` (one of them) are required;
//!   the identity's role is the default role (the session layer then applies `X-Hasura-Role`).
//!   `x-hasura-user-id` is the user id; a token without one gets [`USER_ID_WHEN_ABSENT`]
//!   (`"0"`), since Hasura does not require the claim and an identity always has a user id.
//! - Every other `x-hasura-*` claim (except `x-hasura-role`) is a session variable, its name
//!   lowercased: strings as they are, numbers and booleans as their JSON text, a list of
//!   strings as a Postgres array literal (`{a,b}`); anything else, or a name or value the
//!   identity rules refuse, makes the token invalid.
//! - The identity expires at the token's `exp` ([`Identity::expires_at`]): a WebSocket opened
//!   with it is closed then.

mod claims;
mod config;
mod jwks;
mod keys;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use claims::USER_ID_WHEN_ABSENT;
pub use config::{
    Audience, ClaimsFormat, ClaimsMapValue, JwtConfig, JwtConfigError, JwtHeader,
    DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_TTL, DEFAULT_CLAIMS_NAMESPACE, DEFAULT_HTTP_TIMEOUT,
    DEFAULT_JWKS_REFETCH_INTERVAL, DEFAULT_JWKS_REFRESH_MAX, DEFAULT_JWKS_REFRESH_MIN,
};
pub use keys::JwtAlgorithm;

use self::claims::ClaimsRules;
use self::config::{config_err, KeySource};
use self::jwks::{Jwks, JwksSettings, KeySet};
use self::keys::{Material, VerifyKey};
use crate::cache::ExpiringCache;
use crate::http_client::HttpClient;
use crate::{BoxFuture, Identity, ResolveError, ResolveRequest, Resolver};

/// Resolves JWTs to identities with one or more [`JwtConfig`]s. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct JwtResolver {
    verifiers: Arc<JwtVerifiers>,
}

struct JwtVerifiers {
    configs: Vec<Verifier>,
    /// Whether tokens must be routed by their unverified `iss` (several configs, one with an
    /// issuer).
    route_by_issuer: bool,
    cookies: Vec<String>,
}

/// One config, ready to verify.
struct Verifier {
    index: usize,
    header: config::JwtHeader,
    issuer: Option<String>,
    keys: Keys,
    /// The prebuilt validation for each algorithm this config accepts (for ES512, which
    /// jsonwebtoken lacks, only its leeway, audiences and issuers are read).
    validations: Vec<(JwtAlgorithm, Validation)>,
    claims: ClaimsRules,
    cache: ExpiringCache<[u8; 32], Cached>,
    cache_ttl: Duration,
    /// The key set generation whose departed keys were purged from the cache.
    purged: AtomicU64,
}

enum Keys {
    Static(Arc<VerifyKey>),
    Jwks(Arc<Jwks>),
}

#[derive(Clone)]
struct Cached {
    identity: Identity,
    /// The key that verified the token.
    fingerprint: [u8; 32],
}

/// What one config made of a token.
enum Verdict {
    Valid(Identity),
    Invalid(&'static str),
    Unavailable(String),
    /// Fetch the JWKS (the set held had this generation), then ask again.
    Refetch(Option<u64>),
}

/// The algorithms a JWKS key may have (never HS*: a public JWKS holds no shared secret).
const JWKS_ALGORITHMS: &[JwtAlgorithm] = &[
    JwtAlgorithm::RS256,
    JwtAlgorithm::RS384,
    JwtAlgorithm::RS512,
    JwtAlgorithm::PS256,
    JwtAlgorithm::PS384,
    JwtAlgorithm::PS512,
    JwtAlgorithm::ES256,
    JwtAlgorithm::ES384,
    JwtAlgorithm::ES512,
    JwtAlgorithm::EdDSA,
];

impl JwtResolver {
    /// Validates every config and starts fetching each JWKS (so it must run inside a Tokio
    /// runtime). `client` fetches the key sets (its roots: the platform's, `SSL_CERT_FILE`,
    /// any extra ones); each config's `http_timeout` bounds each fetch. Errors name the field,
    /// prefixed with `jwt[i].` when there are several configs.
    pub fn new(configs: Vec<JwtConfig>, client: HttpClient) -> Result<JwtResolver, JwtConfigError> {
        if configs.is_empty() {
            return Err(config_err("jwt", "no config given"));
        }
        let many = configs.len() > 1;
        let mut verifiers = Vec::with_capacity(configs.len());
        let mut spawn = Vec::new();
        for (index, cfg) in configs.iter().enumerate() {
            let checked = cfg.check().map_err(|e| {
                if many {
                    config_err(format!("jwt[{index}].{}", e.field), e.message)
                } else {
                    e
                }
            })?;
            let (keys, algorithms) = match checked.keys {
                KeySource::Static(k) => {
                    let algs = k.0.algorithms.clone();
                    (Keys::Static(k.0), algs)
                }
                KeySource::Jwks(url) => {
                    let jwks = Arc::new(Jwks::new(
                        JwksSettings {
                            url,
                            refresh_min: cfg.jwks_refresh_min,
                            refresh_max: cfg.jwks_refresh_max,
                            refetch_interval: cfg.jwks_refetch_interval,
                            timeout: cfg.http_timeout,
                        },
                        client.clone(),
                    ));
                    spawn.push(Arc::downgrade(&jwks));
                    // With a `type`, only that algorithm; else any the keys' own `alg` allow.
                    let algorithms = match cfg.algorithm {
                        Some(alg) => vec![alg],
                        None => JWKS_ALGORITHMS.to_vec(),
                    };
                    (Keys::Jwks(jwks), algorithms)
                }
            };
            let validations = algorithms
                .into_iter()
                .map(|alg| (alg, validation(cfg, alg)))
                .collect();
            let cache_entries = if cfg.cache_ttl.is_zero() {
                0
            } else {
                cfg.cache_entries
            };
            verifiers.push(Verifier {
                index,
                header: cfg.header.clone(),
                issuer: cfg.issuer.clone(),
                keys,
                validations,
                claims: checked.claims,
                cache: ExpiringCache::new(cache_entries),
                cache_ttl: cfg.cache_ttl,
                purged: AtomicU64::new(0),
            });
        }
        if !spawn.is_empty() {
            let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                config_err(
                    "jwk_url",
                    "JwtResolver::new must run inside a Tokio runtime (it spawns the JWKS fetch)",
                )
            })?;
            for jwks in spawn {
                handle.spawn(jwks::refresh_loop(jwks));
            }
        }
        let mut cookies: Vec<String> = Vec::new();
        for v in &verifiers {
            if let config::JwtHeader::Cookie { name } = &v.header {
                if !cookies.contains(name) {
                    cookies.push(name.clone());
                }
            }
        }
        let route_by_issuer = many && verifiers.iter().any(|v| v.issuer.is_some());
        Ok(JwtResolver {
            verifiers: Arc::new(JwtVerifiers {
                configs: verifiers,
                route_by_issuer,
                cookies,
            }),
        })
    }

    /// Waits until every JWKS's first fetch has ended; `Err` says which ones hold no usable
    /// key set (the resolver then answers 503 for JWTs those configs would read, and keeps
    /// retrying). Immediate for static keys.
    pub async fn ready(&self) -> Result<(), String> {
        for v in &self.verifiers.configs {
            if let Keys::Jwks(j) = &v.keys {
                j.settled().await;
            }
        }
        match self.not_ready_reason() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn not_ready_reason(&self) -> Option<String> {
        let reasons: Vec<String> = self
            .verifiers
            .configs
            .iter()
            .filter_map(|v| match &v.keys {
                Keys::Jwks(j) => j.not_ready(),
                Keys::Static(_) => None,
            })
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// One pass over the configs; `allow_refetch` = a `Refetch` verdict may be returned.
    fn attempt(&self, request: &ResolveRequest<'_>, allow_refetch: bool) -> Attempt {
        let bearer = request.bearer_token().map(|t| t.expose());
        let mut unavailable = None;
        let mut refetch = Vec::new();
        let mut issuer_of: Option<(&str, Option<String>)> = None;
        let mut digest_of: Option<(&str, [u8; 32])> = None;
        for v in &self.verifiers.configs {
            let token = match &v.header {
                config::JwtHeader::Authorization => bearer,
                config::JwtHeader::Cookie { name } if bearer.is_none() => {
                    match request.cookie(name) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::debug!(config = v.index, reason = %e, "JWT cookie ignored");
                            None
                        }
                    }
                }
                config::JwtHeader::Cookie { .. } => None,
            };
            let Some(token) = token else { continue };
            // One digest per token (the bearer token, or a cookie), hashed once.
            let digest = match digest_of {
                Some((t, d)) if t == token => d,
                _ => {
                    let d: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                    digest_of = Some((token, d));
                    d
                }
            };
            // A cache hit first: the common case costs no parsing at all.
            if let Some(identity) = v.cached(&digest) {
                return Attempt::Done(Ok(Some(identity)));
            }
            if self.verifiers.route_by_issuer {
                if let Some(want) = &v.issuer {
                    if issuer_of.as_ref().is_none_or(|(t, _)| *t != token) {
                        issuer_of = Some((token, unverified_issuer(token)));
                    }
                    let got = issuer_of.as_ref().and_then(|(_, iss)| iss.as_deref());
                    if got != Some(want.as_str()) {
                        continue;
                    }
                }
            }
            match v.verify(token, digest, allow_refetch) {
                Verdict::Valid(identity) => return Attempt::Done(Ok(Some(identity))),
                Verdict::Invalid(reason) => {
                    tracing::debug!(config = v.index, reason, "JWT refused");
                    // `reason` is one of a few fixed strings: a bounded label. An explained
                    // request is not counted.
                    if !request.is_dry_run() {
                        metrics::counter!("gateway_jwt_refused_total", "reason" => reason)
                            .increment(1);
                    }
                }
                Verdict::Unavailable(why) => unavailable = Some(why),
                Verdict::Refetch(seen) => refetch.push((v.index, seen)),
            }
        }
        if !refetch.is_empty() {
            return Attempt::Refetch(refetch);
        }
        match unavailable {
            Some(why) => Attempt::Done(Err(ResolveError::Unavailable(why))),
            None => Attempt::Done(Ok(None)),
        }
    }
}

enum Attempt {
    Done(Result<Option<Identity>, ResolveError>),
    Refetch(Vec<(usize, Option<u64>)>),
}

impl std::fmt::Debug for JwtResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtResolver")
            .field("configs", &self.verifiers.configs.len())
            .field("cookies", &self.verifiers.cookies)
            .finish_non_exhaustive()
    }
}

impl Resolver for JwtResolver {
    fn resolve<'a>(
        &'a self,
        request: &'a ResolveRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<Identity>, ResolveError>> {
        Box::pin(async move {
            // An explained request never makes the key set refetch (a fetch and its metric are
            // side effects): it is answered from the keys held now.
            match self.attempt(request, !request.is_dry_run()) {
                Attempt::Done(r) => r,
                Attempt::Refetch(list) => {
                    for (index, seen) in list {
                        if let Keys::Jwks(j) = &self.verifiers.configs[index].keys {
                            j.refetch(seen).await;
                        }
                    }
                    match self.attempt(request, false) {
                        Attempt::Done(r) => r,
                        // Unreachable: the second pass never asks for a refetch.
                        Attempt::Refetch(_) => Ok(None),
                    }
                }
            }
        })
    }

    fn resolve_now(
        &self,
        request: &ResolveRequest<'_>,
    ) -> Option<Result<Option<Identity>, ResolveError>> {
        match self.attempt(request, !request.is_dry_run()) {
            Attempt::Done(r) => Some(r),
            Attempt::Refetch(_) => None,
        }
    }

    fn resolves_without_credential(&self) -> bool {
        !self.verifiers.cookies.is_empty()
    }

    fn credential_cookies(&self) -> Vec<String> {
        self.verifiers.cookies.clone()
    }

    fn not_ready(&self) -> Option<String> {
        self.not_ready_reason()
    }
}

impl Verifier {
    /// The cached identity for this token digest, if its key is still held.
    fn cached(&self, digest: &[u8; 32]) -> Option<Identity> {
        let hit = self.cache.get(digest)?;
        let held = match &self.keys {
            Keys::Static(k) => k.fingerprint == hit.fingerprint,
            Keys::Jwks(j) => {
                let set = j.current()?;
                self.purge_departed(&set);
                set.holds(&hit.fingerprint)
            }
        };
        held.then_some(hit.identity)
    }

    fn verify(&self, token: &str, digest: [u8; 32], allow_refetch: bool) -> Verdict {
        let set = match &self.keys {
            Keys::Jwks(j) => {
                let Some(set) = j.current() else {
                    return if allow_refetch && j.may_refetch() {
                        Verdict::Refetch(None)
                    } else {
                        Verdict::Unavailable(
                            j.not_ready()
                                .unwrap_or_else(|| format!("JWKS {}: no key set", j.url())),
                        )
                    };
                };
                self.purge_departed(&set);
                Some(set)
            }
            Keys::Static(_) => None,
        };
        // `alg: none` and unknown algorithms fail here.
        let Some((alg, kid)) = token_header(token) else {
            return Verdict::Invalid("malformed token or unsupported alg");
        };
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == alg) else {
            return Verdict::Invalid("algorithm not allowed");
        };
        let outcome = match (&self.keys, &set) {
            (Keys::Static(key), _) => check(token, key, alg, validation),
            (Keys::Jwks(j), Some(set)) => {
                let kid = kid.as_deref();
                if let Some(kid) = kid {
                    if !set.may_verify(kid) {
                        return if allow_refetch && j.may_refetch() {
                            Verdict::Refetch(Some(set.generation))
                        } else {
                            Verdict::Invalid("unknown kid")
                        };
                    }
                }
                let mut outcome = Err("no key for the token's algorithm");
                for key in set.candidates(kid).filter(|k| k.allows(alg)) {
                    outcome = check(token, key, alg, validation);
                    // Only another key can help after a bad signature; every other failure
                    // is about the token itself.
                    if !matches!(outcome, Err("bad signature")) {
                        break;
                    }
                }
                outcome
            }
            (Keys::Jwks(_), None) => Err("no key set"),
        };
        let (payload, key) = match outcome {
            Ok(v) => v,
            Err(why) => return Verdict::Invalid(why),
        };
        let exp = payload
            .get("exp")
            .and_then(Value::as_f64)
            .filter(|e| e.is_finite() && *e >= 0.0)
            .map(|e| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(e.min(1e11)));
        let identity = match self.claims.identity(&payload, exp) {
            Ok(id) => id,
            Err(why) => {
                tracing::debug!(config = self.index, reason = %why, "JWT claims refused");
                return Verdict::Invalid("claims do not make an identity");
            }
        };
        if let Some(exp) = exp {
            if let Ok(left) = exp.duration_since(SystemTime::now()) {
                let until = Instant::now() + left.min(self.cache_ttl);
                self.cache.insert(
                    digest,
                    Cached {
                        identity: identity.clone(),
                        fingerprint: key.fingerprint,
                    },
                    until,
                );
            }
        }
        Verdict::Valid(identity)
    }

    /// Drops cached identities whose key left the set, once per new set.
    fn purge_departed(&self, set: &KeySet) {
        // Generations start at 0; `purged` stores generation + 1 so that 0 means "none yet".
        let mark = set.generation + 1;
        if self.purged.load(Ordering::Relaxed) != mark
            && self.purged.swap(mark, Ordering::Relaxed) != mark
        {
            self.cache.retain(|_, c| set.holds(&c.fingerprint));
        }
    }
}

const MISSING_CLAIM: &str = "a required claim (exp, aud, iss) is missing";

/// Verifies the signature (of algorithm `alg`) and the registered claims with `key`.
fn check<'k>(
    token: &str,
    key: &'k Arc<VerifyKey>,
    alg: JwtAlgorithm,
    validation: &Validation,
) -> Result<(Value, &'k Arc<VerifyKey>), &'static str> {
    let decoding = match (&key.key, alg) {
        (Material::P521(k), JwtAlgorithm::ES512) => {
            return es512(token, k, validation).map(|v| (v, key))
        }
        (Material::Jwt(k), alg) if alg != JwtAlgorithm::ES512 => k,
        _ => return Err("algorithm not allowed"),
    };
    match jsonwebtoken::decode::<Value>(token, decoding, validation) {
        Ok(data) => Ok((data.claims, key)),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => "bad signature",
            ErrorKind::ExpiredSignature => "expired",
            ErrorKind::ImmatureSignature => "not yet valid (nbf)",
            ErrorKind::InvalidAudience => "wrong audience",
            ErrorKind::InvalidIssuer => "wrong issuer",
            ErrorKind::InvalidAlgorithm => "algorithm not allowed",
            ErrorKind::MissingRequiredClaim(_) => MISSING_CLAIM,
            _ => "malformed token",
        }),
    }
}

/// An ES512 token: the signature with `p521`, then the registered claims as jsonwebtoken checks
/// them for the other algorithms (`validation`'s leeway, audiences and issuers).
fn es512(
    token: &str,
    key: &p521::ecdsa::VerifyingKey,
    validation: &Validation,
) -> Result<Value, &'static str> {
    use base64::Engine as _;
    use p521::ecdsa::signature::Verifier as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (message, signature) = token.rsplit_once('.').ok_or("malformed token")?;
    let signature = b64.decode(signature).map_err(|_| "malformed token")?;
    let signature = p521::ecdsa::Signature::from_slice(&signature).map_err(|_| "bad signature")?;
    key.verify(message.as_bytes(), &signature)
        .map_err(|_| "bad signature")?;
    let payload = message.split('.').nth(1).ok_or("malformed token")?;
    let payload = b64.decode(payload).map_err(|_| "malformed token")?;
    let payload: Value = serde_json::from_slice(&payload).map_err(|_| "malformed token")?;
    registered_claims(&payload, validation)?;
    Ok(payload)
}

/// `exp` (required), `nbf`, `aud` and `iss`, with the same rules and leeway as jsonwebtoken.
fn registered_claims(payload: &Value, v: &Validation) -> Result<(), &'static str> {
    let now = jsonwebtoken::get_current_timestamp() as f64;
    let leeway = v.leeway as f64;
    let number = |name: &str| {
        payload
            .get(name)
            .map(|n| n.as_f64().ok_or("malformed token"))
    };
    let exp = number("exp").ok_or(MISSING_CLAIM)??;
    if exp < now - leeway {
        return Err("expired");
    }
    if let Some(nbf) = number("nbf") {
        if nbf? > now + leeway {
            return Err("not yet valid (nbf)");
        }
    }
    if let Some(want) = &v.aud {
        let ok = match payload.get("aud") {
            None => return Err(MISSING_CLAIM),
            Some(Value::String(a)) => want.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str().is_some_and(|a| want.contains(a))),
            Some(_) => return Err("malformed token"),
        };
        if !ok {
            return Err("wrong audience");
        }
    }
    if let Some(want) = &v.iss {
        match payload.get("iss") {
            None => return Err(MISSING_CLAIM),
            Some(Value::String(i)) if want.contains(i) => {}
            Some(_) => return Err("wrong issuer"),
        }
    }
    Ok(())
}

/// The token's `alg` and `kid`, from its (unverified) header; `None` when the token is not
/// three segments, its header does not parse, or the algorithm is unknown (`none` included).
fn token_header(token: &str) -> Option<(JwtAlgorithm, Option<String>)> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct RawHeader {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }
    let mut parts = token.split('.');
    let (header, _, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let raw: RawHeader = serde_json::from_slice(&bytes).ok()?;
    // Only JOSE names: `Ed25519` is our config's alias, not a JWS `alg`.
    if raw.alg == "Ed25519" {
        return None;
    }
    let alg = serde_json::from_value(Value::String(raw.alg)).ok()?;
    Some((alg, raw.kid))
}

fn validation(cfg: &JwtConfig, alg: JwtAlgorithm) -> Validation {
    // ES512 has no jsonwebtoken algorithm: its Validation only carries the claim rules.
    let mut v = Validation::new(alg.verifier().unwrap_or(Algorithm::ES384));
    v.leeway = cfg.allowed_skew.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    // A configured audience or issuer is required in the token, not only checked when
    // present: a token the same identity provider minted for another API without `aud` must
    // not pass. (Stricter than Hasura, whose JOSE library lets a token without `aud` through.)
    match &cfg.audience {
        Some(aud) => {
            v.set_audience(aud.as_slice());
            v.required_spec_claims.insert("aud".to_owned());
        }
        // jsonwebtoken refuses a token with `aud` when no audience is set; Hasura does not
        // check `aud` unless configured.
        None => v.validate_aud = false,
    }
    if let Some(iss) = &cfg.issuer {
        v.set_issuer(&[iss]);
        v.required_spec_claims.insert("iss".to_owned());
    }
    v
}

/// The token's `iss`, read without verifying anything: it only picks which configs try it.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// Fuzz entry: token parsing and claims extraction never panic, and an identity they give has
/// its role among its allowed roles.
#[cfg(any(fuzzing, test))]
pub(crate) fn fuzz_claims(data: &[u8]) {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(data);
    let _ = jsonwebtoken::decode_header(&text);
    let _ = token_header(&text);
    let _ = unverified_issuer(&text);
    let _ = claims::JsonPath::parse(&text);
    let payload = text.split('.').nth(1).unwrap_or(&text);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_else(|_| data.to_vec());
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return;
    };
    for format in [ClaimsFormat::Json, ClaimsFormat::StringifiedJson] {
        let rules = ClaimsRules::namespace(DEFAULT_CLAIMS_NAMESPACE.to_owned(), format);
        if let Ok(id) = rules.identity(&value, None) {
            assert!(id.has_role(&id.role));
        }
    }
}
