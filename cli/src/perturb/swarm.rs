//! The Docker Swarm side of `bizra testnet perturb` (a stack deployed from
//! the `bizra testnet stack` layout: one single-replica service `STACK_nodeK`
//! per validator on the attachable overlay network `STACK_bizra`).
//!
//! The seeded schedule is the compose one; each scheduled action becomes a
//! swarm action (see [`swarm_action`]):
//!
//! | scheduled | in a swarm | apply | undo |
//! | --- | --- | --- | --- |
//! | kill/start | kill the task | `docker kill C1 C2 ...` | none: Swarm starts a new task (new container, new IP); we wait for it |
//! | restart | scale to zero and back | `docker service scale --detach S1=0 S2=0 ...` | `... S1=1 S2=1 ...` |
//! | pause/unpause | same | `docker pause C1 C2 ...` | `docker unpause C1 C2 ...` |
//! | disconnect | cut the task off the overlay | `docker network disconnect STACK_bizra C` per container | `docker network connect STACK_bizra C` |
//!
//! Docker takes one container per `network disconnect`; when it refuses a
//! swarm task (the containers already cut off are connected again), that
//! perturbation is done as pause/unpause instead and the substitution is
//! recorded with Docker's answer.
//!
//! The reconnect gives the task its old address back (`--ip`, read before the
//! disconnect): a plain `network connect` of a swarm task hands out another
//! address (seen: 10.0.1.9 became 10.0.1.2), while Swarm's DNS still answers
//! the old one for the service name and the peers' TCP connections to the
//! old address stay ESTABLISHED with nothing acknowledged, so the node never
//! recovered (180 s). If Docker refuses `--ip`, the reconnect is retried
//! without it and that is noted in the report.

use super::compose::Docker;
use super::Action;
use std::collections::HashMap;

/// The label Swarm puts on every task container: the full service name.
pub const SERVICE_LABEL: &str = "com.docker.swarm.service.name";
/// The bridge through which a task's host-mode published ports (and the
/// docker host) reach it; the host can reach every task at its address here.
const GWBRIDGE: &str = "docker_gwbridge";

/// `STACK_nodeK`.
pub fn service(stack: &str, k: usize) -> String {
    format!("{stack}_node{k}")
}

/// `STACK_bizra`.
pub fn network(stack: &str) -> String {
    format!("{stack}_bizra")
}

/// What a scheduled action becomes in a swarm.
pub fn swarm_action(a: Action) -> Action {
    match a {
        Action::KillStart | Action::KillTask => Action::KillTask,
        Action::Restart | Action::ScaleToZero => Action::ScaleToZero,
        Action::PauseUnpause => Action::PauseUnpause,
        Action::Disconnect => Action::Disconnect,
    }
}

/// One perturbation as docker command lines (arguments after `docker`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What is done.
    pub action: Action,
    /// The scheduled action this one stands in for (a refused disconnect).
    pub substitute_for: Option<Action>,
    /// Why: Docker's answer to the refused command.
    pub reason: Option<String>,
    pub apply: Vec<Vec<String>>,
    pub undo: Vec<Vec<String>>,
    /// The perturbed services.
    pub services: Vec<String>,
    /// Containers killed: after the hold, wait until Swarm has replaced them.
    pub killed: Vec<String>,
}

/// The docker command lines of one perturbation. `containers[i]` are the
/// current containers of `nodes[i]` (unused when scaling); `ips` their
/// addresses on the stack's network (for the reconnect; a container without
/// one is reconnected with whatever address Docker gives). With `refused`
/// (Docker's answer to a disconnect) a disconnect is done as pause/unpause.
pub fn plan(
    stack: &str,
    scheduled: Action,
    nodes: &[usize],
    containers: &[Vec<String>],
    ips: &HashMap<String, String>,
    refused: Option<String>,
) -> Step {
    let services: Vec<String> = nodes.iter().map(|&k| service(stack, k)).collect();
    let all: Vec<String> = containers.iter().flatten().cloned().collect();
    let with = |verb: &[&str], items: &[String]| -> Vec<String> {
        verb.iter()
            .map(|s| s.to_string())
            .chain(items.iter().cloned())
            .collect()
    };
    let scale = |to: u32| -> Vec<String> {
        let targets: Vec<String> = services.iter().map(|s| format!("{s}={to}")).collect();
        with(&["service", "scale", "--detach"], &targets)
    };
    let mut action = swarm_action(scheduled);
    let mut substitute_for = None;
    if action == Action::Disconnect && refused.is_some() {
        substitute_for = Some(Action::Disconnect);
        action = Action::PauseUnpause;
    }
    let (apply, undo, killed) = match action {
        Action::KillTask => (vec![with(&["kill"], &all)], vec![], all.clone()),
        Action::ScaleToZero => (vec![scale(0)], vec![scale(1)], vec![]),
        Action::PauseUnpause => (vec![with(&["pause"], &all)], vec![with(&["unpause"], &all)], vec![]),
        Action::Disconnect => {
            let net = network(stack);
            let cut = all
                .iter()
                .map(|c| with(&["network", "disconnect"], &[net.clone(), c.clone()]))
                .collect();
            let back = all
                .iter()
                .map(|c| match ips.get(c) {
                    Some(ip) => with(&["network", "connect", "--ip"], &[ip.clone(), net.clone(), c.clone()]),
                    None => with(&["network", "connect"], &[net.clone(), c.clone()]),
                })
                .collect();
            (cut, back, vec![])
        }
        Action::KillStart | Action::Restart => unreachable!("swarm_action maps these"),
    };
    Step {
        action,
        substitute_for,
        reason: refused.filter(|_| substitute_for.is_some()),
        apply,
        undo,
        services,
        killed,
    }
}

