//! The services admin API and the console: add, replace and remove services at run time.
//!
//! Everything here is served by the admin listener and, except the console's static files,
//! requires `Authorization: Bearer <admin secret>` like the rest of `/v1`.
//!
//! | Method and path | Answer |
//! | --- | --- |
//! | `GET /v1/services` | `200 {"version", "services": [...]}` with `ETag`: every service, the file's first |
//! | `GET /v1/services/{name}` | `200 {"version", "service"}` with `ETag`, or 404 |
//! | `POST /v1/services` | `201 {"version", "service"}` with `ETag` and `Location`; `If-Match` optional |
//! | `PUT /v1/services/{name}` | `200 {"version", "service"}` with `ETag`; `If-Match` required |
//! | `DELETE /v1/services/{name}` | `200 {"version", "deleted"}` with `ETag`; `If-Match` required |
//! | `GET /console`, `/console/app.js`, `/console/console.css` | the console (no secret needed to load it) |
//!
//! # A service as JSON
//!
//! The writable fields are those of a `[[services]]` table in the config file, with the same
//! defaults and the same validation: `name` (required, a DNS label), `subdomain` (the name by
//! default; a DNS label, `@` or `*`), `path_prefix`, `upstreams` (required, http(s) URLs with a
//! host), `allowed_roles` (role tokens; empty means every role, anonymous included),
//! `websocket` (true), `forward_credentials` (false), `session_issuer` (false), `http2`
//! (false), `cors` (true), `connect_timeout` ("5s"), `response_timeout` ("30s"),
//! `max_body_bytes` (the file's `limits.max_body_bytes`), `no_session_redirect`,
//! `no_access_redirect`. `GET` adds `origin` (`"file"` or `"api"`), `hosts`, `active` (false
//! for an API service whose name the file now also uses: the file wins) and `certificate`
//! (`null` until the TLS integration fills it in). Those read-only fields may be sent back in
//! a `PUT` unchanged; they are ignored. Any other field is refused.
//!
//! An invalid service is answered `422 {"error", "code": "invalid-field", "detail", "field"}`, where
//! `field` names the field (`upstreams[0]`, `allowed_roles[1]`, `subdomain`, ...). A subdomain
//! (with its path prefix) already served by another service is refused on `subdomain`. A name
//! used by another API service is `409 service-exists`; a name defined in the config file is
//! `409 service-in-config-file`: file services are changed by editing the file, never here.
//!
//! # Versions, `ETag` and `If-Match`
//!
//! The API's service list has one version number, which every successful change increases by
//! one and which is kept in the state file (so a restart never reuses a version). It is sent
//! as a strong `ETag` (`"7"`) and in the JSON body. `PUT` and `DELETE` require `If-Match`
//! (428 without it); `POST` honours it when present. A version other than the current one is
//! answered `412 version-mismatch` with the current `ETag`, so two writers that read the same
//! version can never both succeed. `If-Match: *` deliberately skips the check (the CLI's
//! `service remove` uses it unless given `--version`).
//!
//! # Durability
//!
//! When the gateway runs from a config file, the API's services are kept in `[admin]
//! services_file`, by default `gateway-services.json` in the config file's directory (see
//! [`state_path_for`]; the Debian package's config points it to `/var/lib/gateway`, since its
//! unit leaves `/etc` read-only), written
//! atomically (a temporary file with mode 0600, fsync, rename, fsync of the directory) before
//! the change is put in force, and loaded at start. The file is the gateway's own: edit the
//! config file instead. Without a config path (the quickstart, or an embedding that passes
//! none) the services are kept in memory only and are lost at exit.
//!
//! A change is applied with [`GatewayState::update_api_services`]: the route table is swapped
//! atomically, so in-flight requests finish on the table they started with, and a reload of
//! the config file (which keeps the API's services on top of the new file) can never lose one.
//!
//! # New names and certificates
//!
//! Every change, from the file or from this API, reaches TLS through
//! [`crate::tls::TlsRuntime::on_config`], which gives a new name a certificate (ACME orders it,
//! the development CA issues it). Other parts that need to follow the names can
//! [`ServicesApi::subscribe_names`]: a `watch` of every certificate name (the project's domains
//! and every service's host names), published at start and after every change made here.

