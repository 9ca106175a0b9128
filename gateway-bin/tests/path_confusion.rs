//! SECURITY-CASES 37 against the running binary: a path that another common reading (`;`
//! segment parameters dropped, case folded, percent-decoded first) would send to a
//! `path_prefix` route with different `allowed_roles` gets 400 `ambiguous-path`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// One subdomain, `app`, with three services: the root for every signed-in or anonymous
/// user, `/admin` for admins only, and `/docs` with the root's roles in another order (the
/// same policy, so never ambiguous with the root).
fn config(up: &str) -> String {
    format!(
        r#"
[project]
domains = ["{DOMAIN}"]

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[log]
format = "json"
level = "info"

[[services]]
name = "app"
upstreams = ["{up}"]
allowed_roles = ["anonymous", "user", "admin"]

[[services]]
name = "app-admin"
subdomain = "app"
path_prefix = "/admin"
upstreams = ["{up}"]
allowed_roles = ["admin"]

[[services]]
name = "app-docs"
subdomain = "app"
path_prefix = "/docs"
upstreams = ["{up}"]
allowed_roles = ["admin", "anonymous", "user"]
"#
    )
}

fn get(port: u16, path: &str, extra: &str) -> String {
    raw(
        port,
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n",
            host("app")
        )
        .as_bytes(),
    )
}

/// Readings of `/admin/...` that Tomcat and Spring (`;` parameters), case-insensitive servers
/// and servers that decode first would route to the admin-only service, while the gateway's
/// own reading picks the public root: 400, and the upstream sees nothing. Before the fix each
/// of them reached the root service's upstream with 200 (the first assertion failed on
/// `/admin;x/users`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_37_other_readings_of_a_restricted_prefix_get_400() {
    let up = Upstream::start().await;
    let g = Gateway::start(&config(&up.url()), 0, 0);
    let user = create_session(&g, "7", &["user"], None).await;
    for auth in [String::new(), format!("Authorization: Bearer {user}\r\n")] {
        for path in [
            "/admin;x/users",
            "/admin;/users",
            "/admin;jsessionid=0123/users",
            "/;x/admin/users",
            "/ADMIN/users",
            "/Admin/users",
            "/aDmIn;x/users",
            "/%41DMIN/users",
            "/%61dmin;x/users",
            "/admin%3bx/users",
            "/admin%3Bx/users",
            "/%41dmin%3B/users",
            "/docs/%252e%252e/admin/users",
        ] {
            let before = up.count();
            let res = get(g.http, path, &auth);
            assert_eq!(status_of(&res), 400, "{path}: {res}");
            assert!(res.contains("\"code\":\"ambiguous-path\""), "{path}: {res}");
            assert_eq!(up.count(), before, "{path} reached the upstream");
        }
    }
}

/// The rule is narrow: the admin route itself, paths whose other readings stay within one
/// policy (`/docs` has the root's roles), and paths with no other reading are served as
/// before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_37_unambiguous_paths_are_served_as_before() {
    let up = Upstream::start().await;
    let g = Gateway::start(&config(&up.url()), 0, 0);
    let admin = create_session(&g, "1", &["admin"], None).await;
    let admin = format!("Authorization: Bearer {admin}\r\n");
    for (path, auth, status, seen) in [
        // The admin route: anonymous gets the role check's 401, an admin goes through.
        ("/admin/users", "", 401, None),
        ("/admin/users", admin.as_str(), 200, Some("/admin/users")),
        (
            "/admin/Users;v=1",
            admin.as_str(),
            200,
            Some("/admin/Users;v=1"),
        ),
        // Same policy as the root: not ambiguous.
        ("/DOCS/intro", "", 200, Some("/DOCS/intro")),
        ("/docs;v=2/intro", "", 200, Some("/docs;v=2/intro")),
        // No reading reaches another route.
        ("/Users/Profile", "", 200, Some("/Users/Profile")),
        ("/public;v=1/app.js", "", 200, Some("/public;v=1/app.js")),
        ("/administrator", "", 200, Some("/administrator")),
        ("/a%20b", "", 200, Some("/a%20b")),
    ] {
        let res = get(g.http, path, auth);
        assert_eq!(status_of(&res), status, "{path}: {res}");
        if let Some(want) = seen {
            assert_eq!(up.last().uri, want, "{path}");
        }
    }
}
