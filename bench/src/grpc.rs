//! `bizra bench grpc`: a closed-loop load generator for one node's gRPC API,
//! compared in the same run with a bare tonic server.
//!
//! `--concurrency C` tasks each send one request, wait for the answer, record
//! its latency and send the next, until `--duration` is over (after a 1 s
//! warm-up that is not recorded). The tasks share `--connections` HTTP/2
//! channels (task i uses channel i mod connections).
//!
//! The baseline: an in-process tonic server on 127.0.0.1:0, on its own
//! runtime with as many worker threads as the node's, implementing the same
//! `bizra.node.v1.Node` service whose `GetHead` and `GetStatus` return a clone
//! of the node's real answer (fetched first) — no store read, no limits, no
//! metrics. Both servers are loaded identically; the ratio node/bare of the
//! successful requests per second is the cost of the node's own work.
//! Errors (e.g. `RESOURCE_EXHAUSTED` from the node's rate limit) are counted
//! apart and do not count as throughput.

use super::common::{self, Goal, Scrape};
use crate::{failed, usage, BenchError, BenchResult};
use bizra_client::{ConnectError, Timeouts};
use bizra_proto::node_client::NodeClient;
use bizra_proto::node_server::{Node, NodeServer};
use bizra_proto::{
    GetAttestationRequest, GetAttestationResponse, GetBlockRequest, GetBlockResponse, GetCommitRequest,
    GetCommitResponse, GetEvidenceRequest, GetEvidenceResponse, GetHeadReportRequest, GetHeadReportResponse,
    GetHeadRequest, GetHeadResponse, GetStatusRequest, GetStatusResponse, GetValidatorsRequest, GetValidatorsResponse,
    SubmitAttestationRequest, SubmitAttestationResponse, SubscribeHeadsRequest,
};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    #[value(name = "GetHead")]
    GetHead,
    #[value(name = "GetStatus")]
    GetStatus,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::GetHead => "GetHead",
            Method::GetStatus => "GetStatus",
        }
    }
}

#[derive(Args, Debug)]
pub struct GrpcArgs {
    /// The node's gRPC endpoint, e.g. http://127.0.0.1:7500.
    #[arg(long)]
    pub grpc: String,
    /// The rpc to load.
    #[arg(long, value_enum, default_value = "GetHead")]
    pub method: Method,
    /// Concurrent closed-loop tasks.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// HTTP/2 connections shared by the tasks.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: u32,
    /// Measured seconds per server, split over --rounds alternating segments.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Alternating node/bare segments (a noisy machine drifts; alternating keeps the ratio fair).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// PID of the node, for its peak RSS (default: found from the listening port).
    #[arg(long)]
    pub node_pid: Option<u32>,
    /// Metrics port of the node, to report its own `bizra_grpc_request_duration_seconds` (optional).
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The bare baseline: fixed answers, everything else unimplemented.
struct Bare {
    head: GetHeadResponse,
    status: GetStatusResponse,
}

type EmptyStream = Pin<Box<dyn futures::Stream<Item = Result<GetHeadResponse, Status>> + Send + 'static>>;

fn nope<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("bare bench server"))
}

#[tonic::async_trait]
impl Node for Bare {
    async fn get_status(&self, _: Request<GetStatusRequest>) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(self.status.clone()))
    }
    async fn get_head(&self, _: Request<GetHeadRequest>) -> Result<Response<GetHeadResponse>, Status> {
        Ok(Response::new(self.head.clone()))
    }
    async fn get_block(&self, _: Request<GetBlockRequest>) -> Result<Response<GetBlockResponse>, Status> {
        nope()
    }
    async fn get_commit(&self, _: Request<GetCommitRequest>) -> Result<Response<GetCommitResponse>, Status> {
        nope()
    }
    async fn get_validators(
        &self,
        _: Request<GetValidatorsRequest>,
    ) -> Result<Response<GetValidatorsResponse>, Status> {
        nope()
    }
    async fn get_head_report(
        &self,
        _: Request<GetHeadReportRequest>,
    ) -> Result<Response<GetHeadReportResponse>, Status> {
        nope()
    }
    type SubscribeHeadsStream = EmptyStream;
    async fn subscribe_heads(
        &self,
        _: Request<SubscribeHeadsRequest>,
    ) -> Result<Response<Self::SubscribeHeadsStream>, Status> {
        nope()
    }
    async fn submit_attestation(
        &self,
        _: Request<SubmitAttestationRequest>,
    ) -> Result<Response<SubmitAttestationResponse>, Status> {
        nope()
    }
    async fn get_attestation(
        &self,
        _: Request<GetAttestationRequest>,
    ) -> Result<Response<GetAttestationResponse>, Status> {
        nope()
    }
    async fn get_evidence(&self, _: Request<GetEvidenceRequest>) -> Result<Response<GetEvidenceResponse>, Status> {
        nope()
    }
}

