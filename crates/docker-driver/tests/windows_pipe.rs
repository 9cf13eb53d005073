//! The plugin API over the named pipe, as Docker on Windows reaches it:
//! spec file written on start and removed on stop, HTTP/1.1 over the pipe.
//! Runs under Wine (the Windows lane) and on Windows.
#![cfg(windows)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use std::sync::Arc;

use docker_driver::backend::MemoryBackend;
use docker_driver::windows::{run_plugin, spec_path, PluginConfig, Shutdown, PIPE_NAME};
use docker_driver::{Config, Driver};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::windows::named_pipe::ClientOptions;

/// The real plugin API; its clients point nowhere (Plugin.Activate needs
/// neither the config API nor the agent).
fn app() -> axum::Router {
    let client = || vnc_client::Client::new("http://127.0.0.1:9", None).expect("client");
    docker_driver::app(Arc::new(Driver::new(
        client(),
        client(),
        MemoryBackend::default(),
        Config::default(),
    )))
}

/// A pipe name per test: tests run in parallel and the name is global.
fn unique_pipe() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        r"{PIPE_NAME}Test{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn open(pipe: &str) -> tokio::net::windows::named_pipe::NamedPipeClient {
    // The server binds before the test connects, but may be between
    // instances for a moment: bounded retry.
    let mut delay = Duration::from_millis(5);
    for _ in 0..12 {
        match ClientOptions::new().open(pipe) {
            Ok(c) => return c,
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    panic!("cannot open {pipe}");
}

/// POSTs `path` with body `{}` over a new pipe connection.
async fn post(pipe: &str, path: &str) -> (u16, String) {
    let io = TokioIo::new(open(pipe).await);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", "plugin")
        .header("content-type", "application/vnd.docker.plugins.v1.2+json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let resp = send.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    drop(send);
    let _ = conn.await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Short connection limits, so the stalled-client tests take a second.
const LIMIT: Duration = Duration::from_millis(500);

fn config(dir: &tempfile::TempDir) -> PluginConfig {
    PluginConfig {
        pipe_name: unique_pipe(),
        program_data: dir.path().to_owned(),
        timeouts: docker_driver::http_serve::Timeouts::uniform(LIMIT),
    }
}

/// Reads until the driver closes the pipe; how long that took (None: not
/// within `max`).
async fn closed_within(
    c: &mut tokio::net::windows::named_pipe::NamedPipeClient,
    t0: std::time::Instant,
    max: Duration,
) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    loop {
        let left = max.saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, c.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A client that opens the pipe and sends nothing, or stops in the middle
/// of a request head, is dropped after the limit; the pipe keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_pipe_clients_are_dropped() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let (stop, shutdown) = Shutdown::channel();
    let server = {
        let cfg = cfg.clone();
        tokio::spawn(async move { run_plugin(app(), &cfg, shutdown.wait()).await })
    };
    wait_for_spec(&cfg).await;
    let t0 = std::time::Instant::now();
    let mut silent = open(&cfg.pipe_name).await;
    let mut partial = open(&cfg.pipe_name).await;
    partial
        .write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\n")
        .await
        .unwrap();
    for c in [&mut silent, &mut partial] {
        let d = closed_within(c, t0, LIMIT * 10)
            .await
            .expect("the driver never closed a stalled pipe connection");
        assert!(d >= LIMIT / 2, "closed after {d:?}, before the limit");
    }
    let (status, body) = post(&cfg.pipe_name, "/Plugin.Activate").await;
    assert_eq!(status, 200, "{body}");
    stop.send(true).unwrap();
    server.await.unwrap().unwrap();
}

async fn wait_for_spec(cfg: &PluginConfig) -> String {
    let path = spec_path(&cfg.program_data);
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_over_pipe_and_spec_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let (stop, shutdown) = Shutdown::channel();
    let server = {
        let cfg = cfg.clone();
        tokio::spawn(async move { run_plugin(app(), &cfg, shutdown.wait()).await })
    };

    let spec = wait_for_spec(&cfg).await;
    assert_eq!(spec, format!("npipe://{}", cfg.pipe_name));
    assert!(spec_path(&cfg.program_data).ends_with(r"docker\plugins\Contrail.spec"));

    let (status, body) = post(&cfg.pipe_name, "/Plugin.Activate").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let implements = v["Implements"].as_array().unwrap();
    assert!(implements.iter().any(|i| i == "NetworkDriver"), "{body}");

    // Several clients at once, each on its own pipe instance.
    let many: Vec<_> = (0..4)
        .map(|_| {
            let pipe = cfg.pipe_name.clone();
            tokio::spawn(async move { post(&pipe, "/Plugin.Activate").await.0 })
        })
        .collect();
    for t in many {
        assert_eq!(t.await.unwrap(), 200);
    }

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server did not stop")
        .unwrap()
        .unwrap();
    assert!(!spec_path(&cfg.program_data).exists());
    // The driver made docker\plugins (no Docker here): gone with the file.
    assert!(!cfg.program_data.join("docker").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_server_on_same_pipe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir);
    let (stop, shutdown) = Shutdown::channel();
    let first = {
        let cfg = cfg.clone();
        tokio::spawn(async move { run_plugin(app(), &cfg, shutdown.wait()).await })
    };
    wait_for_spec(&cfg).await;

    // FILE_FLAG_FIRST_PIPE_INSTANCE: a second driver must not serve too.
    // (Wine ignores that flag; then the second bind succeeds and this
    // check is skipped rather than failed.)
    let other = tempfile::tempdir().unwrap();
    let second = PluginConfig {
        program_data: other.path().to_owned(),
        ..cfg.clone()
    };
    let r = tokio::time::timeout(Duration::from_secs(5), run_plugin(app(), &second, async {}))
        .await
        .expect("second run_plugin hung");
    if let Err(e) = r {
        assert!(e.to_string().contains(&cfg.pipe_name), "{e}");
        assert!(!spec_path(&second.program_data).exists());
    }

    stop.send(true).unwrap();
    first.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_sender_dropped_means_stop() {
    let (stop, shutdown) = Shutdown::channel();
    drop(stop);
    tokio::time::timeout(Duration::from_secs(1), shutdown.wait())
        .await
        .unwrap();
}

#[test]
fn default_config() {
    let cfg = PluginConfig::default();
    assert_eq!(cfg.pipe_name, r"\\.\pipe\Contrail");
    assert!(spec_path(&cfg.program_data).ends_with(r"docker\plugins\Contrail.spec"));
}