/// `docker ps --no-trunc --format '{{.ID}} {{.Label "…service.name"}}'` →
/// service → its running (or paused) containers.
pub fn parse_ps(out: &str) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for l in out.lines() {
        if let Some((id, svc)) = l.trim().split_once(' ') {
            let svc = svc.trim();
            if !svc.is_empty() && !id.is_empty() {
                m.entry(svc.to_string()).or_default().push(id.to_string());
            }
        }
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

/// The reconnect without `--ip ADDR`, for when Docker refuses the address.
pub fn without_ip(cmd: &[String]) -> Option<Vec<String>> {
    let i = cmd.iter().position(|a| a == "--ip")?;
    let mut v = cmd.to_vec();
    v.drain(i..(i + 2).min(v.len()));
    Some(v)
}

/// `docker inspect` lines `ID ADDR` (ADDR possibly empty) → ID → ADDR.
pub fn parse_ips(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (id, ip) = l.trim().split_once(' ')?;
            let ip = ip.trim();
            (!ip.is_empty()).then(|| (id.to_string(), ip.to_string()))
        })
        .collect()
}

/// `docker network inspect docker_gwbridge` lines `ID ADDR/LEN` → ID → ADDR.
pub fn parse_gwbridge(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| {
            let (id, addr) = l.trim().split_once(' ')?;
            let ip = addr.trim().split('/').next()?;
            (!ip.is_empty()).then(|| (id.to_string(), ip.to_string()))
        })
        .collect()
}

/// Every node's metrics address: its current task's address on the
/// gateway bridge (which the docker host reaches) with the node's metrics
/// port, else the address from testnet.json.
pub fn metrics_from(
    stack: &str,
    fallback: &[(String, u16)],
    by_service: &HashMap<String, Vec<String>>,
    gw: &HashMap<String, String>,
) -> Vec<(String, u16)> {
    fallback
        .iter()
        .enumerate()
        .map(|(k, (host, port))| {
            by_service
                .get(&service(stack, k))
                .and_then(|cs| cs.iter().find_map(|c| gw.get(c)))
                .map_or_else(|| (host.clone(), *port), |ip| (ip.clone(), *port))
        })
        .collect()
}

/// Whether Swarm has replaced every killed container of `step`'s services
/// by a running one.
pub fn replaced(step: &Step, by_service: &HashMap<String, Vec<String>>) -> bool {
    step.services.iter().all(|s| {
        by_service
            .get(s)
            .is_some_and(|cs| cs.iter().any(|c| !step.killed.contains(c)))
    })
}

pub struct Swarm {
    pub stack: String,
}

fn run(cmd: &[String]) -> Result<String, String> {
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    Docker::docker(&args)
}

impl Swarm {
    pub fn new(stack: &str) -> Swarm {
        Swarm {
            stack: stack.to_string(),
        }
    }

    /// Every running task container on this docker host, by service (one
    /// `docker ps`).
    pub fn containers(&self) -> Result<HashMap<String, Vec<String>>, String> {
        let label = format!("label={SERVICE_LABEL}");
        let format = format!("{{{{.ID}}}} {{{{.Label \"{SERVICE_LABEL}\"}}}}");
        let out = Docker::docker(&["ps", "--no-trunc", "--filter", &label, "--format", &format])?;
        Ok(parse_ps(&out))
    }

