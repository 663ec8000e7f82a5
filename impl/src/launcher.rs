//! `gsmo cluster`: N node processes on this machine, their logs forwarded with
//! node prefixes, all stopped together on Ctrl-C.
//!
//! Each node is a real `gsmo node` process with its own sockets, exactly as it
//! would run across hosts; the launcher only starts, watches and stops them.
//! Nodes never outlive the launcher: they get SIGTERM when it stops on a
//! signal (Ctrl-C, SIGTERM, SIGHUP), and the kernel sends them SIGTERM when it
//! dies any other way, SIGKILL included (`PR_SET_PDEATHSIG`).

use crate::config::{local_cluster, port_run, ConfigError, LogFormat};
use crate::secret::Secret;
use gsmo_spec::multicast::Mode;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How long nodes get to exit after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What `gsmo cluster` starts.
#[derive(Clone, Debug)]
pub struct LaunchConfig {
    pub nodes: usize,
    pub mode: Mode,
    pub cluster_id: String,
    pub peer_base: u16,
    pub client_base: u16,
    pub log_format: LogFormat,
    /// Extra `gsmo node` arguments per node (snapshots, restore, faults, traces).
    pub node_args: Vec<Vec<String>>,
    /// The `gsmo` binary to run as `gsmo node`.
    pub bin: PathBuf,
    /// Environment for every node, for secrets (never on a command line, where `ps` shows them).
    pub env: Vec<(String, Secret)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("client port {base} + {n} nodes runs past port 65535")]
    ClientPorts { base: u16, n: usize },
    #[error("cannot start node {id} ({bin}): {source}")]
    Spawn {
        id: usize,
        bin: String,
        source: std::io::Error,
    },
    #[error("cannot listen for signals: {0}")]
    Signal(std::io::Error),
    #[error("every node exited")]
    AllExited,
}

enum Event {
    Ready(usize),
    Exited(usize, std::io::Result<ExitStatus>),
}

