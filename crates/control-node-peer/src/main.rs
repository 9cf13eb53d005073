//! `control-node-peer`: the test control node as a process (a VNC config
//! API on a local store, and the XMPP side for agents). Test support, not
//! a product: it lets a developer try `--config-source controller` on one
//! machine.
//!
//! ```text
//! control-node-peer --listen 127.0.0.1:5269 --state-dir /tmp/cn \
//!     [--vnc-listen 127.0.0.1:18082] [--tls-cert C --tls-key K]
//! ```

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// XMPP listen address.
    #[arg(long, default_value = "127.0.0.1:5269")]
    listen: SocketAddr,
    /// Where the config store lives.
    #[arg(long)]
    state_dir: PathBuf,
    /// Serve the store's VNC REST API here.
    #[arg(long)]
    vnc_listen: Option<SocketAddr>,
    /// Require STARTTLS with this certificate (PEM) ...
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// ... and key (PKCS#8 PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// End-of-RIB this many milliseconds after an agent's last
    /// subscription change.
    #[arg(long, default_value_t = 1000)]
    eor_delay_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        std::fs::create_dir_all(&args.state_dir)?;
        let store = vnc_api::Store::open(&args.state_dir.join("config.redb"))?;
        let mut cfg = control_node_peer::Config {
            eor_delay: Duration::from_millis(args.eor_delay_ms),
            ..control_node_peer::Config::default()
        };
        if let (Some(c), Some(k)) = (&args.tls_cert, &args.tls_key) {
            cfg.server.tls = Some(xmpp::session::tls_server(
                &std::fs::read(c).with_context(|| c.display().to_string())?,
                &std::fs::read(k).with_context(|| k.display().to_string())?,
            )?);
        }
        let peer = control_node_peer::Peer::start(args.listen, Arc::clone(&store), cfg).await?;
        tracing::info!(xmpp = %peer.addr(), "control-node peer running");
        if let Some(v) = args.vnc_listen {
            let l = tokio::net::TcpListener::bind(v).await?;
            let app = vnc_api::router(Arc::clone(&store));
            tokio::spawn(async move {
                let _ = axum::serve(l, app).await;
            });
            tracing::info!(vnc = %v, "VNC API");
        }
        tokio::signal::ctrl_c().await?;
        peer.stop().await;
        Ok(())
    })
}
