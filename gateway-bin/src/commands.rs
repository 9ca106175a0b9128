//! The CLI's admin-API commands.

use std::io::Read;
use std::process::ExitCode;

use http::Method;
use serde_json::json;

use crate::cli::{AdminArgs, CertCommand, ServiceCommand, SessionCommand, UserCommand};
use crate::client;

async fn admin_call(
    admin: &AdminArgs,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    header: Option<(&'static str, String)>,
) -> ExitCode {
    let secret = match client::admin_secret(admin.admin_secret_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(2);
        }
    };
    match client::call(&admin.admin_url, &secret, method, path, body, header).await {
        Ok((status, body)) => {
            let text = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            if status.is_success() {
                if !text.is_empty() {
                    println!("{text}");
                }
                ExitCode::SUCCESS
            } else {
                eprintln!("gateway: the admin API answered {status}: {text}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A token given on the command line, or read from standard input for `-` (which keeps it out
/// of the process list and shell history).
fn token_arg(token: String) -> Result<String, ExitCode> {
    if token != "-" {
        return Ok(token);
    }
    let mut s = String::new();
    if std::io::stdin().read_to_string(&mut s).is_err() {
        eprintln!("gateway: cannot read the token from standard input");
        return Err(ExitCode::from(2));
    }
    Ok(s.trim().to_owned())
}

/// Percent-encodes a user id for a URL path segment.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `gateway session ...`
pub async fn session(cmd: SessionCommand) -> ExitCode {
    match cmd {
        SessionCommand::Create {
            user_id,
            roles,
            default_role,
            ttl,
            admin,
        } => {
            let body = json!({ "user_id": user_id, "roles": roles, "default_role": default_role, "ttl_seconds": ttl });
            admin_call(&admin, Method::POST, "/v1/sessions", Some(body), None).await
        }
        SessionCommand::List { user_id, admin } => {
            admin_call(
                &admin,
                Method::GET,
                &format!("/v1/users/{}/sessions", segment(&user_id)),
                None,
                None,
            )
            .await
        }
        SessionCommand::Revoke { token, admin } => {
            let token = match token_arg(token) {
                Ok(t) => t,
                Err(code) => return code,
            };
            admin_call(
                &admin,
                Method::DELETE,
                "/v1/sessions/current",
                None,
                Some(("x-gateway-session-token", token)),
            )
            .await
        }
    }
}

/// `gateway user ...`
pub async fn user(cmd: UserCommand) -> ExitCode {
    match cmd {
        UserCommand::RevokeSessions { user_id, admin } => {
            admin_call(
                &admin,
                Method::DELETE,
                &format!("/v1/users/{}/sessions", segment(&user_id)),
                None,
                None,
            )
            .await
        }
    }
}

/// `gateway cert ...`
pub async fn cert(cmd: CertCommand) -> ExitCode {
    match cmd {
        CertCommand::List {
            config: Some(path), ..
        } => {
            let config = match crate::config::Config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(64);
                }
            };
            let dir = config.tls.dir.join("acme");
            let store = match cert_core::DirStore::open(&dir) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "gateway: cannot open the certificate store {}: {e}",
                        dir.display()
                    );
                    return ExitCode::FAILURE;
                }
            };
            match cert_core::list_stored(&store, 1.0 / 3.0).await {
                Ok(list) => {
                    println!(
                        "{:<40} {:<40} {:<22} NEXT RENEWAL",
                        "NAME", "ISSUER", "NOT AFTER"
                    );
                    for c in list {
                        let t = |t: Option<std::time::SystemTime>| {
                            t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
                                .unwrap_or_else(|| "-".into())
                        };
                        println!(
                            "{:<40} {:<40} {:<22} {}",
                            c.name,
                            c.issuer.unwrap_or_else(|| "-".into()),
                            t(c.not_after),
                            t(c.next_renewal)
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gateway: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        CertCommand::List {
            config: None,
            admin,
        } => admin_call(&admin, Method::GET, "/v1/certs", None, None).await,
        CertCommand::Renew { name, admin } => {
            admin_call(
                &admin,
                Method::POST,
                &format!("/v1/certs/{}/renew", segment(&name)),
                None,
                None,
            )
            .await
        }
    }
}

/// `gateway service ...`
pub async fn service(cmd: ServiceCommand) -> ExitCode {
    match cmd {
        ServiceCommand::List { json: true, admin } => {
            admin_call(&admin, Method::GET, "/v1/services", None, None).await
        }
        ServiceCommand::List { json: false, admin } => service_table(&admin).await,
        ServiceCommand::Add {
            name,
            subdomain,
            path_prefix,
            upstreams,
            roles,
            websocket,
            forward_credentials,
            admin,
        } => {
            let body = json!({
                "name": name,
                "subdomain": subdomain,
                "path_prefix": path_prefix,
                "upstreams": upstreams,
                "allowed_roles": roles,
                "websocket": websocket,
                "forward_credentials": forward_credentials,
            });
            admin_call(&admin, Method::POST, "/v1/services", Some(body), None).await
        }
        ServiceCommand::Remove {
            name,
            version,
            admin,
        } => {
            let if_match = version.map_or_else(|| "*".to_owned(), |v| format!("\"{v}\""));
            admin_call(
                &admin,
                Method::DELETE,
                &format!("/v1/services/{}", segment(&name)),
                None,
                Some(("if-match", if_match)),
            )
            .await
        }
    }
}

/// `gateway service list`: one line per service.
async fn service_table(admin: &AdminArgs) -> ExitCode {
    let secret = match client::admin_secret(admin.admin_secret_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let (status, body) = match client::call(
        &admin.admin_url,
        &secret,
        Method::GET,
        "/v1/services",
        None,
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let Some(v) = parsed.filter(|_| status.is_success()) else {
        eprintln!(
            "gateway: the admin API answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        return ExitCode::FAILURE;
    };
    let list = |v: &serde_json::Value| -> String {
        let items: Vec<&str> = v
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(",")
        }
    };
    println!(
        "{:<20} {:<20} {:<6} {:<36} ROLES",
        "NAME", "SUBDOMAIN", "ORIGIN", "UPSTREAMS"
    );
    for s in v["services"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let mut origin = s["origin"].as_str().unwrap_or("-").to_owned();
        if s["active"] == json!(false) {
            origin.push('*');
        }
        let roles = match list(&s["allowed_roles"]).as_str() {
            "-" => "(every role)".to_owned(),
            r => r.to_owned(),
        };
        let mut sub = s["subdomain"].as_str().unwrap_or("-").to_owned();
        if let Some(p) = s["path_prefix"].as_str() {
            sub.push_str(p);
        }
        println!(
            "{:<20} {:<20} {:<6} {:<36} {}",
            s["name"].as_str().unwrap_or("-"),
            sub,
            origin,
            list(&s["upstreams"]),
            roles
        );
    }
    println!(
        "version {}{}",
        v["version"],
        if v["services"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["active"] == json!(false)))
        {
            " (* an API service shadowed by the config file's service of the same name)"
        } else {
            ""
        }
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_ids_are_escaped_in_paths() {
        assert_eq!(super::segment("a/b c"), "a%2Fb%20c");
        assert_eq!(super::segment("user-1_x.y~"), "user-1_x.y~");
    }
}

/// What `gateway explain` was given.
#[derive(Debug)]
pub struct ExplainArgs {
    /// The request's URL.
    pub url: String,
    /// The method.
    pub method: String,
    /// A bearer token, or `-` for standard input.
    pub token: Option<String>,
    /// The role to ask for.
    pub role: Option<String>,
    /// The client address to assume.
    pub client: Option<std::net::IpAddr>,
    /// Print the JSON answer.
    pub json: bool,
    /// How to reach the admin API.
    pub admin: AdminArgs,
}

/// `gateway explain`: asks `POST /v1/explain` and prints the decision for people.
pub async fn explain(args: ExplainArgs) -> ExitCode {
    let token = match args.token.map(token_arg).transpose() {
        Ok(t) => t.filter(|t| !t.is_empty()),
        Err(code) => return code,
    };
    let mut headers = serde_json::Map::new();
    if let Some(t) = token {
        headers.insert("authorization".into(), format!("Bearer {t}").into());
    }
    let mut body = serde_json::json!({
        "method": args.method,
        "url": args.url,
        "headers": headers,
    });
    if let Some(r) = args.role {
        // Sent in the gateway's configured role header.
        body["role"] = r.into();
    }
    if let Some(c) = args.client {
        body["client"] = c.to_string().into();
    }
    let secret = match client::admin_secret(args.admin.admin_secret_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let answer = client::call(
        &args.admin.admin_url,
        &secret,
        Method::POST,
        "/v1/explain",
        Some(body),
        None,
    )
    .await;
    let (status, bytes) = match answer {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
    let Some(v) = parsed.filter(|_| status.is_success()) else {
        eprintln!(
            "gateway: the admin API answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        return ExitCode::FAILURE;
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        );
    } else {
        print!("{}", explain_text(&v));
    }
    ExitCode::SUCCESS
}

/// The explain answer as a few lines for people.
fn explain_text(v: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = String::new();
    let verdict = s(&v["verdict"]).to_uppercase();
    let status = v["status"]
        .as_u64()
        .map_or("proxied to the upstream".to_owned(), |n| {
            format!("answered {n}")
        });
    out.push_str(&format!(
        "verdict:    {verdict} ({}), {status}\n",
        s(&v["reason"])
    ));
    out.push_str(&format!("why:        {}\n", s(&v["message"])));
    if let Some(d) = v["detail"].as_str() {
        out.push_str(&format!("detail:     {d}\n"));
    }
    match v["route"].as_object() {
        Some(r) => out.push_str(&format!(
            "route:      service {} -> {}{}\n",
            r.get("service").map_or("-".into(), s),
            r.get("upstream").map_or("-".into(), s),
            match r.get("allowed_roles").and_then(|a| a.as_array()) {
                Some(a) if a.is_empty() => " (every role)".to_owned(),
                Some(a) => format!(
                    " (allows {})",
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                None => String::new(),
            }
        )),
        None => out.push_str("route:      none\n"),
    }
    out.push_str(&format!(
        "credential: {} (resolver: {})\n",
        s(&v["credential"]),
        s(&v["resolver"])
    ));
    if let Some(i) = v["identity"].as_object() {
        let roles = i
            .get("allowed_roles")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "identity:   user {} role {} (asked for {}; allowed {roles})\n",
            i.get("user_id").map_or("-".into(), s),
            i.get("role").map_or("-".into(), s),
            i.get("requested_role").map_or("-".into(), s),
        ));
    }
    out
}
