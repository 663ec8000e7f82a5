//! The node's [`Network`] on turmoil's simulated TCP, with connections the
//! fault schedule can break.
//!
//! turmoil never resets a connection by itself: a segment it drops leaves the
//! receiver waiting for the gap forever, which real TCP would retransmit. So
//! partitions are modelled with `hold`/`release` (segments wait, as they would
//! for a retransmission), and a broken connection is this module's doing: a
//! broken `SimConn` fails every read and write, the node drops it, and the
//! other end sees the close, as after `ss -K`.

use futures::future::BoxFuture;
use gsmo_node::net::{Conn, Listener, Network, Stream};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One connection's kill switch, with the wakers of whoever waits on it.
struct Switch {
    broken: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
    /// The hosts at either end.
    ends: [IpAddr; 2],
}

impl Switch {
    fn trip(&self) {
        self.broken.store(true, SeqCst);
        for w in self.wakers.lock().expect("not poisoned").drain(..) {
            w.wake();
        }
    }

    fn wait(&self, cx: &Context<'_>) {
        let mut w = self.wakers.lock().expect("not poisoned");
        if !w.iter().any(|o| o.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
    }
}

/// Every peer connection the nodes opened, in the order they opened them
/// (so which one a seed breaks is a function of the seed).
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<Vec<Weak<Switch>>>>);

impl Registry {
    fn add(&self, conn: &turmoil::net::TcpStream) -> io::Result<Arc<Switch>> {
        let s = Arc::new(Switch {
            broken: AtomicBool::new(false),
            wakers: Mutex::default(),
            ends: [conn.local_addr()?.ip(), conn.peer_addr()?.ip()],
        });
        let mut all = self.0.lock().expect("not poisoned");
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&s));
        Ok(s)
    }

    /// Breaks every live connection of `host`, in the order they were opened:
    /// what its peers see of a crash, in an order that does not depend on
    /// the order the crashed host's tasks are dropped in (see [`crate::crash`]).
    pub fn break_host(&self, host: IpAddr) {
        let all = self.0.lock().expect("not poisoned").clone();
        for s in all.iter().filter_map(Weak::upgrade) {
            if s.ends.contains(&host) && !s.broken.load(SeqCst) {
                s.trip();
            }
        }
    }

    /// Breaks the `pick`-th live connection (modulo their number); false if none is live.
    pub fn break_one(&self, pick: u64) -> bool {
        let live: Vec<Arc<Switch>> = self
            .0
            .lock()
            .expect("not poisoned")
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|s| !s.broken.load(SeqCst))
            .collect();
        if live.is_empty() {
            return false;
        }
        live[(pick % live.len() as u64) as usize].trip();
        true
    }
}

/// turmoil's sockets, registering peer connections in `registry`.
pub struct TurmoilNet {
    pub registry: Registry,
    /// Ports whose connections may be broken (the peer port, not the client door).
    pub breakable_port: u16,
}

fn host_port(addr: &str) -> io::Result<(String, u16)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("bad address {addr}"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    Ok((host.to_string(), port.parse().map_err(|_| bad())?))
}

impl Network for TurmoilNet {
    fn bind(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let (registry, breakable) = (self.registry.clone(), self.breakable_port);
        Box::pin(async move {
            let (host, port) = host_port(&addr)?;
            let inner = turmoil::net::TcpListener::bind((host.as_str(), port)).await?;
            let registry = (port == breakable).then_some(registry);
            Ok(Box::new(SimListener { inner, registry }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Stream>> {
        let (registry, breakable) = (self.registry.clone(), self.breakable_port);
        Box::pin(async move {
            let (host, port) = host_port(&addr)?;
            let inner = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            let switch = match port == breakable {
                true => Some(registry.add(&inner)?),
                false => None,
            };
            Ok(Box::new(SimConn { inner, switch }) as Stream)
        })
    }
}

struct SimListener {
    inner: turmoil::net::TcpListener,
    registry: Option<Registry>,
}

impl Listener for SimListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(Stream, SocketAddr)>> {
        Box::pin(async move {
            let (inner, addr) = self.inner.accept().await?;
            let switch = match &self.registry {
                Some(r) => Some(r.add(&inner)?),
                None => None,
            };
            Ok((Box::new(SimConn { inner, switch }) as Stream, addr))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

struct SimConn {
    inner: turmoil::net::TcpStream,
    switch: Option<Arc<Switch>>,
}

impl SimConn {
    /// `Some(error)` once broken; otherwise registers the waker for a break.
    fn check(&self, cx: &Context<'_>) -> Option<io::Error> {
        let s = self.switch.as_ref()?;
        if s.broken.load(SeqCst) {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection broken by the simulator",
            ));
        }
        s.wait(cx);
        None
    }
}

impl AsyncRead for SimConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Conn for SimConn {
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.set_nodelay(on)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
    }
}