mod console;
mod spec;
mod state;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path as UrlPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::admin::{check_admin, Secret};
use crate::config::{Config, Service};
use crate::reject;
use crate::state::GatewayState;

pub use state::{StateError, FILE_NAME};

/// Where the services state file of a config file lives when `[admin] services_file` is not
/// set: `gateway-services.json` in the config file's directory.
pub fn state_path_for(config_path: &Path) -> PathBuf {
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(FILE_NAME),
        _ => PathBuf::from(FILE_NAME),
    }
}

/// The services API's handle: the running gateway's [`GatewayState`], the state file and the
/// version. Cheap to clone.
#[derive(Clone)]
pub struct ServicesApi {
    inner: Arc<ServicesState>,
}

struct ServicesState {
    shared: GatewayState,
    state_path: Option<PathBuf>,
    /// Read and written only under `shared.rebuild_lock`, so that a version and the list it
    /// names always go together.
    version: AtomicU64,
    names: watch::Sender<Vec<String>>,
}

fn defaults(file: &Config) -> spec::Defaults<'_> {
    spec::Defaults {
        domains: &file.domains,
        max_body_bytes: file.limits.max_body_bytes,
    }
}

/// What a successful write did.
struct Applied {
    /// The new version.
    version: u64,
    /// The added or replaced service as `GET` lists it.
    service: Option<Value>,
}

/// What one write does.
enum Change {
    Add(Service),
    Replace(Service),
    Remove(String),
}

