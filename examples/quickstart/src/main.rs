//! Run with `cargo run --release -p example-quickstart`
//!
//! Starts the gateway with in-memory sessions in front of three demo upstreams (an echo "data"
//! service, the login service, and an admin-only service), then prints curl lines that walk
//! through the whole story. Hosts are `*.localhost`, which curl resolves to 127.0.0.1 by itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use gateway_bin::admin::Secret;
use gateway_bin::config::{self, Config};
use gateway_bin::{app, telemetry};
use tokio::net::TcpListener;

/// The gateway quickstart.
#[derive(Parser)]
struct Args {
    /// The gateway's HTTP port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The admin API's port on 127.0.0.1.
    #[arg(long, default_value_t = 9090)]
    admin_port: u16,
    /// Where the generated admin secret is written (mode 0600).
    #[arg(long, default_value = "target/quickstart-admin-secret")]
    secret_file: PathBuf,
}

async fn upstream(router: axum::Router) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(example_demo_upstreams::serve(listener, router));
    Ok(addr)
}

async fn login_upstream() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let users = example_login_service::Users::demo()?;
    tokio::spawn(example_login_service::serve(listener, users));
    Ok(addr)
}

fn write_secret(path: &Path, secret: &Secret) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    writeln!(f, "{}", secret.expose())
}

async fn start(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let data = upstream(example_demo_upstreams::echo_router("data")).await?;
    let admin = upstream(example_demo_upstreams::admin_router()).await?;
    let auth = login_upstream().await?;

    let mut config = Config::parse(config::QUICKSTART_TOML, Path::new("."))?;
    config.listen.http = Some(SocketAddr::from(([127, 0, 0, 1], args.port)));
    config.listen.admin = Some(SocketAddr::from(([127, 0, 0, 1], args.admin_port)));
    for service in &mut config.services {
        let addr = match service.name.as_str() {
            "auth" => auth,
            "data" => data,
            _ => admin,
        };
        service.upstreams = vec![format!("http://{addr}").parse()?];
    }
    telemetry::init_tracing(&config.log);

    let secret = match std::env::var("GATEWAY_ADMIN_SECRET")
        .ok()
        .and_then(|s| Secret::new(&s))
    {
        Some(s) => s,
        // 256 random bits, the same generator as session tokens.
        None => Secret::new(session_core::Token::generate().expose()).ok_or("empty secret")?,
    };
    write_secret(&args.secret_file, &secret)?;
    let running = app::start(
        config,
        app::StartOptions {
            config_path: None,
            admin_secret: Some(secret),
            ..Default::default()
        },
    )
    .await?;
    print_story(args.port, args.admin_port, &args.secret_file);
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}

fn print_story(port: u16, admin_port: u16, secret_file: &Path) {
    let g = format!("http://{{}}.localhost:{port}");
    let host = |h: &str| g.replace("{}", h);
    println!(
        r#"
The gateway is running on http://*.localhost:{port} (admin API on 127.0.0.1:{admin_port}).
Press Ctrl-C to stop. Try, in another terminal:

# 1. An anonymous request: the data service sees user 0, role anonymous.
curl -s {data}/hello

# 2. Log in as alice (password alice-password): the gateway mints a session.
TOKEN=$(curl -s -D - -o /dev/null -X POST {auth}/login -H 'content-type: application/json' \
  -d '{{"username":"alice","password":"alice-password"}}' | tr -d '\r' | sed -n 's/^x-gateway-session-token: //Ip')
echo "$TOKEN"

# 3. The same request with the token: the data service sees X-Hasura-User-Id 1, role user.
curl -s {data}/hello -H "Authorization: Bearer $TOKEN"

# 4. The admin service allows the admin role only: alice gets 401.
curl -si {admin}/ -H "Authorization: Bearer $TOKEN"

# 5. Log out: the session ends, and the token is refused (401 invalid_token).
curl -si -X POST {auth}/logout -H "Authorization: Bearer $TOKEN"
curl -si {data}/hello -H "Authorization: Bearer $TOKEN"

# The admin API (sessions, metrics). Its secret is in {secret}:
curl -s -X POST http://127.0.0.1:{admin_port}/v1/sessions -H "Authorization: Bearer $(cat {secret})" \
  -d '{{"user_id":"2","roles":["user","admin"]}}'
curl -s http://127.0.0.1:{admin_port}/metrics | grep gateway_requests_total
"#,
        data = host("data"),
        auth = host("auth"),
        admin = host("admin"),
        secret = secret_file.display(),
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("quickstart: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}
