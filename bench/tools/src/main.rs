//! `bench-tools`: the parts of `bench/run` that shell cannot do cheaply.
//!
//! Every subcommand is a client or a reader; none of them is measured itself. Each prints one
//! JSON object on stdout (or writes the file it is asked for) so that `bench/run` can pick the
//! figures out with `jq`-free shell (`json_get` in `bench/lib.sh`).
//!
//! Run with `cargo run --release -p bench-tools -- --help`.

mod handshake;
mod http1;
mod idle;
mod mint;
mod mix;
mod proc;
mod rate;
mod report;
mod revocations;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The error type of every subcommand: the harness only prints it.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A result with [`BoxError`].
pub(crate) type Res<T> = Result<T, BoxError>;

#[derive(Parser)]
#[command(name = "bench-tools", about = "Helpers for bench/run")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates sessions through the gateway's admin API, concurrently, and writes
    /// `TOKEN<TAB>USER_ID` lines.
    Mint {
        /// The admin listener.
        #[arg(long)]
        admin: SocketAddr,
        /// The admin secret (default: $GATEWAY_ADMIN_SECRET).
        #[arg(long, env = "GATEWAY_ADMIN_SECRET", hide_env_values = true)]
        secret: String,
        /// How many sessions.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Signs JWTs with Hasura-style claims (role `user`, a day to live) and writes
    /// `TOKEN<TAB>USER_ID` lines, like `mint` (for `bench/instructions` with
    /// `BENCH_TOKENS=jwt-hs256|jwt-rs256`).
    MintJwt {
        /// `HS256` (the key is the secret's text) or `RS256` (the key is a PEM private key file).
        #[arg(long)]
        alg: String,
        /// The HS256 secret, or the RS256 private key's file.
        #[arg(long)]
        key: String,
        /// The `kid` header (RS256).
        #[arg(long)]
        kid: Option<String>,
        /// How many tokens (one user each).
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes fake tokens (for a run without a gateway: the nginx side only).
    FakeTokens {
        /// How many.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes the request mix: `HOST TOKEN` or `HOST -` (anonymous) lines, read by the wrk
    /// script and by `rate`.
    Mix {
        /// The token file written by `mint`.
        #[arg(long)]
        tokens: PathBuf,
        /// Comma-separated Host values, picked uniformly.
        #[arg(long)]
        hosts: String,
        /// How many requests before the mix repeats.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Share of anonymous requests.
        #[arg(long, default_value_t = 0.5)]
        anonymous: f64,
        /// Seed, so that both sides get the same sequence.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes a self-signed ECDSA P-256 certificate and its PKCS#8 key.
    Cert {
        /// Subject alternative names.
        #[arg(long, value_delimiter = ',', default_value = "bench.test,*.bench.test")]
        names: Vec<String>,
        /// Output directory (cert.pem, key.pem).
        #[arg(long)]
        out: PathBuf,
    },
    /// Open-loop HTTP/1.1 load at a fixed rate over keep-alive connections. Latency is
    /// measured from each request's intended start, so it is corrected for coordinated
    /// omission (as wrk2 and `oha --latency-correction` do).
    Rate {
        /// Target address.
        #[arg(long)]
        addr: SocketAddr,
        /// The mix file.
        #[arg(long)]
        mix: PathBuf,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        /// Seconds of load (the warm-up included).
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Seconds at the start whose samples are dropped.
        #[arg(long, default_value_t = 0.5)]
        warmup: f64,
        /// Keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// TLS handshakes per second with a cheap rustls client (TLS 1.3, X25519), and the
    /// server's CPU per handshake from /proc.
    Handshake {
        /// Target address.
        #[arg(long)]
        addr: SocketAddr,
        /// SNI.
        #[arg(long, default_value = "a.bench.test")]
        sni: String,
        /// The server's certificate: the client accepts exactly this one.
        #[arg(long)]
        cert: PathBuf,
        /// Resume with TLS 1.3 tickets instead of doing full handshakes.
        #[arg(long)]
        resume: bool,
        /// ALPN protocols offered.
        #[arg(long, value_delimiter = ',', default_value = "h2,http/1.1")]
        alpn: Vec<String>,
        /// Handshakes in flight.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Seconds.
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        /// Server processes whose CPU is read before and after.
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
    },
    /// Opens N keep-alive connections (one request each), holds them idle, and reports the RSS
    /// growth of the server processes.
    Idle {
        /// Target address.
        #[arg(long)]
        addr: SocketAddr,
        /// Host header of the one request per connection.
        #[arg(long, default_value = "a.bench.test")]
        host: String,
        /// Use TLS (ALPN http/1.1); the certificate the client accepts.
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// How many connections: ascending checkpoints, comma-separated (RSS is read at each).
        #[arg(long, value_delimiter = ',', required = true)]
        count: Vec<usize>,
        /// Connections being opened at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Milliseconds to wait after the last one opened before reading RSS.
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
        /// Server processes whose RSS is summed.
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
    },
    /// Writes results.md and results.json from the samples of a run, and prints the table.
    Report {
        /// `METRIC<TAB>SIDE<TAB>PAIR<TAB>VALUE` lines.
        #[arg(long)]
        samples: PathBuf,
        /// `KEY<TAB>VALUE` lines printed under the table and kept in the JSON.
        #[arg(long)]
        meta: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Warms sessions into every replica's cache, revokes them at a fixed rate through the
    /// admin API, and prints a JSON report (µs); for `bench/revocations`.
    Revocations {
        /// The replicas' request listeners, comma-separated, in order.
        #[arg(long, value_delimiter = ',', required = true)]
        http: Vec<SocketAddr>,
        /// Their admin listeners, in the same order.
        #[arg(long, value_delimiter = ',', required = true)]
        admin: Vec<SocketAddr>,
        /// The admin secret (default: $GATEWAY_ADMIN_SECRET).
        #[arg(long, env = "GATEWAY_ADMIN_SECRET", hide_env_values = true)]
        secret: String,
        /// The token file written by `mint`.
        #[arg(long)]
        tokens: PathBuf,
        /// Host of a service that refuses anonymous requests.
        #[arg(long)]
        host: String,
        /// How many revocations.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Revocations per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Which replica revokes each session.
        #[arg(long, value_enum, default_value = "alternate")]
        via: revocations::Via,
        /// After each revocation, poll the other replica until it answers 401 (timed from the
        /// revoking answer; this load perturbs what it measures).
        #[arg(long)]
        outside: bool,
        /// A Redis to subscribe to, timestamping each revocation message on arrival.
        #[arg(long)]
        redis: Option<SocketAddr>,
        /// The revocation channel.
        #[arg(long, default_value = "gateway:revocations")]
        channel: String,
    },
    /// A minimal upstream that answers every request `200 ok` (for `bench/revocations`).
    Upstream {
        /// Listen address.
        #[arg(long)]
        addr: SocketAddr,
    },
    /// Prints a markdown table of one Prometheus histogram (p50/p99/max at bucket resolution)
    /// for each `LABEL=FILE` of `/metrics` text, and for all of them combined.
    Histogram {
        /// The histogram's name.
        #[arg(long)]
        name: String,
        /// `LABEL=FILE` pairs.
        inputs: Vec<String>,
    },
    /// Prints one field of the JSON object on stdin (`a.b` for nesting).
    Field {
        /// The key.
        key: String,
    },
    /// Prints the CPU time (user + system, µs) of the processes, summed.
    Cpu {
        /// Process ids.
        pids: Vec<u32>,
    },
    /// Prints the resident set (KiB) of the processes, summed.
    Rss {
        /// Process ids.
        pids: Vec<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-tools: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    // One thread: the load clients share a core with the upstream and must stay cheap and
    // predictable; a work-stealing pool would only add cross-thread wake-ups.
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn run(cmd: Cmd) -> Res<()> {
    match cmd {
        Cmd::Mint {
            admin,
            secret,
            count,
            concurrency,
            out,
        } => runtime()?.block_on(mint::mint(admin, &secret, count, concurrency, &out)),
        Cmd::FakeTokens { count, out } => mint::fake(count, &out),
        Cmd::MintJwt {
            alg,
            key,
            kid,
            count,
            out,
        } => mint::jwt(&alg, &key, kid, count, &out),
        Cmd::Mix {
            tokens,
            hosts,
            count,
            anonymous,
            seed,
            out,
        } => {
            let hosts: Vec<String> = hosts.split(',').map(str::to_owned).collect();
            mix::write(&tokens, &hosts, count, anonymous, seed, &out)
        }
        Cmd::Cert { names, out } => tls::write_cert(&names, &out),
        Cmd::Rate {
            addr,
            mix,
            rate,
            duration,
            warmup,
            connections,
        } => {
            let reqs = mix::requests(&mix)?;
            let r = runtime()?.block_on(rate::run(
                addr,
                reqs,
                rate,
                secs(duration),
                secs(warmup),
                connections,
            ))?;
            println!("{r}");
            Ok(())
        }
        Cmd::Handshake {
            addr,
            sni,
            cert,
            resume,
            alpn,
            concurrency,
            duration,
            pids,
        } => {
            let cfg = tls::client_config(&cert, resume, &alpn)?;
            let r = runtime()?.block_on(handshake::run(
                addr,
                sni,
                cfg,
                concurrency,
                secs(duration),
                &pids,
            ))?;
            println!("{r}");
            Ok(())
        }
        Cmd::Idle {
            addr,
            host,
            tls_cert,
            count,
            concurrency,
            settle_ms,
            pids,
        } => {
            let cfg = match tls_cert {
                Some(c) => Some(tls::client_config(&c, false, &["http/1.1".to_owned()])?),
                None => None,
            };
            // Opening 10k TLS connections is client-bound: use every core (nothing is timed).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let r = rt.block_on(idle::run(
                addr,
                &host,
                cfg,
                &count,
                concurrency,
                Duration::from_millis(settle_ms),
                &pids,
            ))?;
            println!("{r}");
            Ok(())
        }
        Cmd::Revocations {
            http,
            admin,
            secret,
            tokens,
            host,
            count,
            rate,
            via,
            outside,
            redis,
            channel,
        } => {
            let r = runtime()?.block_on(revocations::run(revocations::Opts {
                http,
                admin,
                secret,
                tokens,
                host,
                count,
                rate,
                via,
                outside,
                redis,
                channel,
            }))?;
            println!("{r}");
            Ok(())
        }
        Cmd::Upstream { addr } => runtime()?.block_on(revocations::upstream(addr)),
        Cmd::Histogram { name, inputs } => revocations::histogram_table(&name, &inputs),
        Cmd::Report { samples, meta, out } => report::run(&samples, &meta, &out),
        Cmd::Field { key } => report::field(&key),
        Cmd::Cpu { pids } => {
            println!("{}", proc::cpu_us(&pids)?);
            Ok(())
        }
        Cmd::Rss { pids } => {
            println!("{}", proc::rss_kib(&pids)?);
            Ok(())
        }
    }
}