impl ServicesApi {
    /// Loads the state file (when there is one) and puts its services in force on top of the
    /// config file's. A missing file is an empty list; an unreadable or invalid one is an
    /// error, and the file is left as it is.
    pub fn open(
        shared: GatewayState,
        state_path: Option<PathBuf>,
    ) -> Result<ServicesApi, StateError> {
        let file = shared.file_config.load_full();
        let stored = match &state_path {
            Some(path) => state::load(path, &defaults(&file))?,
            None => state::Stored::default(),
        };
        let count = stored.services.len();
        if count > 0 {
            let services = stored.services;
            match shared.update_api_services(|_| Ok::<_, Infallible>(services)) {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(StateError::Build {
                        path: state_path.clone().unwrap_or_default(),
                        source,
                    })
                }
                Err(never) => match never {},
            }
        }
        match &state_path {
            Some(path) => tracing::info!(
                path = %path.display(),
                services = count,
                version = stored.version,
                "services added through the admin API are kept in the state file"
            ),
            None => tracing::info!(
                "no config file: services added through the admin API are kept in memory only"
            ),
        }
        let names = crate::tls::certificate_names(&shared.config.load());
        let (names, _) = watch::channel(names);
        Ok(ServicesApi {
            inner: Arc::new(ServicesState {
                shared,
                state_path,
                version: AtomicU64::new(stored.version),
                names,
            }),
        })
    }

    /// The version of the API's service list. Waits for a change in progress (which may be
    /// flushing the state file to disk).
    pub fn version(&self) -> u64 {
        let _guard = self.inner.shared.rebuild_lock.lock();
        self.inner.version.load(Ordering::Acquire)
    }

    /// The state file, or `None` when the services are kept in memory only.
    pub fn state_path(&self) -> Option<&Path> {
        self.inner.state_path.as_deref()
    }

    /// Every name that needs a certificate (the project's domains and every service's host
    /// names), as of the last change made through this API. The value is replaced, and
    /// receivers woken, only when the names change.
    pub fn subscribe_names(&self) -> watch::Receiver<Vec<String>> {
        self.inner.names.subscribe()
    }

    /// The API and the console, to merge into the admin router. `secret` is the admin
    /// secret; `None` refuses every API call.
    pub fn router(&self, secret: Option<Secret>) -> axum::Router {
        let state = ApiState {
            api: self.clone(),
            secret,
        };
        axum::Router::new()
            .route("/v1/services", get(list).post(create))
            .route(
                "/v1/services/{name}",
                get(get_one).put(replace).delete(remove),
            )
            .with_state(state)
            .merge(console::router())
    }

    /// The file's services and the API's, and the version, read together.
    fn snapshot(&self) -> (u64, Arc<Config>, Arc<Vec<Service>>) {
        let shared = &self.inner.shared;
        let _guard = shared.rebuild_lock.lock();
        (
            self.inner.version.load(Ordering::Acquire),
            shared.file_config.load_full(),
            shared.api_services.load_full(),
        )
    }

    /// [`Self::snapshot`] off the async threads: a writer may hold the lock through an fsync.
    async fn snapshot_async(&self) -> Result<(u64, Arc<Config>, Arc<Vec<Service>>), Refusal> {
        let api = self.clone();
        tokio::task::spawn_blocking(move || api.snapshot())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "services snapshot task failed");
                reject::response(session_core::rejection::INTERNAL_ERROR).into()
            })
    }

    fn publish_names(&self) {
        let names = crate::tls::certificate_names(&self.inner.shared.config.load());
        self.inner.names.send_if_modified(|current| {
            if *current == names {
                false
            } else {
                *current = names;
                true
            }
        });
    }

    /// Applies one change under the rebuild lock: precondition, existence, validation against
    /// every other service, a trial build, the state file, then the swap. Returns the new
    /// version and the changed service as listed. Blocking: run it off the async threads.
    fn apply(&self, expect: Option<&Precondition>, change: Change) -> Result<Applied, Refusal> {
        let inner = &self.inner;
        let shared = &inner.shared;
        let mut previous: Option<(u64, Vec<Service>)> = None;
        let mut new_version = 0;
        let mut listed = None;
        let outcome = shared.update_api_services(|current| {
            let version = inner.version.load(Ordering::Acquire);
            if let Some(p) = expect {
                if !p.matches(version) {
                    return Err(precondition_failed(version));
                }
            }
            let file = shared.file_config.load_full();
            let mut next = current.to_vec();
            let changed = match change {
                Change::Add(s) => {
                    if file.service(&s.name).is_some() {
                        return Err(in_config_file(&s.name));
                    }
                    if next.iter().any(|o| o.name == s.name) {
                        return Err(conflict(reject::SERVICE_EXISTS, &s.name));
                    }
                    next.push(s);
                    next.last().cloned()
                }
                Change::Replace(s) => {
                    let Some(i) = next.iter().position(|o| o.name == s.name) else {
                        return Err(missing(&file, &s.name));
                    };
                    next[i] = s;
                    Some(next[i].clone())
                }
                Change::Remove(name) => {
                    let Some(i) = next.iter().position(|o| o.name == name) else {
                        return Err(missing(&file, &name));
                    };
                    next.remove(i);
                    None
                }
            };
            let effective = GatewayState::effective(&file, &next);
            if let Some(s) = &changed {
                check_free(s, &effective)?;
            }
            // The swap builds the same table; building it here first means that a refusal
            // is a 422 before anything is written, not a state file that cannot be served.
            if let Err(e) = crate::stack::route_table(&effective, &shared.parts) {
                return Err(unprocessable("subdomain", &e.to_string()));
            }
            let version_after = version + 1;
            if let Some(path) = &inner.state_path {
                if let Err(e) = state::save(path, version_after, &next) {
                    tracing::error!(error = %e, "services change refused: the state file cannot be written");
                    return Err(reject::response(reject::STATE_WRITE_FAILED)
                    .into());
                }
            }
            listed = changed.as_ref().map(|s| self.listing(&file, s));
            previous = Some((version, current.to_vec()));
            inner.version.store(version_after, Ordering::Release);
            new_version = version_after;
            Ok(next)
        });
        match outcome {
            Err(refusal) => Err(refusal),
            Ok(Ok(())) => {
                self.publish_names();
                Ok(Applied {
                    version: new_version,
                    service: listed,
                })
            }
            Ok(Err(e)) => {
                // Unreachable in practice (the same table was just built); put back what was
                // there so that the file and the version match what is served.
                tracing::error!(error = %e, "services change could not be applied");
                if let Some((version, services)) = previous {
                    let _guard = shared.rebuild_lock.lock();
                    if inner.version.load(Ordering::Acquire) == new_version {
                        if let Some(path) = &inner.state_path {
                            if let Err(e) = state::save(path, version, &services) {
                                tracing::error!(error = %e, "cannot restore the services state file");
                            }
                        }
                        inner.version.store(version, Ordering::Release);
                    }
                }
                Err(reject::with_detail(reject::APPLY_FAILED, &e.to_string(), &[]).into())
            }
        }
    }

    fn listing(&self, file: &Config, s: &Service) -> Value {
        let active = s.origin == crate::config::Origin::File || file.service(&s.name).is_none();
        let mut v = spec::to_listing(s, &file.domains, active);
        if let (Some(tls), Value::Object(map)) = (&self.inner.shared.tls, &mut v) {
            // The certificate of the service's name under the primary domain.
            if let Some(host) = s.host_patterns(&file.domains).first() {
                map.insert("certificate".into(), tls.certificate_status(host));
            }
        }
        v
    }
}