    /// The containers of this stack's validators, sorted.
    pub fn stack_containers(&self) -> Vec<String> {
        let prefix = format!("{}_node", self.stack);
        let mut v: Vec<String> = self
            .containers()
            .unwrap_or_default()
            .into_iter()
            .filter(|(s, _)| s.strip_prefix(&prefix).is_some_and(|k| k.parse::<usize>().is_ok()))
            .flat_map(|(_, cs)| cs)
            .collect();
        v.sort();
        v
    }

    fn node_containers(&self, nodes: &[usize]) -> Result<Vec<Vec<String>>, String> {
        let by = self.containers()?;
        nodes
            .iter()
            .map(|&k| {
                let s = service(&self.stack, k);
                by.get(&s)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .ok_or_else(|| format!("{s}: no running container"))
            })
            .collect()
    }

    /// Each container's address on the stack's network (one `docker inspect`).
    fn overlay_ips(&self, containers: &[String]) -> Result<HashMap<String, String>, String> {
        let format = format!(
            "{{{{.Id}}}} {{{{with index .NetworkSettings.Networks \"{}\"}}}}{{{{.IPAddress}}}}{{{{end}}}}",
            network(&self.stack)
        );
        let mut args = vec!["inspect", "-f", format.as_str()];
        args.extend(containers.iter().map(String::as_str));
        Ok(parse_ips(&Docker::docker(&args)?))
    }

    /// Applies a perturbation. A disconnect Docker refuses is undone for the
    /// containers already cut off and done as pause/unpause instead.
    pub fn apply(&self, scheduled: Action, nodes: &[usize]) -> Result<Step, String> {
        let containers = if swarm_action(scheduled) == Action::ScaleToZero {
            Vec::new()
        } else {
            self.node_containers(nodes)?
        };
        let ips = if swarm_action(scheduled) == Action::Disconnect {
            let all: Vec<String> = containers.iter().flatten().cloned().collect();
            self.overlay_ips(&all)?
        } else {
            HashMap::new()
        };
        let step = plan(&self.stack, scheduled, nodes, &containers, &ips, None);
        for (i, cmd) in step.apply.iter().enumerate() {
            if let Err(e) = run(cmd) {
                if step.action != Action::Disconnect {
                    return Err(e);
                }
                self.run_undo(&step.undo[..i])?;
                let sub = plan(&self.stack, scheduled, nodes, &containers, &ips, Some(e));
                for cmd in &sub.apply {
                    run(cmd)?;
                }
                return Ok(sub);
            }
        }
        Ok(step)
    }

    /// Runs the undo commands (none for a kill: Swarm replaces the task);
    /// returns notes on reconnects Docker refused to do with the old address.
    pub fn undo(&self, step: &Step) -> Result<Vec<String>, String> {
        self.run_undo(&step.undo)
    }

    fn run_undo(&self, cmds: &[Vec<String>]) -> Result<Vec<String>, String> {
        let mut notes = Vec::new();
        for cmd in cmds {
            if let Err(e) = run(cmd) {
                let Some(plain) = without_ip(cmd) else {
                    return Err(e);
                };
                run(&plain)?;
                notes.push(format!("{e}; reconnected with a new address"));
            }
        }
        Ok(notes)
    }

    pub fn replaced(&self, step: &Step) -> bool {
        self.containers().is_ok_and(|by| replaced(step, &by))
    }

