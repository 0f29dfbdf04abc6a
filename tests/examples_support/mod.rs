//! Shared by the tests that run the `mixs` and `mixc` example binaries as
//! processes: building them, a `mixs server` on a loopback port, and
//! reading what a process printed.

#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`. Cargo builds a package's examples
/// for a full `cargo test` but not for `cargo test --test <name>`, so the
/// binaries are brought up to date once per run (a no-op when they are).
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--example",
            "mixs",
            "--example",
            "mixc",
        ]);
        if dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|p| p == "release")
        {
            cmd.arg("--release");
        }
        let status = cmd.status().unwrap();
        assert!(
            status.success(),
            "cargo build --example mixs --example mixc"
        );
    });
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs example `name` with `args` to completion.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example(name)).args(args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repository's shipped configuration directory.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config")
}

/// A copy of the shipped config with the Prometheus handler on a free
/// port, so that a test does not collide with anything on the default one.
pub fn shipped_config_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped_config()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("port: 42422", &format!("port: {}", free_port()));
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

/// A `mixs server` process on a loopback port, killed when dropped.
pub struct Mixs {
    child: Child,
    pub addr: SocketAddr,
    _config: tempfile::TempDir,
}

impl Mixs {
    /// Serves the config directory `config` (kept as long as the server).
    pub fn start(config: tempfile::TempDir) -> Mixs {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(example("mixs"))
            .arg("server")
            .arg("--config-dir")
            .arg(config.path())
            .args(["--address", &addr.to_string()])
            .args(["--monitoring-address", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut mixs = Mixs {
            child,
            addr,
            _config: config,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "mixs did not start listening on {addr}"
            );
            if let Ok(Some(status)) = mixs.child.try_wait() {
                panic!("mixs exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        mixs
    }
}

impl Drop for Mixs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
