//! Run with cargo run -p example-web-app -- --listen 127.0.0.1:4003
//!
//! Then route a gateway service with `subdomain = "app"` to it, next to the login service
//! (`auth`, `session_issuer = true`) and the demo echo service (`data`).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

/// Example browser app for the gateway.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4003")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let listener = match tokio::net::TcpListener::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %cli.listen, "web app listening");
    match example_web_app::serve(listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
