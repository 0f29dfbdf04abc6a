//! A real `redis-server` for tests, on a free loopback port, killed on drop.
//!
//! Where `redis-server` is not installed, [`RedisServer::start`] prints
//! `SKIPPED: redis-server not installed` and returns `None`, unless
//! `MIXER_REQUIRE_REDIS=1`, in which case it panics.
//!
//! Tests holding a server run one at a time within a test binary: the
//! exactness and timeout tests hammer Redis with dozens of tasks under
//! short call timeouts, and several of them at once on two cores made
//! calls time out, which `failurePolicy: grant` then rightly granted.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    // Last, so it is released after the server is killed.
    _serial: MutexGuard<'static, ()>,
}

static SERIAL: Mutex<()> = Mutex::new(());

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts a server, or `None` (after printing SKIPPED) when
    /// `redis-server` is missing and not required. `test` names the caller
    /// in the SKIPPED line.
    pub fn start(test: &str) -> Option<RedisServer> {
        if !installed() {
            if std::env::var("MIXER_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("redis-server not installed and MIXER_REQUIRE_REDIS=1");
            }
            // Straight to stdout, past the test harness's capture, so the
            // skip is seen in every run.
            let _ = writeln!(
                std::io::stdout(),
                "SKIPPED: redis-server not installed ({test})"
            );
            return None;
        }
        // A test that failed while holding the lock poisons it; the next
        // one may still run.
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            _serial: serial,
        };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether it answers PING now.
    pub fn ping(&self) -> bool {
        self.command(&["PING"])
            .is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Sends one command (RESP) and returns the raw reply, or `None` if the
    /// server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut c = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        c.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = c.read(&mut buf).ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Kills the server (as a crash would); the port stays reserved for
    /// [`RedisServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
