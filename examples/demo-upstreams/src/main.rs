//! Run with cargo run -p example-demo-upstreams -- --listen 127.0.0.1:4001 --service data

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use example_demo_upstreams::{admin_router, echo_router, serve};

/// The gateway quickstart's example upstreams.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,

    /// Which service to run.
    #[arg(long, value_enum)]
    service: Service,
}

#[derive(Clone, Copy, ValueEnum)]
enum Service {
    /// Echoes every request back as JSON (shows the injected identity headers).
    Data,
    /// The admin-only demo service.
    Admin,
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

    let (name, router) = match cli.service {
        Service::Data => ("data", echo_router("data")),
        Service::Admin => ("admin", admin_router()),
    };
    let listener = match tokio::net::TcpListener::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %cli.listen, service = name, "demo upstream listening");

    tokio::select! {
        result = serve(listener, router) => {
            if let Err(error) = result {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    ExitCode::SUCCESS
}
