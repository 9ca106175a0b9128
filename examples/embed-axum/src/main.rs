//! Run with `cargo run -p example-embed-axum`
//!
//! An axum app behind `SessionLayer`, with `RequireRoleLayer` on `/admin`. It mints two demo
//! sessions at startup and prints curl commands that use them.

use std::sync::Arc;
use std::time::Duration;

use example_embed_axum::app;
use session_core::{MemoryStore, NewSession, SessionStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    store.spawn_sweeper(Duration::from_secs(1));
    let mut tokens = Vec::new();
    for (user, roles) in [("alice", vec!["user"]), ("root", vec!["user", "admin"])] {
        let (token, _) = store
            .create(NewSession {
                user_id: user.into(),
                roles: roles.into_iter().map(Into::into).collect(),
                default_role: None,
                ttl: Duration::from_secs(3600),
            })
            .await?;
        tokens.push((user, token));
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("  curl -s localhost:3000/");
    for (user, token) in &tokens {
        // Demo only: a real service never prints tokens.
        println!(
            "  curl -s -H 'Authorization: Bearer {}' -H 'X-Hasura-Role: admin' localhost:3000/admin   # {user}",
            token.expose()
        );
    }
    axum::serve(listener, app(Arc::new(store))).await?;
    Ok(())
}