    /// Every node's metrics address (see [`metrics_from`]).
    pub fn metrics_addrs(&self, fallback: &[(String, u16)]) -> Vec<(String, u16)> {
        let by = self.containers().unwrap_or_default();
        let gw = Docker::docker(&[
            "network",
            "inspect",
            GWBRIDGE,
            "-f",
            "{{range $id, $c := .Containers}}{{$id}} {{$c.IPv4Address}}\n{{end}}",
        ])
        .map(|o| parse_gwbridge(&o))
        .unwrap_or_default();
        metrics_from(&self.stack, fallback, &by, &gw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn no_ips() -> HashMap<String, String> {
        HashMap::new()
    }

    #[test]
    fn schedule_actions_map_to_swarm_actions() {
        assert_eq!(swarm_action(Action::KillStart), Action::KillTask);
        assert_eq!(swarm_action(Action::Restart), Action::ScaleToZero);
        assert_eq!(swarm_action(Action::PauseUnpause), Action::PauseUnpause);
        assert_eq!(swarm_action(Action::Disconnect), Action::Disconnect);
    }

    #[test]
    fn kill_is_one_docker_kill_and_waits_for_swarm() {
        let st = plan(
            "st4",
            Action::KillStart,
            &[1, 3],
            &[s(&["c1"]), s(&["c3a", "c3b"])],
            &no_ips(),
            None,
        );
        assert_eq!(st.action, Action::KillTask);
        assert_eq!(st.apply, vec![s(&["kill", "c1", "c3a", "c3b"])]);
        assert!(st.undo.is_empty(), "no start: Swarm replaces the task");
        assert_eq!(st.killed, s(&["c1", "c3a", "c3b"]));
        assert_eq!(st.services, s(&["st4_node1", "st4_node3"]));
        assert_eq!(st.substitute_for, None);
    }

    #[test]
    fn scale_is_one_service_scale_each_way() {
        let st = plan("st4", Action::Restart, &[0, 2], &[], &no_ips(), None);
        assert_eq!(st.action, Action::ScaleToZero);
        assert_eq!(
            st.apply,
            vec![s(&["service", "scale", "--detach", "st4_node0=0", "st4_node2=0"])]
        );
        assert_eq!(
            st.undo,
            vec![s(&["service", "scale", "--detach", "st4_node0=1", "st4_node2=1"])]
        );
        assert!(st.killed.is_empty());
    }

    #[test]
    fn pause_is_one_command_each_way() {
        let st = plan("x", Action::PauseUnpause, &[2], &[s(&["a", "b"])], &no_ips(), None);
        assert_eq!(st.apply, vec![s(&["pause", "a", "b"])]);
        assert_eq!(st.undo, vec![s(&["unpause", "a", "b"])]);
    }

    #[test]
    fn disconnect_is_per_container_on_the_stack_network_and_reconnects_at_the_old_address() {
        let ips = parse_ips("c1 10.0.1.9\nc2 \n");
        let st = plan(
            "st4",
            Action::Disconnect,
            &[1, 2],
            &[s(&["c1"]), s(&["c2"])],
            &ips,
            None,
        );
        assert_eq!(st.action, Action::Disconnect);
        assert_eq!(
            st.apply,
            vec![
                s(&["network", "disconnect", "st4_bizra", "c1"]),
                s(&["network", "disconnect", "st4_bizra", "c2"])
            ]
        );
        assert_eq!(
            st.undo,
            vec![
                s(&["network", "connect", "--ip", "10.0.1.9", "st4_bizra", "c1"]),
                // No address known: whatever Docker gives.
                s(&["network", "connect", "st4_bizra", "c2"])
            ]
        );
        assert_eq!(
            without_ip(&st.undo[0]),
            Some(s(&["network", "connect", "st4_bizra", "c1"]))
        );
        assert_eq!(without_ip(&st.undo[1]), None);
    }

    #[test]
    fn a_refused_disconnect_becomes_pause_and_is_recorded() {
        let why = "Error response from daemon: not allowed".to_string();
        let st = plan(
            "st4",
            Action::Disconnect,
            &[1],
            &[s(&["c1"])],
            &no_ips(),
            Some(why.clone()),
        );
        assert_eq!(st.action, Action::PauseUnpause);
        assert_eq!(st.substitute_for, Some(Action::Disconnect));
        assert_eq!(st.reason, Some(why));
        assert_eq!(st.apply, vec![s(&["pause", "c1"])]);
        assert_eq!(st.undo, vec![s(&["unpause", "c1"])]);
        // A refusal note only ever turns a disconnect into something else.
        let k = plan(
            "st4",
            Action::KillStart,
            &[1],
            &[s(&["c1"])],
            &no_ips(),
            Some("x".into()),
        );
        assert_eq!((k.action, k.substitute_for, k.reason), (Action::KillTask, None, None));
    }

    #[test]
    fn ps_and_gwbridge_parse_and_give_metrics_addresses() {
        let by = parse_ps("aaa st4_node0\nbbb st4_node1\nccc other_web\nddd st4_node1\n\n");
        assert_eq!(by["st4_node1"], s(&["bbb", "ddd"]));
        let gw = parse_gwbridge("aaa 172.18.0.3/16\ningress-sbox 172.18.0.2/16\n");
        assert_eq!(gw["aaa"], "172.18.0.3");
        let fb = vec![("node0".to_string(), 7600), ("node1".to_string(), 7601)];
        assert_eq!(
            metrics_from("st4", &fb, &by, &gw),
            vec![("172.18.0.3".to_string(), 7600), ("node1".to_string(), 7601)]
        );
    }

    #[test]
    fn replaced_needs_a_new_container_for_every_killed_service() {
        let st = plan("st4", Action::KillStart, &[1], &[s(&["old"])], &no_ips(), None);
        assert!(!replaced(&st, &parse_ps("old st4_node1\n")));
        assert!(!replaced(&st, &parse_ps("zzz st4_node0\n")));
        assert!(replaced(&st, &parse_ps("new st4_node1\n")));
    }
}
