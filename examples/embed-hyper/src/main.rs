//! `cargo run -p example-embed-hyper` prints a token; the upstream is `$UPSTREAM_URL` or `:9000`.
//! ```text
//! curl -H 'Host: data.localhost' -H 'Authorization: Bearer <token>' localhost:8080/
//! curl -H 'Host: data.localhost' localhost:8080/    # 401: anonymous is not allowed here
//! ```

use std::{sync::Arc, time::Duration};

use session_core::{MemoryStore, NewSession, SessionStore, StoreResolver};

#[tokio::main]
async fn main() -> Result<(), route_core::BoxError> {
    let upstream = std::env::var("UPSTREAM_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let store = Arc::new(MemoryStore::new());
    let session = NewSession {
        user_id: "alice".into(),
        roles: vec!["user".into()],
        ttl: Duration::from_secs(3600),
        ..Default::default()
    };
    let (token, _) = store.create(session).await?;
    let routes = [("data.localhost", upstream.as_str(), &["user"][..])];
    let gateway = example_embed_hyper::gateway(Arc::new(StoreResolver::new(store)), &routes)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("on http://127.0.0.1:8080, bearer token {}", token.expose()); // a demo: never do this
    Ok(example_embed_hyper::serve(listener, gateway).await?)
}