/// Refuses a service whose subdomain and path prefix another service already serves.
fn check_free(s: &Service, effective: &Config) -> Result<(), Refusal> {
    if let Some(other) = effective
        .services
        .iter()
        .find(|o| o.name != s.name && o.subdomain == s.subdomain && o.path_prefix == s.path_prefix)
    {
        let whose = match other.origin {
            crate::config::Origin::File => "the config file's service",
            crate::config::Origin::Api => "service",
        };
        let mut what = format!("`{}`", s.subdomain);
        if let Some(p) = &s.path_prefix {
            what.push_str(&format!(" with path prefix `{p}`"));
        }
        return Err(unprocessable(
            "subdomain",
            &format!("{what} is already served by {whose} `{}`", other.name),
        ));
    }
    Ok(())
}

/// What `If-Match` asks for.
#[derive(Debug, PartialEq, Eq)]
enum Precondition {
    /// `*`: whatever the current version is.
    Any,
    /// One of these versions (weak or unreadable tags never match).
    Versions(Vec<u64>),
}

impl Precondition {
    fn from_headers(headers: &HeaderMap) -> Option<Precondition> {
        let mut versions = Vec::new();
        let mut present = false;
        for value in headers.get_all(http::header::IF_MATCH) {
            present = true;
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split(',').map(str::trim) {
                if tag == "*" {
                    return Some(Precondition::Any);
                }
                // If-Match compares strongly: a weak tag never matches.
                if tag.starts_with("W/") {
                    continue;
                }
                if let Ok(v) = tag.trim_matches('"').parse::<u64>() {
                    versions.push(v);
                }
            }
        }
        present.then_some(Precondition::Versions(versions))
    }

    fn matches(&self, version: u64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Versions(v) => v.contains(&version),
        }
    }
}

fn etag(version: u64) -> HeaderValue {
    // Digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(mut res: Response, version: u64) -> Response {
    res.headers_mut().insert(http::header::ETAG, etag(version));
    res.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    res
}

/// An expected refusal, already a response (boxed: it travels through `Result`s).
struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(res: Response) -> Refusal {
        Refusal(Box::new(res))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

fn unprocessable(field: &str, message: &str) -> Refusal {
    reject::with_detail(reject::INVALID_FIELD, message, &[("field", json!(field))]).into()
}

/// A conflict about the service's name.
fn conflict(rejection: reject::Rejection, name: &str) -> Refusal {
    reject::with_detail(
        rejection,
        &format!("service `{name}`"),
        &[("field", json!("name"))],
    )
    .into()
}

fn in_config_file(name: &str) -> Refusal {
    conflict(reject::SERVICE_IN_CONFIG_FILE, name)
}

fn missing(file: &Config, name: &str) -> Refusal {
    if file.service(name).is_some() {
        in_config_file(name)
    } else {
        reject::with_detail(
            reject::UNKNOWN_SERVICE,
            &format!("no service named `{name}`"),
            &[],
        )
        .into()
    }
}

fn precondition_failed(version: u64) -> Refusal {
    let res = reject::with_detail(
        reject::VERSION_MISMATCH,
        &format!("the current version is {version}"),
        &[("current_version", json!(version))],
    );
    with_etag(res, version).into()
}

fn precondition_required() -> Refusal {
    reject::response(reject::IF_MATCH_REQUIRED).into()
}

/// The router's state.
#[derive(Clone)]
struct ApiState {
    api: ServicesApi,
    secret: Option<Secret>,
}

/// Proof that the request carried the admin secret.
struct Admin;

impl FromRequestParts<ApiState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        check_admin(&parts.headers, state.secret.as_ref())
            .map(|_| Admin)
            .map_err(|r| *r)
    }
}

