//! `baseline --listen IP:PORT --upstream IP:PORT --tokens FILE`: the bench's floor proxy (see
//! the library's docs). Prints `baseline: listening on ADDR` once it accepts connections; a
//! startup error is printed and exits with status 1.

use std::process::ExitCode;
use std::sync::Arc;

use bench_baseline::{parse_args, serve, BaselineState, Tokens};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args(std::env::args().skip(1))?;
    let tokens = Tokens::load(&args.tokens)?;
    // One thread, as the bench runs the gateway (GATEWAY_THREADS=1).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", args.listen))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("--listen {}: {e}", args.listen))?;
        println!(
            "baseline: listening on {addr}, upstream {}, {} tokens",
            args.upstream,
            tokens.len()
        );
        serve(
            listener,
            Arc::new(BaselineState::new(tokens, args.upstream)),
        )
        .await;
        Ok(())
    })
}
