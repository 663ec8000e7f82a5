//! External commands under deadlines: the `gsmo` binary under test, one-shot
//! commands (`redis-cli`, `ip`, `mount`) and what `/proc` says of a process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long any one external command (`redis-cli`, `redis-benchmark`, a
/// one-shot `gsmo`) may run before it is killed and the test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(180);
/// How long building the `gsmo` binary under test may take.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(1200);

/// The `gsmo` binary under test: `$GSMO_BIN`, or the one built (once per test
/// process) from this very source tree, in this test's profile and target dir.
pub fn gsmo_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("GSMO_BIN") {
        Some(p) => PathBuf::from(p),
        None => build_gsmo(),
    })
    .clone()
}

fn build_gsmo() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile> -> target
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable has no grandparent directory");
    let target_dir = profile_dir
        .parent()
        .expect("profile directory has no parent");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(p) => p,
        None => panic!("no profile in {}", profile_dir.display()),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // The same build `cargo test --workspace` makes (dev-dependency features
    // unified), so under the README's command this is a no-op instead of a
    // second build of every dependency with other features.
    cmd.args(["test", "--quiet", "--workspace", "--no-run"])
        .args(["--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    let out = run_bounded(&mut cmd, BUILD_DEADLINE);
    assert!(
        out.status.success(),
        "building the gsmo binary under test failed ({:?}):\n{}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir.join("gsmo");
    assert!(bin.is_file(), "{cmd:?} left no binary at {}", bin.display());
    bin
}

/// Runs `cmd` to completion within `deadline` (stdin closed, stdout and stderr
/// captured). A command still running at the deadline is killed and the test
/// fails naming it, with everything it printed: no test hangs for ever.
pub fn run_bounded(cmd: &mut Command, deadline: Duration) -> Output {
    run_bounded_with_input(cmd, &[], deadline)
}

/// [`run_bounded`], writing `input` to the command's stdin first.
pub fn run_bounded_with_input(cmd: &mut Command, input: &[u8], deadline: Duration) -> Output {
    use std::io::{Read, Write};
    let stdin = if input.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(mut w) = child.stdin.take() {
        // A command that never reads must not block us: write from a thread.
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = read(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read(Box::new(child.stderr.take().expect("piped stderr")));
    let until = Instant::now() + deadline;
    // Polling for exit with a deadline: std has no wait-with-timeout.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= until => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let (o, e) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        panic!(
            "{cmd:?} did not finish within {deadline:?} and was killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(&e)
        )
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs `program args` within [`COMMAND_DEADLINE`] for a set-up step that may
/// legitimately fail (`ip`, `mount`, `prlimit` where the kernel or the user
/// forbids it): Err says what ran and what it printed, so a test can skip.
pub fn try_run(program: &str, args: &[&str]) -> Result<(), String> {
    if !have_program(program) {
        return Err(format!("{program}: not found on PATH"));
    }
    let out = run_bounded(Command::new(program).args(args), COMMAND_DEADLINE);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether `name` is an executable file on PATH.
fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Whether a tool such as `redis-cli` is on PATH (and answers `--version`).
pub fn have_tool(name: &str) -> bool {
    have_program(name)
        && run_bounded(Command::new(name).arg("--version"), COMMAND_DEADLINE)
            .status
            .success()
}

/// Whether this process runs as root (network namespaces, mounts, prlimit on others).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}
/// Process `pid`'s scheduler state from `/proc/PID/stat` (`'T'` stopped,
/// `'Z'` a zombie), or `None` if there is no such process.
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE ...`: COMM may hold spaces, so split after its `)`.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
}

/// Whether process `pid` still runs (a zombie waiting for its reaper has stopped).
pub fn is_running(pid: u32) -> bool {
    proc_state(pid).is_some_and(|s| !matches!(s, 'Z' | 'X'))
}
/// Runs the `gsmo` binary to completion (for `snapshot` and `trace` commands);
/// returns success and stdout+stderr.
pub fn gsmo<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String) {
    let out = run_bounded(Command::new(gsmo_bin()).args(args), COMMAND_DEADLINE);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_command_is_killed_and_named() {
        let started = Instant::now();
        let err = std::panic::catch_unwind(|| {
            run_bounded(
                Command::new("sh").args(["-c", "echo partial; exec sleep 60"]),
                Duration::from_millis(300),
            )
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("did not finish within") && msg.contains("sleep"),
            "{msg}"
        );
        assert!(msg.contains("partial"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(50));
        let out =
            run_bounded_with_input(&mut Command::new("cat"), b"echo", Duration::from_secs(60));
        assert_eq!(out.stdout, b"echo");
    }
}
