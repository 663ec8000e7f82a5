//! From arguments to a configured model: titles, broken variants and what
//! each promises, the search.

use super::cli::*;
use gsmo_model::abort::{self as abort_model, AbortCfg};
use gsmo_model::causal::CausalCfg;
use gsmo_model::faults::Faults;
use gsmo_model::kv::KvCfg;
use gsmo_model::link::LinkCfg;
use gsmo_model::refusal::RefusalCfg;
use gsmo_model::snapshot::SnapshotCfg;
use gsmo_model::total::TotalCfg;
use gsmo_spec::multicast::Mode;

pub(crate) fn plural(k: impl Into<u64>, what: &str) -> String {
    let k = k.into();
    format!("{k} {what}{}", if k == 1 { "" } else { "s" })
}

impl ModelCmd {
    pub(crate) fn job(&self) -> Result<Job, String> {
        let mut job = self.configured()?;
        job.compare = self.search_args().compare;
        if job.search.symmetry && !matches!(job.model, AnyModel::Causal(_)) {
            return Err("--symmetry: only the causal model has a sound symmetry \
                 (see SYMMETRY in check --help)"
                .into());
        }
        if job.search.por {
            match &job.model {
                AnyModel::Snapshot(cfg) => cfg.validate_reduced()?,
                _ => {
                    return Err("--por: only the snapshot model is reduced \
                         (see POR in check --help)"
                        .into())
                }
            }
        }
        if job.compare && !job.search.symmetry && !job.search.por {
            return Err("--compare compares a reduction: add --symmetry or --por".into());
        }
        Ok(job)
    }

    pub(crate) fn search_args(&self) -> &SearchArgs {
        match self {
            ModelCmd::Causal(a) => &a.search,
            ModelCmd::TotalSequencer(a) | ModelCmd::TotalIsis(a) => &a.search,
            ModelCmd::Snapshot(a) => &a.search,
            ModelCmd::Kv(a) => &a.search,
            ModelCmd::Link(a) => &a.search,
            ModelCmd::Abort(a) => &a.search,
            ModelCmd::Refusal(a) => &a.search,
        }
    }

