//! Client admission control, as Redis does it: how many clients may connect
//! (`maxclients`), who may run commands (`requirepass` + `AUTH`), who may run
//! the debug commands (`enable-debug-command`), how many unread reply
//! bytes one client may leave behind (`client-output-buffer-limit`), and how
//! many of its reads may be answered and not yet collected.
//!
//! [`Admission`] holds the settings and the live counters, shared by every
//! connection and `INFO`; a [`Gate`] is one connection's view (is it
//! authenticated yet?) and answers the commands it does not let through.
//! Descriptors are budgeted at start: the soft `RLIMIT_NOFILE` is raised to
//! the hard one, and [`reserved_fds`] of them are kept from clients for peer
//! links, listeners and snapshot files, so idle clients can never starve them.

use crate::resp::Call;
use crate::secret::Secret;
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Redis's default `maxclients`; fewer if the descriptor limit is lower.
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Unread reply bytes one client may accumulate before it is disconnected.
pub const DEFAULT_OUTPUT_BUFFER_LIMIT: usize = 64 << 20;
/// Reads of one client answered by the replica and not yet encoded. As deep
/// as `redis-benchmark -P 16`: a pipeline that fits is one run, one answer,
/// one wake-up and one `send`; at 8 it took two runs and 1.2 `send`s, for a
/// fifth more CPU per pipelined `GET` (docs/performance.md).
pub const DEFAULT_READS_IN_FLIGHT: usize = 16;
/// The most `--client-reads-in-flight` may be: each read may hold a whole
/// value, so the bound must stay a small multiple of a pipeline.
pub const MAX_READS_IN_FLIGHT: usize = 1024;

/// Entries one client connection may queue for its collector (a reply, or a
/// run of up to 16 requests) before its reader stops reading: deeper than any
/// pipeline `redis-benchmark` sends. What an entry holds is bounded apart (the
/// read slots, the output limit), so this bounds only the bookkeeping.
pub const DEFAULT_REPLY_QUEUE: usize = 1024;
/// The most `--client-reply-queue` may be.
pub const MAX_REPLY_QUEUE: usize = 1 << 16;

/// The debug commands, refused unless the node runs with `--debug-commands`.
pub const DEBUG_COMMANDS: [&str; 3] = ["GSMO.DUMP", "GSMO.HISTORY", "GSMO.DIGEST"];

/// The reply a client gets when the node is full (Redis's wording).
pub const MAX_CLIENTS_ERROR: &[u8] = b"-ERR max number of clients reached\r\n";

/// Settings and counters of the client door.
#[derive(Debug)]
pub struct Admission {
    pub max_clients: usize,
    pub output_buffer_limit: usize,
    /// Reads one client may have answered and not yet collected; more wait.
    pub reads_in_flight: usize,
    /// Entries one client's reply queue holds before its reader waits.
    pub reply_queue: usize,
    /// The largest request (fixed: [`crate::resp::MAX_REQUEST`]), shown in `INFO`.
    pub max_request: usize,
    /// The soft `RLIMIT_NOFILE` after raising it, shown in `INFO`.
    pub open_files_limit: u64,
    pub requirepass: Option<Secret>,
    pub debug_commands: bool,
    pub counters: Counters,
}

/// Live counts, for `INFO`.
#[derive(Debug, Default)]
pub struct Counters {
    connected: AtomicUsize,
    rejected: AtomicU64,
    output_disconnections: AtomicU64,
    read_slot_waits: AtomicU64,
    reply_queue_waits: AtomicU64,
    auth_failures: AtomicU64,
    /// Connections on the peer port being handshaken or served.
    peer_open: AtomicUsize,
    peer_rejected: AtomicU64,
    peer_handshake_failures: AtomicU64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            max_clients: DEFAULT_MAX_CLIENTS,
            output_buffer_limit: DEFAULT_OUTPUT_BUFFER_LIMIT,
            reads_in_flight: DEFAULT_READS_IN_FLIGHT,
            reply_queue: DEFAULT_REPLY_QUEUE,
            max_request: crate::resp::MAX_REQUEST,
            open_files_limit: 0,
            requirepass: None,
            debug_commands: false,
            counters: Counters::default(),
        }
    }
}

