//! `extconn-local serve | demo`: wiring only (see the library).

use std::path::PathBuf;
use std::time::Duration;

use extconn_local::{LocalSystem, Options};
use extconn_providers::registry::RegistrySettings;

const USAGE: &str = "usage: extconn-local serve [--port N (0: any free port; default 8080)] [--data-dir DIR] [--sync-every SECS] [--dam-origin ORIGIN]... | demo [--data-dir DIR]";

fn parse() -> Result<(String, Options), String> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().ok_or(USAGE)?;
    let mut opts = Options {
        port: 0,
        data_dir: PathBuf::new(),
        workers: 2,
        tick_every: None,
        sync_interval_secs: None,
        dam_origins: Vec::new(),
        providers: Default::default(),
    };
    let mut data_dir = None;
    let mut port = None;
    let mut sync_every = 60;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = Some(args.next().and_then(|p| p.parse().ok()).ok_or("--port needs a number")?),
            // A page of this origin may frame the console and hand it a token (as the DAM does).
            "--dam-origin" => {
                let list = args.next().ok_or("--dam-origin needs an origin")?;
                opts.dam_origins.extend(extconn_api::console::parse_origins(&list)?);
            }
            "--sync-every" => {
                sync_every = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .filter(|s| *s >= 60)
                    .ok_or("--sync-every needs a number of seconds, at least 60")?
            }
            "--data-dir" => data_dir = Some(PathBuf::from(args.next().ok_or("--data-dir needs a path")?)),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    match cmd.as_str() {
        "serve" => {
            opts.port = port.unwrap_or(8080);
            // A person should see auto sync work: connections are due every minute here (every
            // 15 in a deployment), checked every few seconds.
            opts.sync_interval_secs = Some(sync_every);
            opts.tick_every = Some(Duration::from_secs(sync_every.clamp(1, 10)));
            opts.data_dir = data_dir.unwrap_or_else(|| PathBuf::from("extconn-data"));
            opts.providers = RegistrySettings::from_env().map_err(|e| e.to_string())?;
        }
        "demo" => {
            // The demo checks every outcome against the sandbox's own view: it always uses the
            // sandbox, whatever EXTCONN_<PROVIDER>_* say.
            opts.data_dir = data_dir
                .unwrap_or_else(|| std::env::temp_dir().join(format!("extconn-demo-{}", std::process::id())));
        }
        _ => return Err(USAGE.into()),
    }
    opts.data_dir = std::path::absolute(&opts.data_dir).map_err(|e| e.to_string())?;
    Ok((cmd, opts))
}

#[tokio::main]
async fn main() {
    let (cmd, opts) = parse().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG")
                .unwrap_or_else(|_| if cmd == "serve" { "info".into() } else { "warn".into() }),
        )
        .with_writer(std::io::stderr)
        .init();
    let system = LocalSystem::start(opts).await.unwrap_or_else(|e| {
        eprintln!("could not start: {e}");
        std::process::exit(1)
    });
    if cmd == "demo" {
        println!("External Connections — local demo (everything on 127.0.0.1; state in memory)");
        println!(
            "API {}   sandbox {}   data {}",
            system.api_url,
            system.sandbox.base_url(),
            system.data_dir.display()
        );
        match system.demo().await {
            Ok(()) => println!("\nDemo finished: every check passed."),
            Err(e) => {
                eprintln!("\nDEMO FAILED: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    print!("{}", system.serve_banner());
    let _ = tokio::signal::ctrl_c().await;
}
