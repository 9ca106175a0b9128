//! The command line.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

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
        /// Threads that serve requests; the default is one per CPU. Each runs its own
        /// event loop (a tokio current-thread runtime) accepting on the same listening
        /// sockets, as nginx runs a worker per core: per request this is the cheapest
        /// shape, and a connection stays on the thread that accepted it.
        #[arg(long, env = "GATEWAY_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Serve on tokio's work-stealing runtime with `--threads` workers instead: idle
        /// threads take work from busy ones, at a cost per request (bench/README.md, "The
        /// runtime's shape"). For loads whose connections differ widely in cost.
        #[arg(long, env = "GATEWAY_WORK_STEALING")]
        work_stealing: bool,
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
    /// List, add and remove services at run time through the admin API.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Ask the running gateway what it would decide about a request (POST /v1/explain):
    /// the route, who the credential resolves to, and the verdict with its reason. Nothing is
    /// proxied and nothing changes (no session touched, no metric counted).
    Explain {
        /// The request's URL (`https://data.example.com/path`).
        #[arg(long)]
        url: String,
        /// The method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// A bearer token to send, or `-` to read it from standard input (keeps it out of
        /// the process list and shell history).
        #[arg(
            long,
            env = "GATEWAY_EXPLAIN_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        token: Option<String>,
        /// The role to ask for (`X-Hasura-Role`).
        #[arg(long)]
        role: Option<String>,
        /// The client address the gateway should assume.
        #[arg(long)]
        client: Option<std::net::IpAddr>,
        /// Print the JSON answer instead of the summary.
        #[arg(long)]
        json: bool,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
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
        #[arg(long, allow_hyphen_values = true)]
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
        #[arg(long, allow_hyphen_values = true)]
        user_id: String,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke one session by its token. Pass `-` to read the token from standard input, which
    /// keeps it out of the process list and shell history.
    Revoke {
        /// The session token, or `-`.
        // base64url tokens start with `-` one time in 64, so a leading hyphen is a value, not
        // a flag.
        #[arg(
            long,
            env = "GATEWAY_SESSION_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
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
        #[arg(long, allow_hyphen_values = true)]
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

/// `gateway service ...`
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// List every service: the config file's and those added through the admin API.
    List {
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Add a service at once, without a restart. It is kept in `gateway-services.json` next to
    /// the config file.
    Add {
        /// The service's name; also its subdomain unless `--subdomain` is given.
        name: String,
        /// The subdomain under the project's domains.
        #[arg(long)]
        subdomain: Option<String>,
        /// A path prefix within the subdomain.
        #[arg(long)]
        path_prefix: Option<String>,
        /// An upstream URL (http or https); repeat for several.
        #[arg(long = "upstream", required = true)]
        upstreams: Vec<String>,
        /// The allowed roles, comma-separated; name `anonymous` to let requests without a
        /// session in. Without it, every role is allowed, anonymous included.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Tunnel WebSocket upgrades.
        #[arg(long, default_value_t = true, action = ArgAction::Set)]
        websocket: bool,
        /// Keep the gateway's bearer token and session cookie on requests to this service.
        #[arg(long)]
        forward_credentials: bool,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Remove a service that was added through the admin API.
    Remove {
        /// The service's name.
        name: String,
        /// Remove only if the services are still at this version (the `version` that
        /// `service list --json` shows); without it the removal does not check.
        #[arg(long)]
        version: Option<u64>,
        /// How to reach the admin API.
        #[command(flatten)]
        admin: AdminArgs,
    },
}

impl Command {
    /// The runtime this command runs on: `gateway run` serves on `--threads` event loops (one
    /// per CPU by default), or on tokio's work-stealing runtime; every other command needs one
    /// thread.
    pub fn runtime_shape(&self) -> crate::server::RuntimeShape {
        match self {
            Command::Run {
                threads,
                work_stealing,
                ..
            } => crate::server::RuntimeShape {
                threads: threads.map(usize::from).unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
                }),
                work_stealing: *work_stealing,
            },
            _ => crate::server::RuntimeShape::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use clap::Parser;

    #[test]
    fn a_token_or_user_id_starting_with_a_hyphen_is_a_value() {
        let cli =
            Cli::try_parse_from(["gateway", "session", "revoke", "--token", "-rAbC_9"]).unwrap();
        match cli.command {
            Command::Session(SessionCommand::Revoke { token, .. }) => {
                assert_eq!(token, "-rAbC_9")
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["gateway", "user", "revoke-sessions", "--user-id", "-7"]).unwrap();
        match cli.command {
            Command::User(UserCommand::RevokeSessions { user_id, .. }) => {
                assert_eq!(user_id, "-7")
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
