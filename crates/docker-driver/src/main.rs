//! `contrail-docker-driver`: the Contrail libnetwork plugin process.

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    docker_driver::windows::main()
}

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    linux::main()
}

#[cfg(not(any(windows, target_os = "linux")))]
fn main() {
    eprintln!("contrail-docker-driver supports Linux and Windows only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::Arc;
    use std::time::Duration;

    use clap::Parser;
    use docker_driver::backend::linux::LinuxBackend;
    use docker_driver::cli::{DriverArgs, Settings};
    use docker_driver::server::UnixSocket;
    use docker_driver::Driver;
    use tokio::signal::unix::{signal, SignalKind};

    #[derive(Parser)]
    #[command(
        name = "contrail-docker-driver",
        version,
        about = "Contrail Docker network + IPAM driver"
    )]
    struct Cli {
        #[command(flatten)]
        args: DriverArgs,
    }

    pub fn main() -> anyhow::Result<()> {
        let cli = Cli::parse();
        let settings = cli.args.settings()?;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_new(
                settings.log_filter(),
            )?)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        settings.log();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(run(settings))
    }

    async fn run(args: Settings) -> anyhow::Result<()> {
        let (vnc, agent) = args.clients()?;
        let backend = LinuxBackend::new()?;
        // Interfaces that never reached a container: nobody will Join them.
        let pruned = backend.prune_unjoined().await?;
        if !pruned.is_empty() {
            tracing::info!(count = pruned.len(), "removed unjoined veths");
        }
        let driver = Arc::new(Driver::new(vnc, agent, backend, args.config.clone()));
        let sock = UnixSocket::bind(&args.plugin_dir)?;
        tracing::info!(socket = %sock.path().display(), "serving");
        let bg = Arc::clone(&driver);
        let interval = args.reconcile_interval;
        let reconciler = tokio::spawn(async move {
            loop {
                match bg.reconcile().await {
                    Ok(r) if r != Default::default() => tracing::info!(?r, "reconciled"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("reconcile: {e}"),
                }
                if interval == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(interval)).await;
            }
        });
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        sock.serve(docker_driver::app(driver), shutdown).await;
        reconciler.abort();
        tracing::info!("stopped");
        Ok(())
    }
}
