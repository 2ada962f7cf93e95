//! The one local process supervisor: `bizra run --home nodeK` per
//! validator, each logging to `nodeK/node.log`, tracked by PID.
//!
//! `bizra devnet`, `bizra bench` and the end-to-end tests (`bizra-tests`)
//! all start, watch and stop their nodes through [`Supervisor`]. It stops
//! what it started by PID, never by name: [`Supervisor::stop`] sends SIGCONT
//! and SIGTERM and waits, then SIGKILLs; dropping a supervisor stops every
//! node still running (SIGTERM, SIGKILL after [`STOP_GRACE`]). A node whose
//! exit was seen is never signalled again (its PID may belong to another
//! process by then). The libc calls live in `sys.rs`, the crate's only
//! `unsafe` code.

mod procfs;
mod sys;

pub use procfs::{cpu_secs, status_kib, vm_hwm_kib};
pub use sys::{set_malloc_arena_max, set_malloc_thresholds, Signal};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a stop of every node waits for clean exits before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often a stop polls for the exit.
const POLL: Duration = Duration::from_millis(20);

/// A node that could not be started.
#[derive(Debug)]
pub enum StartError {
    /// `nodeK/node.log` cannot be opened.
    Log(std::io::Error),
    /// The process cannot be spawned.
    Spawn {
        /// Index of the node.
        node: usize,
        /// The spawn error.
        source: std::io::Error,
    },
    /// Node `node` is still running.
    Running {
        /// Index of the node.
        node: usize,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Log(e) => write!(f, "node log: {e}"),
            StartError::Spawn { node, source } => write!(f, "cannot start node{node}: {source}"),
            StartError::Running { node } => write!(f, "node{node} already running"),
        }
    }
}

impl std::error::Error for StartError {}

/// A started node process.
struct Proc {
    child: Child,
    /// Set once its exit was seen: the PID is reaped and may be reused.
    exit: Option<ExitStatus>,
}

/// The `bizra run` processes of one testnet on this host, node K in
/// `homes[K]`. Nothing runs until [`Supervisor::start`].
pub struct Supervisor {
    exe: PathBuf,
    homes: Vec<PathBuf>,
    procs: Vec<Option<Proc>>,
    env: Vec<(String, String)>,
    fresh_logs: bool,
    die_with_parent: bool,
}

impl Supervisor {
    /// Node K runs `EXE run --home homes[K]`.
    pub fn new(exe: impl Into<PathBuf>, homes: Vec<PathBuf>) -> Supervisor {
        let procs = homes.iter().map(|_| None).collect();
        Supervisor {
            exe: exe.into(),
            homes,
            procs,
            env: Vec::new(),
            fresh_logs: false,
            die_with_parent: false,
        }
    }

    /// Sets an environment variable of every node started from now on.
    pub fn env(mut self, key: &str, value: &str) -> Supervisor {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Truncate `node.log` at each start (default: append).
    pub fn fresh_logs(mut self) -> Supervisor {
        self.fresh_logs = true;
        self
    }

    /// Nodes get SIGTERM when the thread that started them dies (Linux):
    /// a SIGKILLed parent leaves no node behind.
    pub fn die_with_parent(mut self) -> Supervisor {
        self.die_with_parent = true;
        self
    }

    /// Number of nodes supervised.
    pub fn len(&self) -> usize {
        self.homes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.homes.is_empty()
    }

    /// Every node's home directory, by index.
    pub fn homes(&self) -> &[PathBuf] {
        &self.homes
    }

    /// Node k's home directory.
    pub fn home(&self, k: usize) -> &Path {
        &self.homes[k]
    }

    /// `nodeK/node.log`.
    pub fn log_path(&self, k: usize) -> PathBuf {
        self.homes[k].join("node.log")
    }

    /// Node k's whole log ("" when there is none).
    pub fn log(&self, k: usize) -> String {
        std::fs::read_to_string(self.log_path(k)).unwrap_or_default()
    }

    /// The last `lines` lines of node k's log.
    pub fn log_tail(&self, k: usize, lines: usize) -> String {
        let log = self.log(k);
        let mut tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.reverse();
        tail.join("\n")
    }

    /// Starts node `k`; returns its PID. A node that exited may be started
    /// again; a running one may not.
    pub fn start(&mut self, k: usize) -> Result<u32, StartError> {
        if self.procs[k].is_some() && self.exited(k).is_none() {
            return Err(StartError::Running { node: k });
        }
        let path = self.log_path(k);
        let log = if self.fresh_logs {
            std::fs::File::create(&path)
        } else {
            std::fs::OpenOptions::new().create(true).append(true).open(&path)
        }
        .map_err(StartError::Log)?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(["run", "--home"])
            .arg(&self.homes[k])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(StartError::Log)?)
            .stderr(log);
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if self.die_with_parent {
            sys::die_with_parent(&mut cmd);
        }
        let child = cmd.spawn().map_err(|source| StartError::Spawn { node: k, source })?;
        let pid = child.id();
        self.procs[k] = Some(Proc { child, exit: None });
        Ok(pid)
    }

    /// Starts every node, in order; stops at the first failure.
    pub fn start_all(&mut self) -> Result<(), StartError> {
        for k in 0..self.len() {
            self.start(k)?;
        }
        Ok(())
    }

    /// Node k's PID, from its start until it is stopped or killed (also
    /// after it exited on its own).
    pub fn pid(&self, k: usize) -> Option<u32> {
        self.procs[k].as_ref().map(|p| p.child.id())
    }

    /// Every node's PID, by index (see [`Supervisor::pid`]).
    pub fn pids(&self) -> Vec<Option<u32>> {
        (0..self.len()).map(|k| self.pid(k)).collect()
    }

