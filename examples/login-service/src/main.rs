//! Run with cargo run -p example-login-service -- --listen 127.0.0.1:3001 [--users users.toml]
//!
//! Make a password hash for a users file with
//! `cargo run -p example-login-service -- hash-password` (reads the password
//! from stdin).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use example_login_service::{hash_password, serve, Users};

/// The exit status for a bad configuration (BSD `EX_USAGE`).
const EXIT_CONFIG: u8 = 64;

/// Example login service: sits behind the gateway as a session issuer.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,

    /// TOML users file (username, user_id, roles, default_role, password_hash).
    /// Without it, the demo users alice and bob are used.
    #[arg(long)]
    users: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Read a password from stdin (first line) and print its argon2 PHC hash.
    HashPassword,
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

    if let Some(Command::HashPassword) = cli.command {
        return hash_from_stdin();
    }

    let users = match load_users(cli.users.as_deref()) {
        Ok(users) => users,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let listener = match tokio::net::TcpListener::bind(cli.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %cli.listen, users = users.len(), "login service listening");

    tokio::select! {
        result = serve(listener, users) => {
            if let Err(error) = result {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    ExitCode::SUCCESS
}

fn load_users(path: Option<&std::path::Path>) -> Result<Users, String> {
    let Some(path) = path else {
        return Users::demo().map_err(|e| e.to_string());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Users::from_toml_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn hash_from_stdin() -> ExitCode {
    let mut line = String::new();
    if let Err(error) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("error: cannot read the password from stdin: {error}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: empty password (type it on stdin, then Enter)");
        return ExitCode::from(EXIT_CONFIG);
    }
    match hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
