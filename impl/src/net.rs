//! Everything the node takes from its surroundings besides its inputs:
//! sockets, the wall clock and entropy. Production uses `tokio::net`, the
//! system clock and the OS's random source ([`Net::tokio`]); the deterministic
//! simulator (`sim/`) passes its own [`Network`] and installs a seeded
//! [`Simulated`] environment on its thread, so one binary runs either way, chosen by the
//! caller at run time.
//!
//! Snapshot files are the one other effect: under the simulator nodes run
//! without `--data-dir`, so a part is "stored" in memory at once and
//! `spawn_blocking` (which can hang a simulated runtime) is never reached.

use futures::future::BoxFuture;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream (a TCP connection, real or simulated).
pub trait Conn: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    fn set_nodelay(&self, on: bool) -> io::Result<()>;
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// One non-blocking write (the max-clients refusal).
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

/// A connection, whichever network it is on.
pub type Stream = Box<dyn Conn>;

/// A listening socket.
pub trait Listener: Send + Sync + 'static {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Stream, SocketAddr)>>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Where sockets come from.
pub trait Network: Send + Sync + 'static {
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Stream>>;
}

/// The node's network handle (cheap to clone).
#[derive(Clone)]
pub struct Net(Arc<dyn Network>);

impl Net {
    /// Real sockets.
    pub fn tokio() -> Self {
        Net(Arc::new(TokioNet))
    }

    pub fn new(network: impl Network) -> Self {
        Net(Arc::new(network))
    }

    pub async fn bind(&self, addr: &str) -> io::Result<Box<dyn Listener>> {
        self.0.bind(addr.to_string()).await
    }

    pub async fn connect(&self, addr: &str) -> io::Result<Stream> {
        self.0.connect(addr.to_string()).await
    }
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Net")
    }
}

struct TokioNet;

impl Network for TokioNet {
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let l = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(l) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Stream>> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            Ok(Box::new(s) as Stream)
        })
    }
}

impl Listener for tokio::net::TcpListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Stream, SocketAddr)>> {
        Box::pin(async move {
            let (s, a) = tokio::net::TcpListener::accept(self).await?;
            Ok((Box::new(s) as Stream, a))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}

impl Conn for tokio::net::TcpStream {
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        tokio::net::TcpStream::set_nodelay(self, on)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpStream::peer_addr(self)
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::TcpStream::try_write(self, buf)
    }
}

/// A seeded replacement for the wall clock and the OS's random source, for
/// the thread that runs a simulation (turmoil runs every host on it). While
/// one is installed, status lines are not printed either.
pub struct Simulated {
    pub rng: fastrand::Rng,
    /// Milliseconds since the Unix epoch, as the simulation sees it.
    pub unix_ms: fn() -> u64,
}

thread_local! {
    static SIMULATED: RefCell<Option<Simulated>> = const { RefCell::new(None) };
}

/// Makes this thread's nodes draw nonces from `entropy` and read its clock
/// (until [`uninstall`]).
pub fn install(entropy: Simulated) {
    SIMULATED.with(|e| *e.borrow_mut() = Some(entropy));
}

pub fn uninstall() {
    SIMULATED.with(|e| *e.borrow_mut() = None);
}

/// Whether this thread runs a simulation.
pub fn simulated() -> bool {
    SIMULATED.with(|e| e.borrow().is_some())
}

/// Random bytes: the OS's CSPRNG, or the installed seeded generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let seeded = SIMULATED.with(|e| {
        e.borrow_mut().as_mut().map(|e| {
            e.rng.fill(&mut out);
        })
    });
    if seeded.is_none() {
        getrandom::fill(&mut out).expect("the operating system's random source failed");
    }
    out
}

/// Wall-clock milliseconds since the Unix epoch (for files and `TIME`, never for the protocol).
pub fn unix_ms() -> u64 {
    if let Some(ms) = SIMULATED.with(|e| e.borrow().as_ref().map(|e| (e.unix_ms)())) {
        return ms;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulation's clock and randomness hold on its thread until it is
    /// uninstalled, and then the real ones are back (the next simulation on a
    /// reused test thread starts clean).
    #[test]
    fn a_simulated_environment_holds_until_uninstalled() {
        fn epoch_plus_one() -> u64 {
            1
        }
        let draw = |seed| {
            install(Simulated {
                rng: fastrand::Rng::with_seed(seed),
                unix_ms: epoch_plus_one,
            });
            assert!(simulated());
            assert_eq!(unix_ms(), 1);
            random_bytes::<16>()
        };
        assert_eq!(draw(7), draw(7), "a seed repeats its nonces");
        uninstall();
        assert!(!simulated());
        assert!(unix_ms() > 1_700_000_000_000, "the real clock is back");
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }

    /// `Conn::set_nodelay` reaches the socket: `--nagle` depends on it.
    #[tokio::test]
    async fn nodelay_reaches_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        for on in [true, false] {
            Conn::set_nodelay(&stream, on).unwrap();
            assert_eq!(stream.nodelay().unwrap(), on);
        }
    }
}
