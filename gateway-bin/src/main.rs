//! The `gateway` binary: parse, build, serve. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use gateway_bin::cli::{Cli, Command};
use gateway_bin::config::Config;
use gateway_bin::{app, commands, server, telemetry};

/// Exit status for an unusable config (BSD `EX_USAGE`), as `gateway check` documents.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let shape = cli.command.runtime_shape();
    let runtime = match server::runtime(shape) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: valid ({} services)",
                    config.display(),
                    c.services.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Run { config: path, .. } => {
            let config = match Config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            telemetry::init_tracing(&config.log);
            let opts = app::StartOptions {
                config_path: Some(path),
                admin_secret: None,
                serving_threads: shape.serving_threads(),
            };
            let result = runtime.block_on(app::run(config, opts));
            telemetry::access::flush_all();
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "gateway failed to start");
                    eprintln!("gateway: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Session(cmd) => runtime.block_on(commands::session(cmd)),
        Command::User(cmd) => runtime.block_on(commands::user(cmd)),
        Command::Cert(cmd) => runtime.block_on(commands::cert(cmd)),
        Command::Service(cmd) => runtime.block_on(commands::service(cmd)),
        Command::Explain {
            url,
            method,
            token,
            role,
            client,
            json,
            admin,
        } => runtime.block_on(commands::explain(commands::ExplainArgs {
            url,
            method,
            token,
            role,
            client,
            json,
            admin,
        })),
    }
}
