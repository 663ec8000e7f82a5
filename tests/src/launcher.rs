//! `gsmo cluster`, the launcher, run as a user runs it.

use crate::{free_port_run, gsmo_bin};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `gsmo cluster` itself, the launcher, on ports of its own, its stdout and
/// stderr read line by line. Killed when dropped (its nodes follow it).
pub struct Launcher {
    pub child: Child,
    pub client_base: u16,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Launcher {
    /// `gsmo cluster --nodes n ARGS`, with free peer and client port runs.
    pub fn spawn(n: usize, args: &[&str]) -> Self {
        let ports = u16::try_from(n).unwrap();
        let peer_base = free_port_run(2 * ports);
        let client_base = peer_base + ports;
        let mut child = Command::new(gsmo_bin())
            .args(["cluster", "--nodes", &n.to_string()])
            .args(["--peer-base", &peer_base.to_string()])
            .args(["--client-base", &client_base.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = |from: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(from).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            rx
        };
        Launcher {
            stdout: lines(Box::new(child.stdout.take().unwrap())),
            stderr: lines(Box::new(child.stderr.take().unwrap())),
            child,
            client_base,
        }
    }

    /// The launcher's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the launcher's exit; panics after `patience`.
    pub fn wait(&mut self, patience: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the launcher did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines from `rx` up to and including the first containing `needle`;
/// panics with what came after `patience`.
pub fn read_until(rx: &mpsc::Receiver<String>, needle: &str, patience: Duration) -> Vec<String> {
    let deadline = Instant::now() + patience;
    let mut lines = Vec::new();
    while !lines.last().is_some_and(|l: &String| l.contains(needle)) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("no `{needle}` in {patience:?}:\n{}", lines.join("\n")),
        }
    }
    lines
}

/// Every line from `rx` until its writer closes it (or `patience` passes).
pub fn read_to_end(rx: &mpsc::Receiver<String>, patience: Duration) -> Vec<String> {
    let deadline = Instant::now() + patience;
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    lines
}