/// Starts the cluster and runs until Ctrl-C / SIGTERM (or every node has exited).
pub async fn run(cfg: LaunchConfig) -> Result<(), LaunchError> {
    let n = cfg.nodes;
    let peers = local_cluster(n, cfg.peer_base)?;
    let client_ports: Vec<u16> = port_run(cfg.client_base, n)
        .ok_or(LaunchError::ClientPorts {
            base: cfg.client_base,
            n,
        })?
        .collect();
    let client_port = |i: usize| client_ports[i];
    // In ShiViz mode stdout is the event log, so talk on stderr.
    let say = |s: &str| match cfg.log_format {
        LogFormat::Text => println!("{s}"),
        LogFormat::Shiviz => eprintln!("{s}"),
    };

    say(&format!(
        "gsmo cluster: {n} nodes, mode {}, cluster id `{}`",
        cfg.mode, cfg.cluster_id
    ));
    say("  node  client port       peer address");
    for (i, p) in peers.iter().enumerate() {
        say(&format!("  n{i:<4} 127.0.0.1:{:<7} {p}", client_port(i)));
    }

    let (events, mut rx) = mpsc::unbounded_channel();
    let mut pids = Vec::new();
    for i in 0..n {
        let mut cmd = Command::new(&cfg.bin);
        cmd.arg("node")
            .args(["--id", &i.to_string()])
            .args(["--cluster", &n.to_string()])
            .args(["--peer-base", &cfg.peer_base.to_string()])
            .args(["--client-port", &client_port(i).to_string()])
            .args(["--mode", cfg.mode.name()])
            .args(["--cluster-id", &cfg.cluster_id])
            .args([
                "--log-format",
                match cfg.log_format {
                    LogFormat::Text => "text",
                    LogFormat::Shiviz => "shiviz",
                },
            ]);
        if let Some(extra) = cfg.node_args.get(i) {
            cmd.args(extra);
        }
        for (k, v) in &cfg.env {
            cmd.env(k, std::ffi::OsStr::from_bytes(v.expose()));
        }
        die_with_launcher(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                id: i,
                bin: cfg.bin.display().to_string(),
                source,
            })?;
        pids.push(child.id());
        let raw_stdout = cfg.log_format == LogFormat::Shiviz;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(i, out, raw_stdout, false, events.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(i, err, false, true, events.clone()));
        }
        let ev = events.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = ev.send(Event::Exited(i, status));
        });
    }
    drop(events);

    let mut term = signal(SignalKind::terminate()).map_err(LaunchError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(LaunchError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(LaunchError::Signal)?;
    let mut ready = vec![false; n];
    let mut running = vec![true; n];
    let result = loop {
        tokio::select! {
            _ = interrupt.recv() => break Ok(()),
            _ = term.recv() => break Ok(()),
            _ = hangup.recv() => break Ok(()),
            ev = rx.recv() => match ev {
                Some(Event::Ready(i)) => {
                    let was_all = ready.iter().all(|r| *r);
                    ready[i] = true;
                    if !was_all && ready.iter().all(|r| *r) {
                        say(&format!(
                            "all {n} nodes ready. Try:  redis-cli -p {} SET x 1   then   redis-cli -p {} GET x",
                            client_port(0),
                            client_port(n.saturating_sub(1)),
                        ));
                        say("Ctrl-C stops every node.");
                    }
                }
                Some(Event::Exited(i, status)) => {
                    running[i] = false;
                    eprintln!("gsmo cluster: node {i} exited: {}", describe(status));
                    if running.iter().all(|r| !r) {
                        break Err(LaunchError::AllExited);
                    }
                }
                None => break Err(LaunchError::AllExited),
            }
        }
    };
    if result.is_ok() {
        eprintln!("gsmo cluster: stopping {n} nodes");
        stop(&pids, &running, &mut rx).await;
    }
    result
}

/// SIGTERM every running node, wait up to [`STOP_GRACE`], then SIGKILL stragglers.
async fn stop(pids: &[Option<u32>], running: &[bool], rx: &mut mpsc::UnboundedReceiver<Event>) {
    let mut running = running.to_vec();
    for (pid, _) in pids.iter().zip(&running).filter(|(_, r)| **r) {
        if let Some(pid) = pid {
            // Our own child, not yet reaped (its waiter has not reported), so not reused.
            signal_node(*pid, Signal::SIGTERM);
        }
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while running.iter().any(|r| *r) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Exited(i, status))) => {
                running[i] = false;
                eprintln!("gsmo cluster: node {i} stopped: {}", describe(status));
            }
            Ok(Some(Event::Ready(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    for (i, pid) in pids.iter().enumerate().filter(|(i, _)| running[*i]) {
        if let Some(pid) = pid {
            eprintln!("gsmo cluster: node {i} did not stop in {STOP_GRACE:?}; killing it");
            signal_node(*pid, Signal::SIGKILL);
        }
    }
}

fn signal_node(pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(e) = kill(Pid::from_raw(raw), sig) {
        eprintln!("gsmo cluster: cannot send {sig} to pid {pid}: {e}");
    }
}

/// Makes the kernel send the node SIGTERM when the launcher dies, however it dies.
/// (Strictly: when the spawning thread exits; nodes are spawned from the main
/// thread, which `#[tokio::main]` keeps for the launcher's whole life.)
fn die_with_launcher(cmd: &mut Command) {
    let launcher = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // prctl(2), getppid(2) and _exit(2), which are async-signal-safe; it
    // allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            // The launcher may have died before prctl took effect.
            if nix::unistd::getppid() != launcher {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Copies a node's output line by line, prefixed `n<i> | ` unless `raw`, and
/// reports the node's ready line.
async fn forward(
    i: usize,
    stream: impl AsyncRead + Unpin,
    raw: bool,
    to_stderr: bool,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut lines = BufReader::new(stream).lines();
    let ready_prefix = format!("gsmo node {i} ready");
    while let Ok(Some(line)) = lines.next_line().await {
        let ready = line.starts_with(&ready_prefix);
        let line = if raw { line } else { format!("n{i} | {line}") };
        if to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        if ready {
            let _ = events.send(Event::Ready(i));
        }
    }
}
