//! Serves the web GUI with the demo backend (moving made-up numbers) for browser and load
//! tests. Creates a temporary lqos_directory with ShapedDevices.csv, network.json, lqos.conf
//! and the users given by `--user name:password:role`.
//!
//! `cargo run -p lqos-web --example web_demo -- --listen 127.0.0.1:9123 --circuits 10000 \
//!   --user admin:admin-password:admin --dir /tmp/lqos-demo`
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use lqos_web::demo::DemoBackend;
use lqos_web::users::{Role, UserStore};
use lqos_web::{WebOptions, WebState, serve};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9123")]
    listen: String,
    #[arg(long, default_value_t = 500)]
    circuits: usize,
    #[arg(long, default_value_t = 4)]
    sites: usize,
    /// `name:password:role`, repeatable.
    #[arg(long)]
    user: Vec<String>,
    /// lqos_directory to create/use.
    #[arg(long, default_value = "/tmp/lqos-web-demo")]
    dir: PathBuf,
}

fn demo_files(dir: &std::path::Path, circuits: usize, sites: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut net = serde_json::Map::new();
    for s in 1..=sites {
        let mut aps = serde_json::Map::new();
        for a in 1..=4 {
            aps.insert(
                format!("AP-{s}-{a}"),
                serde_json::json!({"downloadBandwidthMbps": 500, "uploadBandwidthMbps": 250}),
            );
        }
        net.insert(
            format!("Site-{s}"),
            serde_json::json!({"downloadBandwidthMbps": 2000, "uploadBandwidthMbps": 1000, "children": aps}),
        );
    }
    std::fs::write(dir.join("network.json"), serde_json::to_string_pretty(&net)?)?;
    let mut csv = lqos_config::CSV_HEADER.join(",") + "\n";
    for i in 1..=circuits {
        let ap = (i - 1) % (sites * 4);
        let plan = [25u64, 50, 100, 250][i % 4];
        csv.push_str(&format!(
            "c{i:05},Subscriber {i},d{i:05},CPE {i},AP-{}-{},,,,100.64.{}.{},,1,1,{plan},{},,\n",
            ap / 4 + 1,
            ap % 4 + 1,
            (i / 250) % 256,
            i % 250 + 1,
            plan / 5
        ));
    }
    std::fs::write(dir.join("ShapedDevices.csv"), csv)?;
    std::fs::write(
        dir.join("lqos.conf"),
        format!(
            "lqos_directory = \"{}\"\nnode_name = \"demo-shaper\"\n[bridge]\nto_internet = \"eth1\"\nto_network = \"eth2\"\n\
             [queues]\ndefault_sqm = \"cake diffserv4\"\ndownlink_bandwidth_mbps = 10000\nuplink_bandwidth_mbps = 10000\n\
             [uisp_integration]\nenable_uisp = false\ntoken = \"demo-secret-token\"\nurl = \"https://uisp.invalid\"\n",
            dir.display()
        ),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,lqos_web=info".into()),
        )
        .init();
    let args = Args::parse();
    demo_files(&args.dir, args.circuits, args.sites)?;
    let mut opts = WebOptions::new(args.dir.clone());
    opts.config_path = Some(args.dir.join("lqos.conf"));
    let _ = std::fs::remove_file(&opts.users_file);
    let mut store = UserStore::load(&opts.users_file)?;
    for u in &args.user {
        let mut it = u.splitn(3, ':');
        let (Some(name), Some(pw), Some(role)) = (it.next(), it.next(), it.next()) else {
            return Err(format!("--user wants name:password:role, got {u:?}").into());
        };
        store.add(name, pw, Role::parse(role).ok_or("role must be admin or read-only")?)?;
    }
    if !store.is_empty() {
        store.save()?;
    }
    let backend = Arc::new(DemoBackend::new(args.circuits, args.sites));
    backend.follow_shaped_devices(args.dir.join("ShapedDevices.csv"));
    let state = WebState::new(backend, opts)?;
    if let Some(t) = state.setup_token() {
        println!("setup token: {t}");
    }
    println!("serving on http://{}", args.listen);
    serve(&args.listen, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