/// The bare server on its own runtime thread; dropping it stops the server.
struct BareServer {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BareServer {
    fn start(bare: Bare) -> Result<BareServer, BenchError> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-bare-grpc".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("bare-grpc-worker")
                    .build()
                    .expect("bare runtime");
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = addr_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = addr_tx.send(listener.local_addr().map_err(|e| e.to_string()));
                    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                    let _ = tonic::transport::Server::builder()
                        .add_service(NodeServer::new(bare))
                        .serve_with_incoming_shutdown(incoming, async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })
            .map_err(|e| failed(format!("bare server thread: {e}")))?;
        let addr = addr_rx
            .recv()
            .map_err(|_| failed("bare server did not start"))?
            .map_err(|e| failed(format!("bare server: {e}")))?;
        Ok(BareServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one load run measured.
struct Load {
    /// Successful requests inside the measured part.
    ok: u64,
    /// Every completed request, warm-up included (for CPU per request).
    all: u64,
    /// Successful requests, warm-up included (for CPU per served request).
    ok_all: u64,
    errors: u64,
    /// Errors that were `RESOURCE_EXHAUSTED`: the node's limits refused them.
    limited: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// Successful request latencies, sorted.
    lat: Vec<Duration>,
}

impl Load {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn p(&self, q: f64) -> Duration {
        common::percentile(&self.lat, q)
    }
    fn json(&self) -> serde_json::Value {
        json!({
            "ok": self.ok, "errors": self.errors, "first_error": self.first_error,
            "seconds": common::round3(self.elapsed.as_secs_f64()),
            "rps": common::round3(self.rps()),
            "latency_us": {
                "p50": common::round3(common::us(self.p(50.0))),
                "p90": common::round3(common::us(self.p(90.0))),
                "p99": common::round3(common::us(self.p(99.0))),
                "p999": common::round3(common::us(self.p(99.9))),
                "max": common::round3(common::us(self.lat.last().copied().unwrap_or_default())),
            },
        })
    }
}

async fn channels(url: &str, n: u32) -> Result<Vec<Channel>, BenchError> {
    let mut out = Vec::new();
    for _ in 0..n {
        let timeouts = Timeouts {
            connect: Some(Duration::from_secs(2)),
            rpc: None,
        };
        let ch = bizra_client::channel_once(url, timeouts).await.map_err(|e| match e {
            ConnectError::BadUrl { url, reason } => usage(format!("--grpc {url}: {reason}")),
            e @ ConnectError::Unreachable { .. } => failed(e.to_string()),
        })?;
        out.push(ch);
    }
    Ok(out)
}

async fn call(c: &mut NodeClient<Channel>, m: Method) -> Result<(), Status> {
    match m {
        Method::GetHead => c.get_head(GetHeadRequest {}).await.map(|_| ()),
        Method::GetStatus => c.get_status(GetStatusRequest {}).await.map(|_| ()),
    }
}

/// Closed loop: `concurrency` tasks for `warmup + measured`; only requests
/// completed after the warm-up are recorded.
async fn load(url: &str, a: &GrpcArgs, warmup: Duration, measured: Duration) -> Result<Load, BenchError> {
    let chans = channels(url, a.connections).await?;
    let start = Instant::now();
    let t0 = start + warmup;
    let end = t0 + measured;
    let mut tasks = Vec::new();
    for i in 0..a.concurrency as usize {
        let mut client = NodeClient::new(chans[i % chans.len()].clone());
        let m = a.method;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let (mut ok, mut errors, mut first_error, mut all) = (0u64, 0u64, None, 0u64);
            let (mut ok_all, mut limited) = (0u64, 0u64);
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let r = call(&mut client, m).await;
                let done = Instant::now();
                all += 1;
                ok_all += u64::from(r.is_ok());
                if t < t0 {
                    continue;
                }
                match r {
                    Ok(()) => {
                        ok += 1;
                        lat.push(done - t);
                    }
                    Err(e) => {
                        errors += 1;
                        limited += u64::from(e.code() == tonic::Code::ResourceExhausted);
                        if first_error.is_none() {
                            first_error = Some(format!("{:?}: {}", e.code(), e.message()));
                        }
                        // Do not spin on a refusing server.
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                }
            }
            (ok, errors, first_error, lat, all, ok_all, limited)
        }));
    }
    let mut out = Load {
        ok: 0,
        all: 0,
        ok_all: 0,
        errors: 0,
        limited: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        lat: Vec::new(),
    };
    for t in tasks {
        let (ok, errors, fe, lat, all, ok_all, limited) = t.await.map_err(|e| failed(format!("load task: {e}")))?;
        out.ok += ok;
        out.all += all;
        out.ok_all += ok_all;
        out.limited += limited;
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = fe;
        }
        out.lat.extend(lat);
    }
    out.elapsed = Instant::now()
        .saturating_duration_since(t0)
        .max(Duration::from_millis(1));
    out.lat.sort_unstable();
    Ok(out)
}

