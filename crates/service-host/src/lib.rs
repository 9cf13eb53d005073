//! Running the node's binaries as services.
//!
//! The agent and the Docker driver run in the foreground on Linux (systemd
//! starts them, journald takes stderr) and as services of the Windows
//! service control manager (SCM). What both platforms share lives here: the
//! stop signal a service body waits for ([`Shutdown`]) and where logs go
//! ([`init_logging`]: stderr, or daily files in a directory, the newest few
//! kept, since Windows has no logrotate). `windows` is the SCM side,
//! built on the `windows-service` crate: dispatch, install with recovery
//! actions and dependencies, uninstall.

use std::path::Path;

pub mod specs;
#[cfg(windows)]
pub mod windows;

/// Tells a service body to stop: resolves when the SCM sends Stop or
/// Shutdown, or when the console's Ctrl-C handler fires.
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// A pair: send `true` (or drop the sender) to stop.
    pub fn channel() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self(rx))
    }

    /// Completes once a stop was requested (or the sender is gone).
    pub async fn wait(mut self) {
        // Err: sender dropped, which also means stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Where a process logs.
#[derive(Debug, Clone, Copy)]
pub enum LogTarget<'a> {
    /// stderr: a console, or journald under systemd. Colours only on a
    /// terminal.
    Stderr,
    /// One file, appended to (upstream's `LogPath`); its directory is
    /// created.
    File(&'a Path),
    /// Daily files `<dir>/<name>.YYYY-MM-DD.log`, the newest `keep` kept
    /// (older ones are deleted at rotation). The directory is created.
    Files {
        dir: &'a Path,
        name: &'a str,
        keep: usize,
    },
}

/// How many daily log files a service keeps by default.
pub const DEFAULT_KEEP: usize = 14;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log directory {dir}: {source}")]
    Files {
        dir: String,
        #[source]
        source: tracing_appender::rolling::InitError,
    },
    #[error("log file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a global tracing subscriber is already set")]
    AlreadySet,
}

/// The rotating writer of [`LogTarget::Files`].
pub fn file_writer(
    dir: &Path,
    name: &str,
    keep: usize,
) -> Result<tracing_appender::rolling::RollingFileAppender, LogError> {
    tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(name)
        .filename_suffix("log")
        .max_log_files(keep.max(1))
        .build(dir)
        .map_err(|source| LogError::Files {
            dir: dir.display().to_string(),
            source,
        })
}

fn append(path: &Path) -> Result<std::fs::File, LogError> {
    let err = |source| LogError::File {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)
}

/// Installs the global `tracing` subscriber: `filter` (env-filter syntax,
/// e.g. `info` or `agent=debug`) to `target`.
pub fn init_logging(
    filter: tracing_subscriber::EnvFilter,
    target: LogTarget<'_>,
) -> Result<(), LogError> {
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match target {
        LogTarget::Stderr => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogTarget::File(path) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(append(path)?))
            .try_init(),
        LogTarget::Files { dir, name, keep } => builder
            .with_ansi(false)
            .with_writer(file_writer(dir, name, keep)?)
            .try_init(),
    }
    .map_err(|_| LogError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_resolves_on_send_and_on_drop() {
        let (tx, s) = Shutdown::channel();
        let waiter = tokio::spawn(s.clone().wait());
        tx.send(true).expect("send");
        waiter.await.expect("join");
        let (tx, s) = Shutdown::channel();
        drop(tx);
        s.wait().await;
    }

    #[test]
    fn files_go_to_a_dated_file_in_a_created_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("var").join("log");
        let writer = file_writer(&dir, "contrail-test", 3).expect("writer");
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!("hello from the test"));
        let files: Vec<_> = std::fs::read_dir(&dir)
            .expect("log dir created")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = &files[0];
        // contrail-test.YYYY-MM-DD.log
        assert!(
            name.starts_with("contrail-test.") && name.ends_with(".log") && name.len() == 28,
            "{name}"
        );
        let text = std::fs::read_to_string(dir.join(name)).expect("read");
        assert!(text.contains("hello from the test"), "{text}");
    }

    #[test]
    fn a_log_file_is_appended_to_in_a_created_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("log").join("driver.log");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "earlier\n").expect("write");
        let mut f = append(&path).expect("open");
        std::io::Write::write_all(&mut f, b"later\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "earlier\nlater\n"
        );
        let fresh = tmp.path().join("new").join("x.log");
        append(&fresh).expect("creates its directory");
        assert!(fresh.exists());
    }

    #[test]
    fn an_unusable_log_dir_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"x").expect("write");
        let err = file_writer(&file.join("sub"), "x", 1).expect_err("must fail");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
