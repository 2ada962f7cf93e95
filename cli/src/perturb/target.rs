//! Where the perturbations go: a compose project or a Swarm stack
//! ([`Mode`], from the flags and the directory), and the backend that
//! applies and undoes them ([`Target`]).

use super::compose::{apply, undo, Docker};
use super::{swarm, Action, Perturbation};
use std::time::{Duration, Instant};

/// Compose or Swarm, and the project or stack name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Compose { project: String },
    Swarm { stack: String },
}

/// `--stack` means Swarm; else a DIR with stack.yml and no
/// docker-compose.yml (and no `--project`) means Swarm with the directory's
/// name as the stack name; else compose, as before.
pub(super) fn detect_mode(
    stack: Option<&str>,
    project: Option<&str>,
    dir_name: &str,
    has_compose_yml: bool,
    has_stack_yml: bool,
) -> Mode {
    if let Some(s) = stack {
        return Mode::Swarm { stack: s.to_string() };
    }
    if project.is_none() && has_stack_yml && !has_compose_yml {
        return Mode::Swarm {
            stack: dir_name.to_string(),
        };
    }
    Mode::Compose {
        project: project.unwrap_or(dir_name).to_string(),
    }
}

/// Where the perturbations go.
pub(super) enum Target {
    Compose(Docker),
    Swarm(swarm::Swarm),
}

/// What [`Target::apply`] did, for the undo.
pub(super) enum Applied {
    Compose(Vec<(String, String, String)>),
    Swarm(swarm::Step),
}

impl Target {
    /// The action that is applied for a scheduled one (before any substitution).
    pub(super) fn action(&self, scheduled: Action) -> Action {
        match self {
            Target::Compose(_) => scheduled,
            Target::Swarm(_) => swarm::swarm_action(scheduled),
        }
    }

    pub(super) fn apply(&self, p: &Perturbation) -> Result<Applied, String> {
        match self {
            Target::Compose(d) => apply(d, p).map(Applied::Compose),
            Target::Swarm(s) => s.apply(p.action, &p.nodes).map(Applied::Swarm),
        }
    }

    /// Undoes a perturbation; for a killed swarm task, waits (up to
    /// `timeout`) until Swarm runs a new container for each killed service.
    /// Returns notes (swarm: a reconnect at a new address).
    pub(super) async fn undo(
        &self,
        p: &Perturbation,
        done: &Applied,
        timeout: Duration,
    ) -> Result<Vec<String>, String> {
        match (self, done) {
            (Target::Compose(d), Applied::Compose(nets)) => undo(d, p, nets).map(|()| Vec::new()),
            (Target::Swarm(s), Applied::Swarm(step)) => {
                let mut notes = s.undo(step)?;
                if !step.killed.is_empty() {
                    let t = Instant::now();
                    while !s.replaced(step) && t.elapsed() < timeout {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    if !s.replaced(step) {
                        notes.push(format!("swarm did not replace the killed task within {timeout:?}"));
                    }
                }
                Ok(notes)
            }
            _ => Err("internal: undo of another backend's perturbation".into()),
        }
    }

    /// Every node's metrics address now (a swarm task's address changes
    /// when Swarm replaces it).
    pub(super) fn metrics(&self, from_manifest: &[(String, u16)]) -> Vec<(String, u16)> {
        match self {
            Target::Compose(_) => from_manifest.to_vec(),
            Target::Swarm(s) => s.metrics_addrs(from_manifest),
        }
    }
}