impl Load {
    fn merge(&mut self, o: Load) {
        self.ok += o.ok;
        self.all += o.all;
        self.ok_all += o.ok_all;
        self.limited += o.limited;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.elapsed += o.elapsed;
        self.lat.extend(o.lat);
        self.lat.sort_unstable();
    }
}

/// CPU per request, summed over the segments of one target.
#[derive(Default)]
struct Cpu {
    /// Node process CPU seconds (node segments).
    node_s: f64,
    /// This process's CPU seconds in node segments (the client alone).
    client_s: f64,
    /// This process's CPU seconds in bare segments (client + bare server).
    bare_run_s: f64,
    busy_node: Vec<f64>,
    busy_bare: Vec<f64>,
}

pub fn run(a: GrpcArgs) -> BenchResult {
    let url = a.grpc.trim_end_matches('/').to_string();
    let port = url
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| usage(format!("--grpc {url}: expected http://HOST:PORT")))?;
    let rt = crate::runtime();
    rt.block_on(async move {
        // One real answer of each method, served by the bare server.
        let mut c = common::connect(&url)
            .await
            .ok_or_else(|| failed(format!("cannot connect to {url}")))?;
        let head = c
            .get_head(GetHeadRequest {})
            .await
            .map_err(|e| failed(format!("GetHead on {url}: {}", e.message())))?
            .into_inner();
        let status = c
            .get_status(GetStatusRequest {})
            .await
            .map_err(|e| failed(format!("GetStatus on {url}: {}", e.message())))?
            .into_inner();
        let payload_bytes = match a.method {
            Method::GetHead => prost::Message::encoded_len(&head),
            Method::GetStatus => prost::Message::encoded_len(&status),
        };
        let node_pid = a.node_pid.or_else(|| pid_for(&url, port));
        let bare = BareServer::start(Bare { head, status })?;
        let bare_url = format!("http://{}", bare.addr);
        println!(
            "bench grpc: {} x{} over {} connection(s), {} s each in {} alternating rounds: node {url} (pid {}), bare {bare_url}",
            a.method.name(),
            a.concurrency,
            a.connections,
            a.duration,
            a.rounds,
            node_pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        );
        let before = match a.metrics_port {
            Some(p) => common::scrape(p).await.map(|t| Scrape::parse(&t)),
            None => None,
        };
        let seg = Duration::from_secs_f64(a.duration as f64 / a.rounds as f64);
        let warm = Duration::from_millis(500);
        let me = Some(std::process::id());
        let mut cpu = Cpu::default();
        let mut node: Option<Load> = None;
        let mut bare_load: Option<Load> = None;
        let mut ratios = Vec::new();
        for r in 0..a.rounds {
            let w = common::CpuWindow::start(vec![node_pid, me]);
            let l = load(&url, &a, warm, seg).await?;
            let u = w.stop();
            cpu.node_s += u.proc_secs[0].unwrap_or(0.0);
            cpu.client_s += u.proc_secs[1].unwrap_or(0.0);
            cpu.busy_node.extend(u.machine_busy);
            let w = common::CpuWindow::start(vec![me]);
            let b = load(&bare_url, &a, warm, seg).await?;
            let u = w.stop();
            cpu.bare_run_s += u.proc_secs[0].unwrap_or(0.0);
            cpu.busy_bare.extend(u.machine_busy);
            let ratio = if b.rps() > 0.0 { l.rps() / b.rps() } else { 0.0 };
            println!(
                "  round {}: node {:.0} rps, bare {:.0} rps, ratio {ratio:.3}",
                r + 1,
                l.rps(),
                b.rps()
            );
            ratios.push(ratio);
            match node.as_mut() {
                None => node = Some(l),
                Some(n) => n.merge(l),
            }
            match bare_load.as_mut() {
                None => bare_load = Some(b),
                Some(n) => n.merge(b),
            }
        }
        let (node, bare_load) = (node.expect("rounds >= 1"), bare_load.expect("rounds >= 1"));
        let after = match a.metrics_port {
            Some(p) => common::scrape(p).await.map(|t| Scrape::parse(&t)),
            None => None,
        };
        let node_rss = node_pid.and_then(common::vm_hwm_kib);
        drop(bare);
        let self_rss = common::self_hwm_kib();
        let cpu = (cpu, ratios);
        report(
            &a,
            &url,
            payload_bytes,
            &node,
            &bare_load,
            &cpu,
            node_rss,
            self_rss,
            before,
            after,
        )
    })
}