/// A connected client's place; gives it back on drop.
#[derive(Debug)]
pub struct Slot(Arc<Admission>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.counters.connected.fetch_sub(1, Relaxed);
    }
}

/// Takes one of `max` places counted by `open`, or counts a rejection and
/// returns how many so far (which paces the log).
fn take_place(open: &AtomicUsize, max: usize, rejected: &AtomicU64) -> Result<(), u64> {
    match open.fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1)) {
        Ok(_) => Ok(()),
        Err(_) => Err(rejected.fetch_add(1, Relaxed) + 1),
    }
}

/// A connection's place on the peer port, given back when it ends.
#[derive(Debug)]
pub struct PeerSlot(Arc<Admission>);

impl Drop for PeerSlot {
    fn drop(&mut self) {
        self.0.counters.peer_open.fetch_sub(1, Relaxed);
    }
}

/// Connections the peer port holds at once, channels included: each member
/// has two with every other, and 8 more leave room for reconnects and a few
/// strangers mid-handshake, within [`reserved_fds`].
pub fn peer_port_max(cluster_size: usize) -> usize {
    2 * cluster_size + 8
}

impl Admission {
    /// A place on the peer port of a `cluster_size` cluster, or, when
    /// [`peer_port_max`] are open, `Err(n)`: the `n`th connection turned away.
    /// Strangers holding the port cannot use up the descriptors kept for
    /// peers and snapshots.
    pub fn try_admit_peer(self: &Arc<Self>, cluster_size: usize) -> Result<PeerSlot, u64> {
        let max = peer_port_max(cluster_size);
        let c = &self.counters;
        take_place(&c.peer_open, max, &c.peer_rejected).map(|()| PeerSlot(self.clone()))
    }

    /// A place for a new client, or `None` (and a rejection counted) when full.
    pub fn try_admit(self: &Arc<Self>) -> Option<Slot> {
        let c = &self.counters;
        take_place(&c.connected, self.max_clients, &c.rejected)
            .ok()
            .map(|()| Slot(self.clone()))
    }

    /// Counts a handshake on the peer port that did not complete (a wrong
    /// secret or configuration, a stranger, a timeout); returns the count so
    /// far, which paces the log.
    pub fn peer_handshake_failed(&self) -> u64 {
        self.counters.peer_handshake_failures.fetch_add(1, Relaxed) + 1
    }

    pub fn connected(&self) -> usize {
        self.counters.connected.load(Relaxed)
    }

    /// Counts a client cut off for passing the output buffer limit.
    pub fn output_limit_hit(&self) {
        self.counters.output_disconnections.fetch_add(1, Relaxed);
    }

    /// Counts a client's reader that found every read slot taken and waited.
    pub fn read_slot_wait(&self) {
        self.counters.read_slot_waits.fetch_add(1, Relaxed);
    }

    /// Counts a client's reader that found its reply queue full and waited.
    pub fn reply_queue_wait(&self) {
        self.counters.reply_queue_waits.fetch_add(1, Relaxed);
    }

    /// The `# Clients` section of `INFO`, with the peer port of a
    /// `cluster_size` cluster.
    pub fn info(&self, cluster_size: usize) -> String {
        let mut s = String::from("\r\n# Clients\r\n");
        let mut line = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(s, "{k}:{v}\r\n");
        };
        line("connected_clients", &self.connected());
        line("maxclients", &self.max_clients);
        line(
            "rejected_connections",
            &self.counters.rejected.load(Relaxed),
        );
        line("open_files_limit", &self.open_files_limit);
        line("client_output_buffer_limit", &self.output_buffer_limit);
        line(
            "client_output_buffer_limit_disconnections",
            &self.counters.output_disconnections.load(Relaxed),
        );
        line("client_reads_in_flight", &self.reads_in_flight);
        line(
            "client_read_slot_waits",
            &self.counters.read_slot_waits.load(Relaxed),
        );
        line("client_reply_queue", &self.reply_queue);
        line(
            "client_reply_queue_waits",
            &self.counters.reply_queue_waits.load(Relaxed),
        );
        line("client_max_request_bytes", &self.max_request);
        line("auth_required", &u8::from(self.requirepass.is_some()));
        line("auth_failures", &self.counters.auth_failures.load(Relaxed));
        line("debug_commands", &u8::from(self.debug_commands));
        line(
            "peer_port_connections",
            &self.counters.peer_open.load(Relaxed),
        );
        line("peer_port_maxconnections", &peer_port_max(cluster_size));
        line(
            "rejected_peer_connections",
            &self.counters.peer_rejected.load(Relaxed),
        );
        line(
            "peer_handshake_failures",
            &self.counters.peer_handshake_failures.load(Relaxed),
        );
        s
    }
}

