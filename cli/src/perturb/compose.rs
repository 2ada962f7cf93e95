//! The compose backend: `docker compose` (or `docker-compose`) and
//! `docker` calls that apply and undo a perturbation on a compose project,
//! one command for all of a perturbation's nodes, and the memory of its
//! containers' processes.

use super::report::ProcMem;
use super::{Action, Perturbation};
use bizra_testnet::supervisor::status_kib;
use std::path::Path;
use std::process::Command;

pub(super) struct Docker {
    compose: Vec<String>,
}

impl Docker {
    pub(super) fn new(dir: &Path, project: &str) -> Result<Docker, String> {
        let file = dir.join("docker-compose.yml");
        let base: Vec<String> = if Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            vec!["docker".into(), "compose".into()]
        } else {
            vec!["docker-compose".into()]
        };
        let mut compose = base;
        compose.extend(["-f".into(), file.display().to_string(), "-p".into(), project.into()]);
        Ok(Docker { compose })
    }

    pub(super) fn compose(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.compose[0])
            .args(&self.compose[1..])
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", self.compose.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "compose {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub(super) fn docker(args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .args(args)
            .output()
            .map_err(|e| format!("docker: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "docker {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The container id of each of `svcs`, with one compose and one docker
    /// call (a compose call per node took tens of seconds each at alpha-100).
    pub(super) fn containers(&self, svcs: &[String]) -> Result<Vec<String>, String> {
        let ids = self.compose(&["ps", "-q"])?;
        let mut args = vec![
            "inspect",
            "-f",
            "{{index .Config.Labels \"com.docker.compose.service\"}} {{.Id}}",
        ];
        args.extend(ids.lines().map(str::trim).filter(|l| !l.is_empty()));
        let out = Docker::docker(&args)?;
        let by_service: std::collections::HashMap<&str, &str> =
            out.lines().filter_map(|l| l.trim().split_once(' ')).collect();
        svcs.iter()
            .map(|s| {
                by_service
                    .get(s.as_str())
                    .map(|id| id.to_string())
                    .ok_or_else(|| format!("{s}: no container"))
            })
            .collect()
    }
}

pub(super) fn services(p: &Perturbation) -> Vec<String> {
    p.nodes.iter().map(|k| format!("node{k}")).collect()
}

/// `[verb, nodeA, nodeB, ...]`: one compose command for a perturbation's nodes.
pub(super) fn verb_args<'a>(verb: &'a str, svcs: &'a [String]) -> Vec<&'a str> {
    std::iter::once(verb).chain(svcs.iter().map(String::as_str)).collect()
}

/// Applies a perturbation; returns the undo steps' state (network + IP per node).
///
/// One compose command for all the perturbation's nodes: with 100 services
/// each `docker-compose` call takes tens of seconds on a busy host, so a
/// call per node made a 20-node kill last ten minutes.
pub(super) fn apply(d: &Docker, p: &Perturbation) -> Result<Vec<(String, String, String)>, String> {
    let svcs = services(p);
    let with = |verb: &'static str| verb_args(verb, &svcs);
    let mut undo = Vec::new();
    match p.action {
        Action::KillStart => {
            d.compose(&with("kill"))?;
        }
        Action::PauseUnpause => {
            d.compose(&with("pause"))?;
        }
        Action::Restart => {
            d.compose(&with("restart"))?;
        }
        Action::KillTask | Action::ScaleToZero => return Err(format!("{:?} is a swarm action", p.action)),
        Action::Disconnect => {
            let ids = d.containers(&svcs)?;
            let mut args = vec![
                "inspect",
                "-f",
                "{{range $n, $c := .NetworkSettings.Networks}}{{$n}} {{$c.IPAddress}}{{end}}",
            ];
            args.extend(ids.iter().map(String::as_str));
            let nets = Docker::docker(&args)?;
            let nets: Vec<&str> = nets.lines().collect();
            if nets.len() != ids.len() {
                return Err(format!(
                    "docker inspect: {} answers for {} containers",
                    nets.len(),
                    ids.len()
                ));
            }
            for ((c, line), svc) in ids.iter().zip(nets).zip(&svcs) {
                let (net, ip) = line
                    .trim()
                    .split_once(' ')
                    .ok_or_else(|| format!("{svc}: no network"))?;
                Docker::docker(&["network", "disconnect", net, c])?;
                undo.push((c.clone(), net.to_string(), ip.to_string()));
            }
        }
    }
    Ok(undo)
}

pub(super) fn undo(d: &Docker, p: &Perturbation, nets: &[(String, String, String)]) -> Result<(), String> {
    let svcs = services(p);
    let with = |verb: &'static str| verb_args(verb, &svcs);
    match p.action {
        Action::KillStart => {
            d.compose(&with("start"))?;
        }
        Action::PauseUnpause => {
            d.compose(&with("unpause"))?;
        }
        Action::Restart | Action::Disconnect => {}
        Action::KillTask | Action::ScaleToZero => return Err(format!("{:?} is a swarm action", p.action)),
    }
    for (c, net, ip) in nets {
        Docker::docker(&["network", "connect", "--ip", ip, net, c])?;
    }
    Ok(())
}

/// VmRSS and VmHWM of every running container of the project, by the PID
/// docker reports (`bizra run` is each container's init process).
pub(super) fn container_memory(d: &Docker) -> Vec<ProcMem> {
    let Ok(ids) = d.compose(&["ps", "-q"]) else {
        return Vec::new();
    };
    let ids: Vec<&str> = ids.lines().filter(|l| !l.trim().is_empty()).collect();
    memory_of(ids)
}

/// VmRSS and VmHWM of the given containers' init processes.
pub(super) fn memory_of(ids: Vec<&str>) -> Vec<ProcMem> {
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["inspect", "-f", "{{.Name}} {{.State.Pid}}"];
    args.extend(ids);
    let Ok(out) = Docker::docker(&args) else {
        return Vec::new();
    };
    let mut v: Vec<ProcMem> = out
        .lines()
        .filter_map(|l| {
            let (name, pid) = l.trim().split_once(' ')?;
            let pid: u32 = pid.parse().ok().filter(|p| *p > 0)?;
            Some(ProcMem {
                name: name.trim_start_matches('/').to_string(),
                pid,
                vm_rss_kib: status_kib(pid, "VmRSS"),
                vm_hwm_kib: status_kib(pid, "VmHWM"),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}