    /// Node k's exit status, if it was started and has exited on its own.
    pub fn exited(&mut self, k: usize) -> Option<ExitStatus> {
        let p = self.procs[k].as_mut()?;
        if p.exit.is_none() {
            if let Ok(Some(st)) = p.child.try_wait() {
                p.exit = Some(st);
            }
        }
        p.exit
    }

    /// The first started node that has exited, with its status.
    pub fn first_exited(&mut self) -> Option<(usize, ExitStatus)> {
        (0..self.len()).find_map(|k| self.exited(k).map(|st| (k, st)))
    }

    /// Whether node k was started and is still running.
    pub fn alive(&mut self, k: usize) -> bool {
        self.procs[k].is_some() && self.exited(k).is_none()
    }

    /// Sends `sig` to node k, if it runs (as far as we know: a node whose
    /// exit was seen is left alone).
    pub fn signal(&self, k: usize, sig: Signal) {
        if let Some(p) = &self.procs[k] {
            if p.exit.is_none() {
                sys::send(p.child.id(), sig);
            }
        }
    }

    /// SIGKILL node k and reap it.
    pub fn kill(&mut self, k: usize) {
        self.signal(k, Signal::Kill);
        if let Some(mut p) = self.procs[k].take() {
            let _ = p.child.wait();
        }
    }

    /// SIGCONT and SIGKILL every node, and reap them.
    pub fn kill_all(&mut self) {
        for k in 0..self.len() {
            self.signal(k, Signal::Cont);
            self.kill(k);
        }
    }

    /// Stops node k: SIGCONT (a paused node cannot exit), SIGTERM, then
    /// SIGKILL if it has not exited within `grace`. Returns its exit code,
    /// or None when it had to be killed (or was not started).
    pub fn stop(&mut self, k: usize, grace: Duration) -> Option<i32> {
        self.signal(k, Signal::Cont);
        self.signal(k, Signal::Term);
        let p = self.procs[k].take()?;
        wait_or_kill(p, Instant::now() + grace)
    }

    /// Stops every node as [`Supervisor::stop`] does, all at once: one
    /// `grace` for all of them.
    pub fn stop_all(&mut self, grace: Duration) {
        for k in 0..self.len() {
            self.signal(k, Signal::Cont);
            self.signal(k, Signal::Term);
        }
        let deadline = Instant::now() + grace;
        for slot in self.procs.iter_mut() {
            if let Some(p) = slot.take() {
                wait_or_kill(p, deadline);
            }
        }
    }

    /// Stops node k (as [`Supervisor::stop`]) and starts it again; returns
    /// the exit code of the stop and the new PID.
    pub fn restart(&mut self, k: usize, grace: Duration) -> Result<(Option<i32>, u32), StartError> {
        let code = self.stop(k, grace);
        Ok((code, self.start(k)?))
    }

    /// Peak resident set (VmHWM, KiB) of each node process.
    pub fn peak_rss_kib(&self) -> Vec<Option<u64>> {
        self.pids().into_iter().map(|p| p.and_then(vm_hwm_kib)).collect()
    }
}

/// Waits for `p` to exit until `deadline`, then SIGKILLs and reaps it.
fn wait_or_kill(mut p: Proc, deadline: Instant) -> Option<i32> {
    if let Some(st) = p.exit {
        return st.code();
    }
    loop {
        match p.child.try_wait() {
            Ok(Some(st)) => return st.code(),
            Err(_) => return None,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => {
                let _ = p.child.kill();
                let _ = p.child.wait();
                return None;
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all(STOP_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `bizra`: an executable shell script in `dir`.
    fn sh_supervisor(dir: &Path, script: &str, n: usize) -> Supervisor {
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.join("fake-bizra");
        std::fs::write(&exe, format!("#!/bin/sh\n{script}")).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let homes = (0..n).map(|k| dir.join(format!("node{k}"))).collect::<Vec<_>>();
        for h in &homes {
            std::fs::create_dir_all(h).unwrap();
        }
        Supervisor::new(exe, homes)
    }

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bizra-supervisor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn starts_logs_stops_and_restarts_by_pid() {
        let dir = temp("life");
        // Sets its SIGTERM trap (exit 3), then logs a line with its env and waits.
        // The trap comes first so that once the line is seen, SIGTERM gives 3.
        let script = "trap 'exit 3' TERM\necho \"up $BIZRA_T\"\nwhile :; do sleep 0.05; done\n";
        let mut s = sh_supervisor(&dir, script, 2).env("BIZRA_T", "x");
        s.start_all().unwrap();
        assert!(matches!(s.start(0), Err(StartError::Running { node: 0 })));
        assert!(s.pids().iter().all(Option::is_some));
        let t = Instant::now();
        // Both shells must have set their trap before either is signalled.
        while !(s.log(0).contains("up x") && s.log(1).contains("up x")) && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(s.log_tail(0, 1), "up x");
        assert_eq!(s.log_tail(1, 1), "up x");
        assert!(s.alive(0) && s.first_exited().is_none());
        assert!(s.peak_rss_kib()[0].is_some());
        s.signal(0, Signal::Stop);
        // A paused node still stops: SIGCONT comes first.
        assert_eq!(s.stop(0, Duration::from_secs(10)), Some(3));
        assert!(!s.alive(0) && s.pid(0).is_none());
        let (code, pid) = s.restart(1, Duration::from_secs(10)).unwrap();
        assert_eq!(code, Some(3));
        assert_eq!(s.pid(1), Some(pid));
        s.kill(1);
        assert!(s.pid(1).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
