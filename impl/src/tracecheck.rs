//! `gsmo trace check`: replays recorded node traces ([`crate::tracefile`])
//! through the spec and judges the combined history with its predicates;
//! `gsmo trace show` draws them as a space-time diagram.

use crate::tracefile::read_trace;
use anyhow::{bail, Context};
use gsmo_spec::trace::{check_cluster, Trace};
use std::path::{Path, PathBuf};

/// Reads traces (one per node, in id order) and checks them with the spec.
pub fn load_traces(paths: &[PathBuf]) -> anyhow::Result<Vec<Trace>> {
    let mut traces = Vec::new();
    for p in paths {
        let (t, truncated) = read_trace(p)?;
        if truncated > 0 {
            eprintln!(
                "{}: ignoring its last record, cut short (the node was killed mid-write)",
                p.display()
            );
        }
        traces.push(t);
    }
    Ok(traces)
}

fn mode_of(t: &Trace) -> gsmo_spec::multicast::Mode {
    match &t.start {
        gsmo_spec::trace::Start::Fresh { mode, .. } => *mode,
        gsmo_spec::trace::Start::Restored { part, .. } => part.state.multicast.mode(),
    }
}

pub fn check_traces(paths: &[PathBuf], quiescent: bool) -> anyhow::Result<()> {
    let traces = load_traces(paths)?;
    let Some(first) = traces.first() else {
        bail!("no traces given: pass one per node, e.g. traces/n0.trace traces/n1.trace ...");
    };
    let mode = mode_of(first);
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

/// `gsmo trace show`: the traces as a space-time diagram, in SVG and/or HTML.
pub fn show_traces(
    paths: &[PathBuf],
    svg: Option<&Path>,
    html: Option<&Path>,
    steps: Option<usize>,
) -> anyhow::Result<()> {
    use gsmo_view::spacetime;
    let traces = load_traces(paths)?;
    anyhow::ensure!(!traces.is_empty(), "no traces given");
    let total: usize = traces.iter().map(|t| t.steps.len()).sum();
    let title = format!(
        "{} nodes, {}: {total} steps{}",
        traces.len(),
        mode_of(&traces[0]),
        steps.map_or(String::new(), |k| format!(" (first {k} per node)"))
    );
    let d = gsmo_view::trace::diagram(&traces, &title, steps);
    for (path, text) in [
        (svg, svg.map(|_| spacetime::svg(&d))),
        (html, html.map(|_| spacetime::html(&d))),
    ] {
        if let (Some(path), Some(text)) = (path, text) {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    let recorded = d.messages.iter().filter(|m| !m.recorded.is_empty()).count();
    println!(
        "{} nodes, {} events, {} messages, {} snapshot cuts, {recorded} messages recorded in flight",
        d.nodes.len(),
        d.events.iter().map(Vec::len).sum::<usize>(),
        d.messages.len(),
        d.cuts.len()
    );
    Ok(())
}
