use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use vrctl::cli::{Cli, Cmd};
use vrctl::client::{ksync_path, Client};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let addr = ksync_path(cli.sock_dir.as_deref());
    if let Cmd::Vrouter(a) = &cli.cmd {
        if a.ext {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            return match vrctl::ext::ext_stats(&addr, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vrctl: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    let result = Client::connect(&addr)
        .map_err(anyhow::Error::from)
        .and_then(|mut client| {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let r = vrctl::run::run(&cli.cmd, &mut client, &mut out);
            let _ = out.flush();
            r
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
