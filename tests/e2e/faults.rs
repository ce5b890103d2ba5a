//! Faults of the process's own surroundings: slow clients that flood the HTTP port beyond the
//! file descriptor limit, and a stderr that cannot be written.

use std::{
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{Exporter, free_port, http, wait_for};

/// The exporter started through `launcher` (e.g. `prlimit …`) with `args`, replaying an empty
/// stdin, with stderr going to `stderr`; killed on drop.
struct Process {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Process {
    async fn start(launcher: &[&str], args: &[&str], stderr: Stdio) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let (program, before) = launcher.split_first().expect("launcher");
        let mut command = Command::new(program);
        command
            .args(before)
            .arg(Exporter::binary())
            .args(["--replay", "-", "--listen", &addr.to_string()])
            .args(args);
        if !args.contains(&"--archive-path") {
            command
                .arg("--archive-path")
                .arg(dir.path().join("archive.redb"));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn");
        let process = Self {
            child,
            addr,
            _dir: dir,
        };
        let url = process.url("/readyz");
        wait_for("the exporter to be ready", Duration::from_secs(20), || {
            let url = url.clone();
            async move {
                let r = http().get(&url).send().await.ok()?;
                (r.status() == 200).then_some(())
            }
        })
        .await;
        process
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> u16 {
        http()
            .get(self.url(path))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .status()
            .as_u16()
    }

    /// SIGTERM; the exit status within 15 s.
    async fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let child = &mut self.child;
        wait_for("the exporter to exit", Duration::from_secs(15), || {
            let status = child.try_wait().expect("try_wait");
            async move { status }
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three times more half-sent requests than the process has file descriptors: the probes and
/// `/metrics` still answer (the oldest slow connections make room), and a half-sent request is
/// closed once the header read timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_lock_out_the_probes() {
    let mut exporter = Process::start(&["prlimit", "--nofile=128:128"], &[], Stdio::null()).await;
    let mut slow = Vec::new();
    for _ in 0..384 {
        // Past the listen backlog a connect may fail: that is the kernel's bound, not ours.
        let connect = TcpStream::connect(exporter.addr);
        if let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(1), connect).await
            && s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .is_ok()
        {
            slow.push(s);
        }
    }
    assert!(
        slow.len() > 128,
        "only {} slow clients connected",
        slow.len()
    );
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/events"] {
        assert_eq!(exporter.get(path).await, 200, "{path} during the flood");
    }
    // The newest slow client is not evicted by later ones: the header timeout (10 s) ends it,
    // with a 408 or a plain close.
    let newest = slow.last_mut().expect("a slow client");
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(30), newest.read(&mut buf))
        .await
        .expect("a half-sent request is held past the header read timeout");
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => {
            let head = String::from_utf8_lossy(&buf[..n]);
            assert!(head.starts_with("HTTP/1.1 408"), "{head}");
        }
    }
    drop(slow);
    assert_eq!(exporter.get("/healthz").await, 200);
    assert!(exporter.terminate().await.success());
}

/// With stderr on a full device every log line fails to write: the exporter still starts,
/// serves and stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_stderr_costs_only_the_log_lines() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut exporter = Process::start(&["env", "RUST_LOG=debug"], &[], Stdio::from(full)).await;
    assert_eq!(exporter.get("/metrics").await, 200);
    assert_eq!(exporter.get("/api/v1/events").await, 200);
    let status = exporter.terminate().await;
    assert_eq!(status.code(), Some(0), "{status}");
}

/// A damaged archive file: exit 2 with one line naming the file and the way out; with
/// `--archive-on-corruption move-aside` the exporter starts on a new archive and keeps the old
/// file next to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_archive_exits_2_or_is_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("archive.redb");
    drop(kube_event_exporter::archive::Archive::open(&path).expect("create"));
    // Damage the page after the header.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[4096..4100].fill(0xFF);
    std::fs::write(&path, &bytes).expect("write");

    let out = Command::new(Exporter::binary())
        .args(["--replay", "-", "--archive-path"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr.lines().last().expect("a line");
    assert!(
        line.contains(path.to_str().expect("utf-8"))
            && line.contains("damaged")
            && line.contains("--archive-on-corruption=move-aside"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "left alone");

    let mut process = Process::start(
        &["env"],
        &[
            "--archive-on-corruption",
            "move-aside",
            "--archive-path",
            path.to_str().expect("utf-8"),
        ],
        Stdio::null(),
    )
    .await;
    assert_eq!(process.get("/api/v1/events").await, 200);
    let kept = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("archive.redb.damaged-"))
        .count();
    assert_eq!(kept, 1);
    assert!(process.terminate().await.success());
}
