//! The node's long-lived tasks (the accept loops, one outgoing link per peer,
//! the ticker, fault injection) run beside the event loop. A panic in one is a
//! bug, and tokio would only print it: the node would look alive while it no
//! longer accepted clients, or never again reached a peer. So the node stops
//! instead, naming the task and its panic, and a supervisor restarts it from
//! its snapshot: crash-only software (Candea & Fox, HotOS 2003), the crash-stop
//! failure the protocol already handles.
//!
//! Per-connection tasks are not here: a panic there loses one connection.

use std::collections::HashMap;
use std::future::Future;
use tokio::task::{Id, JoinError, JoinSet};

/// Long-lived tasks, each with a name for the error that stops the node.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, String>,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `task`; a panic in it stops [`Tasks::beside`].
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name.into());
    }

    /// Runs `main` (the event loop) until it ends, or until a task panics: then
    /// `Err` names the task and its message. A task that returns is not an
    /// error (they return once the event loop has gone). The remaining tasks
    /// are aborted on return.
    pub async fn beside<T>(
        mut self,
        main: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::pin!(main);
        loop {
            tokio::select! {
                result = &mut main => return result,
                Some(done) = self.set.join_next() => {
                    if let Err(e) = done {
                        if e.is_panic() {
                            return Err(self.panicked(e));
                        }
                    }
                }
            }
        }
    }

    fn panicked(&self, e: JoinError) -> String {
        let name = self
            .names
            .get(&e.id())
            .map_or("a task", String::as_str)
            .to_string();
        let message = gsmo_view::text::panic_message(&*e.into_panic());
        format!(
            "internal error: the {name} task panicked ({message}); \
             stopping rather than running without it (restart the node: it resumes from its snapshot)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Each test's deadline: a supervisor that missed a panic would wait for ever.
    const DEADLINE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_panicking_task_stops_the_node_and_is_named() {
        let mut tasks = Tasks::new();
        tasks.spawn("ticker", std::future::pending());
        tasks.spawn("peer accept loop", async { panic!("boom") });
        let main = std::future::pending::<Result<(), String>>();
        let err = tokio::time::timeout(DEADLINE, tasks.beside(main))
            .await
            .expect("the panic went unnoticed")
            .unwrap_err();
        assert!(
            err.starts_with("internal error: the peer accept loop task panicked (boom); stopping"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn tasks_that_return_leave_the_event_loop_running_to_its_end() {
        let mut tasks = Tasks::new();
        tasks.spawn("ticker", async {});
        let (tx, rx) = tokio::sync::oneshot::channel();
        tasks.spawn("disconnect faults", async move {
            tx.send(()).unwrap();
        });
        let main = async {
            rx.await.unwrap();
            tokio::task::yield_now().await;
            Ok::<_, String>(7)
        };
        let result = tokio::time::timeout(DEADLINE, tasks.beside(main)).await;
        assert_eq!(result.expect("the event loop ended"), Ok(7));
    }

    #[tokio::test]
    async fn the_event_loop_s_own_error_passes_through() {
        let mut tasks = Tasks::new();
        tasks.spawn("ticker", std::future::pending());
        let main = async { Err::<(), _>("a disk failed".to_string()) };
        let result = tokio::time::timeout(DEADLINE, tasks.beside(main)).await;
        assert_eq!(result.unwrap(), Err("a disk failed".to_string()));
    }
}
