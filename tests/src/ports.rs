//! Free ports for test nodes, chosen at random so that test processes
//! running side by side rarely try the same ones.

use crate::random_u64;
use std::net::TcpListener;

/// `k` ports that are free now, below the kernel's ephemeral range (so no
/// outgoing connection is handed one by chance) and randomly placed (so test
/// runs in parallel processes rarely try the same ones).
pub fn free_ports(k: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    for p in random_ports() {
        if ports.len() == k {
            break;
        }
        if !ports.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok() {
            ports.push(p);
        }
    }
    ports
}

/// The first of `len` consecutive ports that are free now (for the launcher,
/// which numbers its nodes' ports from a base), placed as [`free_ports`] places
/// them.
pub fn free_port_run(len: u16) -> u16 {
    random_ports()
        .find(|&base| (base..base + len).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()))
        .expect("the candidates never run out")
}

/// Candidate ports in 20000-31999, below the kernel's ephemeral range, in an
/// order of this process's own (xorshift64).
fn random_ports() -> impl Iterator<Item = u16> {
    let mut x = random_u64() | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        20_000 + (x % 12_000) as u16
    })
}
