//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// An API gateway: sessions, subdomain routing, role authorization and TLS.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// The config file.
        #[arg(long, short, default_value = "gateway.toml", env = "GATEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file: exit 0 when valid, 64 with every problem listed when not.
    Check {
        /// The config file.
        #[arg(long, short, default_value = "gateway.toml", env = "GATEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Manage sessions through the admin API.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Manage a user's sessions through the admin API.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect and renew TLS certificates.
    #[command(subcommand)]
    Cert(CertCommand),
}

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin listener's URL.
    #[arg(
        long,
        env = "GATEWAY_ADMIN_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    pub admin_url: String,
    /// A file holding the admin secret (otherwise GATEWAY_ADMIN_SECRET is read).
    #[arg(long)]
    pub admin_secret_file: Option<PathBuf>,
}

/// `gateway session ...`
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session and print its token.
    Create {
        /// The user id.
        #[arg(long)]
        user_id: String,
        /// The allowed roles, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// The default role (the first role otherwise).
        #[arg(long)]
        default_role: Option<String>,
        /// The lifetime in seconds (the configured TTL otherwise).
        #[arg(long)]
        ttl: Option<u64>,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List a user's sessions.
    List {
        /// The user id.
        #[arg(long)]
        user_id: String,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke one session by its token. Pass `-` to read the token from standard input, which
    /// keeps it out of the process list and shell history.
    Revoke {
        /// The session token, or `-`.
        #[arg(long, env = "GATEWAY_SESSION_TOKEN", hide_env_values = true)]
        token: String,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// `gateway user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Revoke every session of a user.
    RevokeSessions {
        /// The user id.
        #[arg(long)]
        user_id: String,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// `gateway cert ...`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// List certificates: names, issuers, notAfter and next renewal. With `--config`, reads
    /// the certificate store on disk (no running gateway needed); otherwise asks the admin API.
    List {
        /// Read the store of this config's `tls.dir` instead of asking a running gateway.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Force the renewal of one name now (ACME), through the running gateway.
    Renew {
        /// The certificate's name.
        name: String,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
}