/// Descriptors kept from clients: stdio, listeners, the runtime's own, snapshot
/// and trace files, and two links per peer plus strangers mid-handshake.
pub fn reserved_fds(cluster_size: usize) -> u64 {
    32 + 4 * cluster_size as u64
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!("cannot read the open files limit: {e}");
            DEFAULT_MAX_CLIENTS as u64
        }
    }
}

/// `maxclients` for `open_files` descriptors: `requested` (default
/// [`DEFAULT_MAX_CLIENTS`]) lowered, with a warning, to what the descriptors
/// left after [`reserved_fds`] allow, as Redis does.
pub fn max_clients(
    open_files: u64,
    cluster_size: usize,
    requested: Option<usize>,
) -> Result<usize, String> {
    let reserved = reserved_fds(cluster_size);
    let available = open_files.saturating_sub(reserved);
    if available == 0 {
        return Err(format!(
            "the open files limit ({open_files}) leaves no descriptors for clients after the \
             {reserved} kept for peers and snapshot files: raise it (ulimit -n)"
        ));
    }
    let want = requested.unwrap_or(DEFAULT_MAX_CLIENTS);
    let fit = usize::try_from(available).unwrap_or(usize::MAX);
    if want > fit {
        if requested.is_some() {
            tracing::warn!(
                "--maxclients {want} lowered to {fit}: the open files limit is {open_files} and \
                 {reserved} descriptors are kept for peers and snapshot files"
            );
        }
        return Ok(fit);
    }
    Ok(want)
}

/// Parses `--client-reads-in-flight`: 1 to [`MAX_READS_IN_FLIGHT`].
pub fn parse_reads_in_flight(s: &str) -> Result<usize, String> {
    parse_count(s, MAX_READS_IN_FLIGHT)
}

/// Parses `--client-reply-queue`: 1 to [`MAX_REPLY_QUEUE`] entries.
pub fn parse_reply_queue(s: &str) -> Result<usize, String> {
    parse_count(s, MAX_REPLY_QUEUE)
}

fn parse_count(s: &str, max: usize) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("bad count `{s}`: expected 1 to {max}"))
}

/// Parses a byte size: `1048576`, `512kb`, `64mb`, `1gb` (Redis's units, powers of 1024).
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: usize = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => {
            return Err(format!(
                "bad size `{s}`: expected bytes or a number with kb, mb or gb"
            ))
        }
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("bad size `{s}`: expected a positive number, e.g. 64mb"))
}

/// One connection's gate: authentication state and the commands it stops.
#[derive(Debug)]
pub struct Gate {
    admission: Arc<Admission>,
    authenticated: bool,
}

fn err(msg: &str) -> BytesFrame {
    BytesFrame::Error(msg.into())
}

impl Gate {
    pub fn new(admission: Arc<Admission>) -> Self {
        let authenticated = admission.requirepass.is_none();
        Gate {
            admission,
            authenticated,
        }
    }

    /// `None` lets the request through to the command table; `Some` is the
    /// reply instead (AUTH is answered here, always: it is the gate's own
    /// command, not the table's, so it is the one name matched here).
    pub fn check(&mut self, call: Call) -> Option<BytesFrame> {
        let args = call.args();
        let name = args.first()?;
        match call.name() {
            Some("QUIT") => return None,
            Some("HELLO") => return self.hello(&args[1..]),
            None if name.eq_ignore_ascii_case(b"AUTH") => return Some(self.auth(&args[1..])),
            _ => {}
        }
        if !self.authenticated {
            return Some(err("NOAUTH Authentication required."));
        }
        match call.name() {
            Some(debug) if !self.admission.debug_commands && DEBUG_COMMANDS.contains(&debug) => {
                Some(err(&format!(
                    "ERR {debug} is a debug command, disabled on this node: start it with \
                     --debug-commands"
                )))
            }
            _ => None,
        }
    }