    pub(crate) fn configured(&self) -> Result<Job, String> {
        Ok(match self.clone() {
            ModelCmd::Causal(a) => {
                let cfg = CausalCfg {
                    nodes: a.nodes,
                    msgs: a.msgs,
                    channels: a.network,
                    broken: a.broken,
                };
                Job {
                    title: format!(
                        "causal: {} x {}, {} channels{}",
                        plural(a.nodes as u64, "node"),
                        plural(a.msgs, "msg"),
                        cfg.effective_channels(),
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Causal(cfg),
                }
            }
            ModelCmd::TotalSequencer(a) => total_job(Mode::TotalSequencer, a)?,
            ModelCmd::TotalIsis(a) => total_job(Mode::TotalIsis, a)?,
            ModelCmd::Snapshot(a) => {
                let cfg = SnapshotCfg {
                    mode: a.mode,
                    nodes: a.nodes,
                    transfers: a.msgs,
                    balance: a.balance,
                    amount: a.amount,
                    snapshots: a.snapshots,
                    max_snapshots: a.max_snapshots,
                    channels: a.network,
                    broken: a.broken,
                };
                cfg.validate()?;
                Job {
                    title: format!(
                        "snapshot (bank over {}): {} of {} x {} of {}, {}{}, {} channels{}",
                        a.mode,
                        plural(a.nodes as u64, "account"),
                        a.balance,
                        plural(a.msgs, "transfer"),
                        a.amount,
                        plural(a.snapshots as u64, "snapshot"),
                        a.max_snapshots
                            .map_or_else(String::new, |m| format!(" (at most {m} in progress)")),
                        cfg.effective_channels(),
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Snapshot(cfg),
                }
            }
            ModelCmd::Kv(a) => {
                let cfg = KvCfg {
                    mode: a.mode,
                    nodes: a.nodes,
                    writes: a.msgs,
                    snapshots: a.snapshots,
                    channels: a.network,
                    broken: a.broken,
                    faults: Faults {
                        disconnects: a.disconnects,
                        link_buffer: a.link_buffer,
                        ..Faults::default()
                    },
                    batch: a.batch,
                };
                cfg.validate()?;
                let mut disconnects = if a.disconnects > 0 {
                    format!(", {} each", plural(a.disconnects as u64, "disconnect"))
                } else {
                    String::new()
                };
                if a.batch > 1 {
                    disconnects += &format!(", batches of up to {}", a.batch);
                }
                if let Some(bytes) = a.link_buffer {
                    disconnects += &format!(", link buffers of {}", plural(bytes, "byte"));
                }
                Job {
                    title: format!(
                        "kv over {}: {} x {}, {}, {} channels{disconnects}{}",
                        a.mode,
                        plural(a.nodes as u64, "replica"),
                        plural(a.msgs, "write"),
                        plural(a.snapshots as u64, "snapshot"),
                        cfg.effective_channels(),
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Kv(cfg),
                }
            }
            ModelCmd::Link(a) => {
                if a.nodes < 2 {
                    return Err("a link needs --nodes 2 or more".into());
                }
                let cfg = LinkCfg {
                    nodes: a.nodes,
                    msgs: a.msgs,
                    faults: a.faults,
                    disconnects: a.disconnects,
                    lossy: !a.no_loss,
                    duplicating: !a.no_duplicates,
                    reordering: !a.fifo,
                    broken: a.broken,
                };
                let kinds: Vec<&str> = [
                    (cfg.lossy, "lose"),
                    (cfg.duplicating, "duplicate"),
                    (cfg.reordering, "reorder"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, k)| *k)
                .collect();
                Job {
                    title: format!(
                        "link: {} x {} each way, {} ({}), {}{}",
                        plural(a.nodes as u64, "node"),
                        plural(a.msgs, "msg"),
                        plural(a.faults, "network fault"),
                        kinds.join("/"),
                        plural(a.disconnects, "disconnect"),
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Link(cfg),
                }
            }
            ModelCmd::Refusal(a) => {
                if a.nodes < 2 {
                    return Err("a refusal needs --nodes 2 or more".into());
                }
                Job {
                    title: format!(
                        "refusal: {} addresses (nodes or strangers), every cast{}",
                        a.nodes,
                        broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
                    ),
                    promises: a.broken.map(|b| b.caught_by()),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Refusal(RefusalCfg {
                        nodes: a.nodes,
                        broken: a.broken,
                    }),
                }
            }
            ModelCmd::Abort(a) => {
                let cfg = AbortCfg {
                    mode: a.mode,
                    nodes: a.nodes,
                    writes: a.msgs,
                    snapshots: a.snapshots,
                    crash: !a.no_crash,
                    store_failures: !a.no_store_failures,
                    disconnects: a.disconnects,
                    broken: a.broken,
                };
                Job {
                    title: format!(
                        "abort over {}: {} x {}, {}, crash {}, disk failures {}, {}{}",
                        a.mode,
                        plural(a.nodes as u64, "replica"),
                        plural(a.msgs, "write"),
                        plural(a.snapshots as u64, "snapshot"),
                        if cfg.crash { "yes" } else { "no" },
                        if cfg.store_failures { "yes" } else { "no" },
                        plural(a.disconnects as u64, "disconnect"),
                        broken_suffix(a.broken.map(|b| (name_of(b), abort_model::caught_by(b))))
                    ),
                    promises: a.broken.map(abort_model::caught_by),
                    search: a.search.search(),
                    compare: false,
                    model: AnyModel::Abort(cfg),
                }
            }
        })
    }
}

pub(crate) fn total_job(mode: Mode, a: TotalArgs) -> Result<Job, String> {
    let cfg = TotalCfg {
        mode,
        nodes: a.nodes,
        msgs: a.msgs,
        channels: a.network,
        broken: a.broken,
    };
    cfg.validate()?;
    Ok(Job {
        title: format!(
            "{mode}: {} x {}, {} channels{}",
            plural(a.nodes as u64, "node"),
            plural(a.msgs, "msg"),
            cfg.effective_channels(),
            broken_suffix(a.broken.map(|b| (name_of(b), b.caught_by())))
        ),
        promises: a.broken.map(|b| b.caught_by()),
        search: a.search.search(),
        compare: false,
        model: AnyModel::Total(cfg),
    })
}

pub(crate) fn name_of(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

pub(crate) fn broken_suffix(b: Option<(String, &str)>) -> String {
    match b {
        Some((name, property)) => format!(", BROKEN: {name} (must violate \"{property}\")"),
        None => String::new(),
    }
}
