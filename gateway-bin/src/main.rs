//! The `gateway` binary: parse, build, serve. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use gateway_bin::cli::{Cli, Command};
use gateway_bin::config::Config;
use gateway_bin::{app, commands, telemetry};

/// Exit status for an unusable config (BSD `EX_USAGE`), as `gateway check` documents.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `gateway run` serves on `threads` event loops: this thread's and, unless work stealing is
    // asked for, `threads - 1` serving threads the app starts (server::ServingThreads). Every
    // other command needs one thread.
    let (threads, work_stealing) = match &cli.command {
        Command::Run {
            threads,
            work_stealing,
            ..
        } => (
            threads.map(usize::from).unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
            *work_stealing,
        ),
        _ => (1, false),
    };
    let mut builder = if work_stealing {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    // The access log's lines of one event-loop turn go out in one write when the thread
    // runs out of work (telemetry::access).
    let built = builder
        .enable_all()
        .on_thread_park(telemetry::access::flush_local)
        .on_thread_stop(telemetry::access::flush_local)
        .build();
    let runtime = match built {
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
                serving_threads: if work_stealing { 1 } else { threads },
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