/// The PID of the node serving `url`, if it listens on this host.
fn pid_for(url: &str, port: u16) -> Option<u32> {
    let host = url.split("://").nth(1)?.rsplit_once(':')?.0;
    if host == "127.0.0.1" || host == "localhost" || host == "[::1]" {
        common::pid_listening_on(port)
    } else {
        None
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    a: &GrpcArgs,
    url: &str,
    payload_bytes: usize,
    node: &Load,
    bare: &Load,
    cpu: &(Cpu, Vec<f64>),
    node_rss: Option<u64>,
    self_rss: Option<u64>,
    before: Option<Scrape>,
    after: Option<Scrape>,
) -> BenchResult {
    let ratio = if bare.rps() > 0.0 { node.rps() / bare.rps() } else { 0.0 };
    let (cpu, ratios) = cpu;
    let mut rs = ratios.clone();
    let median_ratio = common::median_f64(&mut rs);
    let per = |secs: f64, n: u64| if n > 0 { secs * 1e6 / n as f64 } else { 0.0 };
    // Per served request: a refused call costs the node little and would
    // flatter it. With refusals, the node's limits were in the way.
    let node_us = per(cpu.node_s, node.ok_all);
    let client_us = per(cpu.client_s, node.all);
    // The bare server's share: this process's CPU in bare segments, less the
    // client's CPU per request measured in the node segments.
    let bare_us = (per(cpu.bare_run_s, bare.all) - client_us).max(0.0);
    let cost_ratio = if bare_us > 0.0 { node_us / bare_us } else { 0.0 };
    let goals = vec![
        Goal::at_least(&format!("{} rps node/bare", a.method.name()), ratio, 0.8, "x"),
        Goal::at_most(
            &format!("{} server CPU per request node/bare", a.method.name()),
            cost_ratio,
            1.25,
            "x",
        ),
        Goal::at_most(
            &format!("{} p99 (node)", a.method.name()),
            common::ms(node.p(99.0)),
            1.1,
            "ms",
        ),
    ];
    let row = |l: &Load| {
        format!(
            "{:>9.0} rps  p50 {:>7.1} us  p99 {:>8.1} us  p99.9 {:>8.1} us  errors {}",
            l.rps(),
            common::us(l.p(50.0)),
            common::us(l.p(99.0)),
            common::us(l.p(99.9)),
            l.errors
        )
    };
    let mut rows = vec![
        (
            "method".to_string(),
            format!("{} ({payload_bytes} B response)", a.method.name()),
        ),
        (
            "load".to_string(),
            format!(
                "{} closed-loop tasks, {} connection(s), {} s",
                a.concurrency, a.connections, a.duration
            ),
        ),
        ("node".to_string(), row(node)),
        ("bare tonic".to_string(), row(bare)),
        ("node/bare rps".to_string(), format!("{ratio:.3}")),
    ];
    if let Some(e) = &node.first_error {
        rows.push(("node first error".to_string(), e.clone()));
    }
    let mut server_side = serde_json::Value::Null;
    if let (Some(b), Some(af)) = (&before, &after) {
        let label = format!("method=\"{}\"", a.method.name());
        let name = "bizra_grpc_request_duration_seconds";
        let d: Vec<(f64, f64)> = af
            .buckets(name, &label)
            .iter()
            .map(|(le, c)| {
                (
                    *le,
                    c - b
                        .buckets(name, &label)
                        .iter()
                        .find(|x| x.0 == *le)
                        .map(|x| x.1)
                        .unwrap_or(0.0),
                )
            })
            .collect();
        let h = common::HistDelta {
            buckets: d,
            sum: 0.0,
            count: 0.0,
        };
        let (p50, p99) = (h.quantile(0.5), h.quantile(0.99));
        rows.push((
            "node's own histogram ~p50/~p99".to_string(),
            format!(
                "{} / {} us (interpolated in its buckets)",
                p50.map(|x| format!("{:.0}", x * 1e6)).unwrap_or_else(|| "-".into()),
                p99.map(|x| format!("{:.0}", x * 1e6)).unwrap_or_else(|| "-".into())
            ),
        ));
        server_side =
            json!({"p50_us": p50.map(|x| common::round3(x * 1e6)), "p99_us": p99.map(|x| common::round3(x * 1e6))});
    }
    let mut bn = cpu.busy_node.clone();
    let mut bb = cpu.busy_bare.clone();
    rows.push((
        "ratio per round (median)".to_string(),
        format!(
            "{} ({median_ratio:.3})",
            ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(" / ")
        ),
    ));
    rows.push((
        "server CPU per served request".to_string(),
        format!("node {node_us:.1} us, bare ~{bare_us:.1} us, node/bare {cost_ratio:.2}x (client {client_us:.1} us)"),
    ));
    if node.limited > 0 {
        rows.push((
            "refused by the node's limits".to_string(),
            format!(
                "{} RESOURCE_EXHAUSTED: the limits were in the way of this measurement; for the server's own cost \
                 spread the load (--connections, one bucket per connection) or start the node with \
                 BIZRA_GRPC_RATE_LIMIT_PER_CLIENT=0",
                node.limited
            ),
        ));
    }
    rows.push((
        "machine busy (node / bare segments)".to_string(),
        format!(
            "{:.0}% / {:.0}% of {} cores",
            common::median_f64(&mut bn) * 100.0,
            common::median_f64(&mut bb) * 100.0,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        ),
    ));
    common::rss_rows(&mut rows, "node", &[node_rss]);
    rows.push((
        "bench process (client + bare server) peak RSS".to_string(),
        self_rss
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into()),
    ));
    common::print_report("bizra bench grpc", &rows, &goals);
    let value = json!({
        "bench": "grpc",
        "machine": common::machine(),
        "url": url,
        "method": a.method.name(),
        "response_bytes": payload_bytes,
        "concurrency": a.concurrency,
        "connections": a.connections,
        "duration_s": a.duration,
        "node": node.json(),
        "bare": bare.json(),
        "node_over_bare_rps": common::round3(ratio),
        "node_server_side_histogram": server_side,
        "rounds": a.rounds,
        "ratio_per_round": ratios.iter().map(|r| common::round3(*r)).collect::<Vec<_>>(),
        "ratio_median_of_rounds": common::round3(median_ratio),
        "cpu_us_per_request": {"node": common::round3(node_us), "bare_server_estimated": common::round3(bare_us),
                               "client": common::round3(client_us), "node_over_bare": common::round3(cost_ratio)},
        "refused_by_limits": node.limited,
        "machine_busy": {"node_segments": cpu.busy_node.iter().map(|x| common::round3(*x)).collect::<Vec<_>>(),
                         "bare_segments": cpu.busy_bare.iter().map(|x| common::round3(*x)).collect::<Vec<_>>()},
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
        "peak_rss_kib": {"node": node_rss, "bench_process": self_rss},
        "goals": goals.iter().map(Goal::json).collect::<Vec<_>>(),
    });
    common::write_json(a.json.as_deref(), &value)?;
    Ok(())
}
