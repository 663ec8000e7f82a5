//! `gsmo trace check`: replays recorded node traces ([`crate::tracefile`])
//! through the spec and judges the combined history with its predicates.

use crate::tracefile::read_trace;
use anyhow::bail;
use gsmo_spec::trace::{check_cluster, Trace};
use std::path::PathBuf;

/// Reads traces (one per node, in id order) and checks them with the spec.
pub fn load_traces(paths: &[PathBuf]) -> anyhow::Result<Vec<Trace>> {
    let mut traces = Vec::new();
    for p in paths {
        let (t, truncated) = read_trace(p)?;
        if truncated > 0 {
            eprintln!(
                "{}: ignoring a last record cut short ({truncated} bytes; the node was killed mid-write)",
                p.display()
            );
        }
        traces.push(t);
    }
    Ok(traces)
}

pub fn check_traces(paths: &[PathBuf], quiescent: bool) -> anyhow::Result<()> {
    let traces = load_traces(paths)?;
    let Some(first) = traces.first() else {
        bail!("no traces given: pass one per node, e.g. traces/n0.trace traces/n1.trace ...");
    };
    let mode = match &first.start {
        gsmo_spec::trace::Start::Fresh { mode, .. } => *mode,
        gsmo_spec::trace::Start::Restored { part, .. } => part.state.multicast.mode(),
    };
    match check_cluster(&traces, mode, quiescent) {
        Ok(c) => {
            println!(
                "CONFORMS: {} traces, {} steps replayed through the spec, {} channel messages \
                 matched, {} deliveries checked for {mode} order",
                traces.len(),
                c.steps,
                c.messages,
                c.deliveries
            );
            Ok(())
        }
        Err(v) => bail!("DOES NOT CONFORM: {v}"),
    }
}
