//! `INFO`: the node's state in Redis's `field:value` text form, one section
//! per concern. Values stay on one line; per-peer values are `key=value`
//! lists separated by `,`.

use crate::config::Toggle;
use crate::history;
use crate::links::info_text;
use crate::pages;
use crate::runtime::Runtime;
use gsmo_spec::snapshot::SnapshotId;
use gsmo_spec::NodeId;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

impl Runtime {
    /// Redis-style `INFO` text.
    pub(crate) fn info(&self) -> String {
        let mut s = String::new();
        let (sent, received) = self.node.channel_counts();
        let multicast = &self.node.state().multicast;
        let line = |s: &mut String, k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(s, "{k}:{v}\r\n");
        };
        s.push_str("# Server\r\n");
        line(&mut s, "gsmo_version", &env!("CARGO_PKG_VERSION"));
        line(&mut s, "process_id", &std::process::id());
        line(&mut s, "client_addr", &self.client_addr);
        line(&mut s, "peer_addr", &self.cfg.peer_listen);
        s.push_str("\r\n# Cluster\r\n");
        line(&mut s, "cluster_id", &self.cfg.cluster_id);
        line(&mut s, "node_id", &self.cfg.id);
        line(&mut s, "cluster_size", &self.cfg.cluster_size());
        line(&mut s, "mode", &self.cfg.mode);
        line(
            &mut s,
            "consistency",
            &format!(
                "writes_replied_after_local_delivery_in_{}_order,reads_local",
                self.cfg.mode
            ),
        );
        line(&mut s, "peers_connected", &self.peers_up());
        for j in self.peer_ids() {
            line(&mut s, &format!("peer_n{j}"), &self.peer_line(j));
        }
        let limits = self.node.limits();
        line(&mut s, "write_timeout_ms", &limits.write_timeout_ms);
        line(&mut s, "unreachable_after_ms", &limits.unreachable_after_ms);
        line(&mut s, "link_buffer_bytes", &limits.link_buffer_bytes);
        line(&mut s, "max_batch_writes", &limits.max_batch);
        line(&mut s, "nagle", &Toggle::from(limits.nagle));
        line(&mut s, "peer_queue_frames", &self.cfg.peer_queue);
        line(&mut s, "input_queue", &self.cfg.input_queue);
        line(
            &mut s,
            "write_refusal",
            &self
                .node
                .write_refusal()
                .map_or_else(String::new, |r| r.replace([',', '\r', '\n'], ";")),
        );
        s.push_str("\r\n# Multicast\r\n");
        line(&mut s, "holdback_depth", &self.node.holdback_depth());
        line(&mut s, "pending_writes", &self.node.pending_writes());
        line(&mut s, "multicasts_sent", &multicast.sent());
        line(&mut s, "writes_multicast", &self.node.state().writes);
        line(&mut s, "nagle_holds", &self.nagle_holds);
        line(&mut s, "messages_delivered", &self.delivered_total());
        let per_origin: Vec<String> = multicast
            .delivered()
            .iter()
            .enumerate()
            .map(|(i, d)| format!("n{i}={d}"))
            .collect();
        line(&mut s, "delivered_by_origin", &per_origin.join(","));
        line(&mut s, "peer_messages_sent", &sent.iter().sum::<u64>());
        line(
            &mut s,
            "peer_messages_received",
            &received.iter().sum::<u64>(),
        );
        line(
            &mut s,
            "history_recording",
            &u8::from(self.cfg.admission.debug_commands),
        );
        line(&mut s, "history_events", &self.history.len());
        line(
            &mut s,
            "history_truncated",
            &u8::from(self.history_truncated),
        );
        s.push_str(&self.cfg.admission.info(self.cfg.cluster_size()));
        s.push_str("\r\n# Memory\r\n");
        if let Some(rss) = pages::resident_bytes() {
            line(&mut s, "used_memory_rss", &rss);
        }
        line(&mut s, "transparent_huge_pages", &pages::in_force());
        s.push_str("\r\n# Snapshots\r\n");
        let st = &self.snapshots.stats;
        line(&mut s, "snapshots_started", &st.started);
        line(&mut s, "snapshots_refused", &st.refused);
        line(&mut s, "snapshots_recorded", &st.recorded);
        line(&mut s, "snapshots_completed", &st.completed);
        line(&mut s, "snapshots_stored", &st.stored);
        line(&mut s, "snapshots_committed", &st.committed);
        line(&mut s, "snapshots_aborted", &st.aborted);
        line(&mut s, "snapshot_store_errors", &st.store_errors);
        line(&mut s, "snapshot_writes_pending", &st.writes_pending);
        line(
            &mut s,
            "snapshot_aborts_unrecorded",
            &self.snapshots.unrecorded_aborts(),
        );
        let after = self.snapshots.after_commit();
        let count = |c: &AtomicU64| c.load(Relaxed);
        line(
            &mut s,
            "snapshot_manifest_errors",
            &count(&after.manifest_errors),
        );
        line(
            &mut s,
            "snapshot_retention_errors",
            &count(&after.retention_errors),
        );
        line(&mut s, "snapshots_deleted", &count(&after.deleted));
        line(
            &mut s,
            "snapshot_outcomes_remembered",
            &self.node.snapshot_outcomes_remembered(),
        );
        line(
            &mut s,
            "snapshot_outcomes_max_per_initiator",
            &gsmo_spec::snapshot::REMEMBERED_PER_INITIATOR,
        );
        line(
            &mut s,
            "snapshots_restored",
            &u8::from(self.restored_from.is_some()),
        );
        line(
            &mut s,
            "restored_from",
            &self
                .restored_from
                .map_or_else(String::new, |id| id.to_string()),
        );
        line(&mut s, "epoch", &self.epoch.replace(' ', "_"));
        let active: Vec<String> = self
            .node
            .snapshots_in_progress()
            .iter()
            .map(SnapshotId::to_string)
            .collect();
        line(&mut s, "snapshots_in_progress", &active.join(","));
        line(
            &mut s,
            "last_snapshot",
            &st.last_snapshot
                .map_or_else(String::new, |id| id.to_string()),
        );
        line(&mut s, "last_snapshot_duration_ms", &st.last_duration_ms);
        line(&mut s, "last_snapshot_state_bytes", &st.last_state_bytes);
        line(
            &mut s,
            "last_snapshot_channel_messages",
            &st.last_channel_messages,
        );
        line(&mut s, "last_snapshot_status", &st.last_status);
        line(
            &mut s,
            "last_snapshot_record_step_us",
            &st.last_record_step_us,
        );
        line(
            &mut s,
            "max_snapshot_record_step_us",
            &st.max_record_step_us,
        );
        line(
            &mut s,
            "snapshot_every_s",
            &self.cfg.snapshot_every.map_or(0.0, |d| d.as_secs_f64()),
        );
        line(
            &mut s,
            "snapshot_timeout_s",
            &(limits.snapshot_timeout_ms as f64 / 1000.0),
        );
        line(&mut s, "max_snapshots", &limits.max_snapshots);
        line(&mut s, "snapshot_keep", &self.cfg.snapshot_keep);
        line(
            &mut s,
            "data_dir",
            &self
                .cfg
                .data_dir
                .as_ref()
                .map_or_else(String::new, |d| d.display().to_string()),
        );
        s.push_str("\r\n# Faults\r\n");
        line(
            &mut s,
            "fault_delay_ms",
            &self
                .cfg
                .faults
                .delay
                .map_or_else(String::new, |d| d.to_string()),
        );
        line(
            &mut s,
            "fault_slow_ms",
            &self.cfg.faults.slow.map_or(0, |d| d.as_millis()),
        );
        line(
            &mut s,
            "fault_disconnect_every_ms",
            &self
                .cfg
                .faults
                .disconnect_every
                .map_or(0, |d| d.as_millis()),
        );
        line(&mut s, "fault_disconnects", &self.fault_disconnects);
        line(&mut s, "fault_seed", &self.cfg.faults.seed);
        line(
            &mut s,
            "trace_file",
            &self
                .cfg
                .trace
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string()),
        );
        line(
            &mut s,
            "trace_error",
            &self.trace_error.as_deref().unwrap_or(""),
        );
        // Redis's section and field names; `CONFIG RESETSTAT` zeroes both.
        s.push_str("\r\n# Stats\r\n");
        line(&mut s, "eventloop_cycles", &self.turns.cycles);
        line(
            &mut s,
            "eventloop_duration_sum",
            &self.turns.busy.as_micros(),
        );
        line(&mut s, "input_queue_peak", &self.turns.queue_peak);
        // Named as Redis's section; one line, for writes (reads answer at once).
        s.push_str("\r\n# Latencystats\r\n");
        line(&mut s, "write_latency_usec", &self.write_latency.info());
        s.push_str("\r\n# Keyspace\r\n");
        line(&mut s, "keys", &self.node.kv().len());
        line(
            &mut s,
            "digest",
            &format!("{:016x}", history::digest(self.node.kv())),
        );
        s
    }

    /// One peer: both connections, reconnects, the link's retained frames and
    /// bytes, the last acknowledgement, since when it is unreachable, and
    /// whether this node holds its acks back (the sequencer's flow control).
    fn peer_line(&self, j: NodeId) -> String {
        let p = &self.peers[j];
        let link = self.node.link(j);
        let now = self.node.now();
        let down_for = self
            .node
            .down_since(j)
            .map_or_else(String::new, |t| now.saturating_sub(t).to_string());
        // A refusal since the last handshake with `j` is what its dials meet.
        let out = match self.refusals.refused_by(j) {
            Some(why) => format!("refused({})", info_text(why)),
            None => p.out.to_string(),
        };
        format!(
            "addr={},out={out},in={},reconnects_out={},reconnects_in={},sent={},acked={},delivered={},\
             retained_frames={},retained_bytes={},queued={},queue_full_closes={},refused_resumes={},\
             refusals={},down_for_ms={down_for},unreachable={},acks_held={}",
            self.cfg.peers[j],
            p.inbound,
            p.out_ups.saturating_sub(1),
            p.in_ups.saturating_sub(1),
            link.sent(),
            link.acked(),
            link.delivered(),
            link.retained_frames(),
            link.retained_bytes(),
            p.queued(),
            p.queue_full_closes,
            p.refused_resumes,
            p.refusals,
            u8::from(self.node.is_unreachable(j)),
            u8::from(link.acks_held()),
        )
    }
}