    /// `AUTH password` or `AUTH default password`.
    fn auth(&mut self, a: &[Bytes]) -> BytesFrame {
        let (user, pass) = match a {
            [pass] => (None, pass),
            [user, pass] => (Some(user), pass),
            _ => return err("ERR wrong number of arguments for 'auth' command"),
        };
        self.verify(user, pass).unwrap_or_else(|| {
            self.authenticated = true;
            BytesFrame::SimpleString(Bytes::from_static(b"OK"))
        })
    }

    /// `None` on success; otherwise the error to reply.
    fn verify(&self, user: Option<&Bytes>, pass: &[u8]) -> Option<BytesFrame> {
        let Some(secret) = &self.admission.requirepass else {
            return Some(err(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            ));
        };
        // Both checks run, so timing does not tell a wrong user from a wrong password.
        let user_ok = user.is_none_or(|u| &u[..] == b"default");
        if secret.matches(pass) && user_ok {
            return None;
        }
        self.admission.counters.auth_failures.fetch_add(1, Relaxed);
        Some(err(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`: authenticates if
    /// asked to, then lets the command table answer the rest.
    fn hello(&mut self, a: &[Bytes]) -> Option<BytesFrame> {
        let auth = a
            .iter()
            .position(|x| x.eq_ignore_ascii_case(b"AUTH"))
            .map(|i| (a.get(i + 1), a.get(i + 2)));
        match auth {
            Some((Some(user), Some(pass))) => {
                if let Some(e) = self.verify(Some(user), pass) {
                    return Some(e);
                }
                self.authenticated = true;
                None
            }
            Some(_) => Some(err("ERR Syntax error in HELLO option 'AUTH'")),
            None if self.authenticated => None,
            None => Some(err(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn check(g: &mut Gate, args: &[Bytes]) -> Option<BytesFrame> {
        g.check(Call::new(args))
    }

    fn error_text(f: Option<BytesFrame>) -> String {
        match f {
            Some(BytesFrame::Error(e)) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn with(requirepass: Option<&str>, debug_commands: bool) -> Arc<Admission> {
        Arc::new(Admission {
            requirepass: requirepass.map(Secret::new),
            debug_commands,
            ..Admission::default()
        })
    }

    #[test]
    fn nothing_but_auth_hello_and_quit_before_auth() {
        let adm = with(Some("s3cret"), true);
        let mut g = Gate::new(adm.clone());
        assert!(error_text(check(&mut g, &args("GET k")))
            .starts_with("NOAUTH Authentication required."));
        assert!(
            error_text(check(&mut g, &args("HELLO 2"))).starts_with("NOAUTH HELLO must be called")
        );
        assert_eq!(check(&mut g, &args("QUIT")), None);
        assert!(error_text(check(&mut g, &args("AUTH wrong"))).starts_with("WRONGPASS"));
        assert!(error_text(check(&mut g, &args("AUTH alice s3cret"))).starts_with("WRONGPASS"));
        assert!(
            error_text(check(&mut g, &args("AUTH a b c"))).contains("wrong number of arguments")
        );
        assert!(error_text(check(&mut g, &args("SET k v"))).starts_with("NOAUTH"));
        assert_eq!(adm.counters.auth_failures.load(Relaxed), 2);
        assert_eq!(
            check(&mut g, &args("auth default s3cret")),
            Some(BytesFrame::SimpleString(Bytes::from_static(b"OK")))
        );
        assert_eq!(check(&mut g, &args("GET k")), None);
        assert_eq!(check(&mut g, &args("GSMO.DUMP")), None);

        assert_eq!(
            check(&mut g, &args("HELLO 3")),
            None,
            "authenticated already"
        );

        let mut g = Gate::new(adm.clone());
        assert_eq!(check(&mut g, &args("HELLO 2 AUTH default s3cret")), None);
        assert_eq!(check(&mut g, &args("GET k")), None);
    }

    /// The peer port holds `2n + 8` connections; the next is turned away and
    /// counted, and a closed one frees its place (INFO shows all three).
    #[test]
    fn the_peer_port_holds_two_per_member_and_eight_more() {
        let adm = Arc::new(Admission::default());
        let held: Vec<PeerSlot> = (0..14).map_while(|_| adm.try_admit_peer(3).ok()).collect();
        assert_eq!(held.len(), 14);
        assert_eq!(adm.try_admit_peer(3).err(), Some(1));
        assert_eq!(
            adm.try_admit_peer(3).err(),
            Some(2),
            "the count paces the log"
        );
        let info = adm.info(3);
        for want in [
            "peer_port_connections:14\r\n",
            "peer_port_maxconnections:14\r\n",
            "rejected_peer_connections:2\r\n",
        ] {
            assert!(info.contains(want), "{want} in {info}");
        }
        drop(held);
        assert!(adm.try_admit_peer(3).is_ok());
        assert!(adm.info(3).contains("peer_port_connections:0\r\n"));
    }

    #[test]
    fn auth_without_a_password_and_debug_commands_off() {
        let mut g = Gate::new(with(None, false));
        assert_eq!(check(&mut g, &args("GET k")), None);
        assert!(
            error_text(check(&mut g, &args("AUTH x"))).contains("without any password configured")
        );
        assert_eq!(
            error_text(check(&mut g, &args("gsmo.Digest"))),
            "ERR GSMO.DIGEST is a debug command, disabled on this node: start it with \
             --debug-commands"
        );
        assert!(error_text(check(&mut g, &args("aUtH x"))).contains("without any password"));
        assert_eq!(
            check(&mut g, &args("NOSUCH x")),
            None,
            "the table words that error"
        );
        for c in DEBUG_COMMANDS {
            assert!(
                error_text(check(&mut g, &args(&c.to_lowercase()))).contains("--debug-commands")
            );
        }
    }

    #[test]
    fn slots_are_bounded_and_given_back() {
        let adm = Arc::new(Admission {
            max_clients: 2,
            ..Admission::default()
        });
        let a = adm.try_admit().unwrap();
        let _b = adm.try_admit().unwrap();
        assert_eq!(adm.connected(), 2);
        assert!(adm.try_admit().is_none());
        drop(a);
        assert_eq!(adm.connected(), 1);
        let _c = adm.try_admit().unwrap();
        adm.output_limit_hit();
        let info = adm.info(3);
        assert!(info.contains("connected_clients:2\r\n"), "{info}");
        assert!(info.contains("rejected_connections:1\r\n"), "{info}");
        assert!(
            info.contains("client_output_buffer_limit_disconnections:1\r\n"),
            "{info}"
        );
    }

    /// The soft limit is raised to the hard one. The test lowers its own
    /// process's soft limit by one first (harmless: the hard limit is far
    /// above what the tests open), so there is something to raise.
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, hard - 1, hard).unwrap();
        assert_eq!(raise_open_files_limit(), hard);
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (hard, hard));
        assert_eq!(raise_open_files_limit(), hard, "nothing to raise");
    }

    #[test]
    fn limits_parse_and_fit_the_descriptors() {
        assert_eq!(parse_bytes("64mb"), Ok(64 << 20));
        assert_eq!(parse_bytes("512KB"), Ok(512 << 10));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("2gb"), Ok(2 << 30));
        assert_eq!(parse_bytes("3m"), Ok(3 << 20));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_reads_in_flight("1"), Ok(1));
        assert_eq!(parse_reads_in_flight("1024"), Ok(MAX_READS_IN_FLIGHT));
        assert!(parse_reads_in_flight("0").is_err());
        assert!(parse_reads_in_flight("1025").is_err());
        assert!(parse_reads_in_flight("many").is_err());
        assert_eq!(parse_reply_queue("65536"), Ok(MAX_REPLY_QUEUE));
        assert!(parse_reply_queue("65537").is_err());
        assert!(parse_reply_queue("0").is_err());
        assert_eq!(max_clients(1 << 20, 3, None), Ok(DEFAULT_MAX_CLIENTS));
        assert_eq!(max_clients(200, 3, None), Ok(200 - 44));
        assert_eq!(max_clients(200, 3, Some(10)), Ok(10));
        assert_eq!(max_clients(200, 3, Some(1000)), Ok(156));
        assert!(max_clients(40, 3, None).unwrap_err().contains("ulimit -n"));
    }
}
