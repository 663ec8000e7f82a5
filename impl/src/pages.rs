//! Transparent huge pages for a node's process: off unless asked for, as
//! Redis does (`disable-thp yes`, its default).
//!
//! mimalloc marks its arenas `MADV_HUGEPAGE`, so on a kernel whose THP setting
//! is `madvise` or `always` the node's heap comes in 2 MiB pages. The first
//! touch of one zeroes all 2 MiB while the event loop waits, and mimalloc hands
//! freed memory back to the kernel 10 ms later and touches it again, so the
//! zeroing never stops: under unpipelined SET it was 4-6.5% of a peer's CPU
//! on the 2-core VM (`clear_page_erms` under `do_huge_pmd_anonymous_page`).
//! Redis turns THP off for its process for the same latency reason.

use std::fmt;

/// The `--transparent-huge-pages` policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HugePages {
    /// Off for this process and the threads it starts (`prctl(PR_SET_THP_DISABLE)`).
    #[default]
    Off,
    /// The kernel's setting (`/sys/kernel/mm/transparent_hugepage/enabled`).
    System,
}

impl fmt::Display for HugePages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::config::flag_value(self, f)
    }
}

/// Puts `policy` in force for this process. Only Linux can turn THP off for
/// one process; elsewhere asking for `Off` is an `Unsupported` error.
pub fn apply(policy: HugePages) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    return nix::sys::prctl::set_thp_disable(policy == HugePages::Off).map_err(Into::into);
    #[cfg(not(target_os = "linux"))]
    match policy {
        HugePages::System => Ok(()),
        HugePages::Off => Err(std::io::ErrorKind::Unsupported.into()),
    }
}

/// The policy in force, asked of the kernel (for `INFO`), so a failed
/// [`apply`] shows as `system`.
pub fn in_force() -> HugePages {
    #[cfg(target_os = "linux")]
    if nix::sys::prctl::get_thp_disable() == Ok(true) {
        return HugePages::Off;
    }
    HugePages::System
}

/// The process's resident set in bytes (`VmRSS` in `/proc/self/status`), if
/// the system has one to read.
pub fn resident_bytes() -> Option<u64> {
    status_bytes("self", "VmRSS")
}

/// A `kB` field of `/proc/PID/status` (`pid`: a number, or `self`) in bytes,
/// where Linux tells it: `VmRSS`, `VmHWM` (the peak).
pub fn status_bytes(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kb: u64 = kb.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_policy_reads_back_as_applied() {
        apply(HugePages::Off).unwrap();
        assert_eq!(in_force(), HugePages::Off);
        apply(HugePages::System).unwrap();
        assert_eq!(in_force(), HugePages::System);
    }

    #[test]
    fn the_resident_set_is_counted() {
        let rss = resident_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss} bytes resident");
        let peak = status_bytes(&std::process::id().to_string(), "VmHWM").unwrap();
        assert!(peak >= rss, "peak {peak} below resident {rss}");
        assert_eq!(status_bytes("self", "VmNoSuchField"), None);
    }
}