fn read_json(body: &Bytes) -> Result<Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        reject::with_detail(
            reject::INVALID_JSON,
            &format!("the body must be a JSON service object: {e}"),
            &[],
        )
        .into()
    })
}

/// Runs a change off the async threads: it takes the rebuild lock and writes to disk.
async fn run_change(
    api: &ServicesApi,
    expect: Option<Precondition>,
    change: Change,
) -> Result<Applied, Refusal> {
    let api = api.clone();
    match tokio::task::spawn_blocking(move || api.apply(expect.as_ref(), change)).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "services change task failed");
            Err(reject::response(session_core::rejection::INTERNAL_ERROR).into())
        }
    }
}

async fn list(_: Admin, State(state): State<ApiState>) -> Response {
    let (version, file, api) = match state.api.snapshot_async().await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let services: Vec<Value> = file
        .services
        .iter()
        .chain(api.iter())
        .map(|s| state.api.listing(&file, s))
        .collect();
    let body = json!({
        "version": version,
        "persisted": state.api.state_path().is_some(),
        "services": services,
    });
    with_etag(axum::Json(body).into_response(), version)
}

async fn get_one(
    _: Admin,
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let (version, file, api) = match state.api.snapshot_async().await {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let found = file
        .service(&name)
        .or_else(|| api.iter().find(|s| s.name == name));
    match found {
        Some(s) => {
            let body = json!({ "version": version, "service": state.api.listing(&file, s) });
            with_etag(axum::Json(body).into_response(), version)
        }
        None => reject::with_detail(
            reject::UNKNOWN_SERVICE,
            &format!("no service named `{name}`"),
            &[],
        ),
    }
}

fn parse_service(state: &ApiState, value: &Value) -> Result<Service, Refusal> {
    let file = state.api.inner.shared.file_config.load_full();
    spec::parse(value, &defaults(&file)).map_err(|e| unprocessable(&e.field, &e.message))
}

fn written(status: StatusCode, applied: Applied, name: &str) -> Response {
    let Applied { version, service } = applied;
    let mut res = (
        status,
        axum::Json(json!({ "version": version, "service": service })),
    )
        .into_response();
    if status == StatusCode::CREATED {
        if let Ok(location) = HeaderValue::from_str(&format!("/v1/services/{name}")) {
            res.headers_mut().insert(http::header::LOCATION, location);
        }
    }
    with_etag(res, version)
}

async fn create(
    _: Admin,
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let value = read_json(&body)?;
        let service = parse_service(&state, &value)?;
        let name = service.name.clone();
        let expect = Precondition::from_headers(&headers);
        let applied = run_change(&state.api, expect, Change::Add(service)).await?;
        tracing::info!(service = %name, version = applied.version, "service added through the admin API");
        Ok::<_, Refusal>(written(StatusCode::CREATED, applied, &name))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn replace(
    _: Admin,
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let mut value = read_json(&body)?;
        if let Value::Object(map) = &mut value {
            match map.get("name") {
                None | Some(Value::Null) => {
                    map.insert("name".into(), Value::String(name.clone()));
                }
                Some(Value::String(n)) if *n == name => {}
                Some(_) => {
                    return Err(unprocessable(
                        "name",
                        "must be the name in the URL (a service cannot be renamed: add the new one and remove the old one)",
                    ))
                }
            }
        }
        let expect = Precondition::from_headers(&headers).ok_or_else(precondition_required)?;
        let service = parse_service(&state, &value)?;
        let applied = run_change(&state.api, Some(expect), Change::Replace(service)).await?;
        tracing::info!(service = %name, version = applied.version, "service replaced through the admin API");
        Ok(written(StatusCode::OK, applied, &name))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn remove(
    _: Admin,
    State(state): State<ApiState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(expect) = Precondition::from_headers(&headers) else {
        return precondition_required().into_response();
    };
    match run_change(&state.api, Some(expect), Change::Remove(name.clone())).await {
        Ok(Applied { version, .. }) => {
            tracing::info!(service = %name, version, "service removed through the admin API");
            let body = json!({ "version": version, "deleted": name });
            with_etag(axum::Json(body).into_response(), version)
        }
        Err(r) => r.into_response(),
    }
}
