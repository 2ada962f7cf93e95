//! Node configuration: `HOME/config.toml`, overridable by environment
//! variables.
//!
//! Every key has an environment override named `BIZRA_<SECTION>_<KEY>` in
//! upper case (`BIZRA_GRPC_LISTEN`, `BIZRA_LOG_FORMAT`,
//! `BIZRA_CONSENSUS_BLOCK_INTERVAL_MS`, ...); top-level keys are
//! `BIZRA_<KEY>` (`BIZRA_DATA_DIR`). Values are parsed as TOML (so lists are
//! `["a","b"]`), falling back to a plain string; a key whose default is a
//! string takes the text as is (`BIZRA_MONIKER=7` is the name "7").

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The config file's name in the node's home directory.
pub const CONFIG_FILE: &str = "config.toml";

/// The contents of `HOME/config.toml`. Every key is optional (a missing key,
/// or a missing file, takes the default named on each field); an unknown key
/// is refused. Paths are relative to the home directory unless absolute
/// ([`resolve`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// `moniker`: a human-readable node name; default `"bizra-node"`,
    /// `BIZRA_MONIKER`. `bizra testnet init` writes `node{K}`; the node
    /// itself does not read it.
    pub moniker: String,
    /// `genesis`: the genesis file; default `"genesis.json"`, `BIZRA_GENESIS`.
    pub genesis: PathBuf,
    /// `key`: the validator key file ([`crate::keys`]); default
    /// `"validator.key"`, `BIZRA_KEY`.
    pub key: PathBuf,
    /// `data_dir`: the sled data directory; default `"data"`,
    /// `BIZRA_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `[p2p]`: the peer listener, the peers and the message cap.
    pub p2p: P2pSection,
    /// `[grpc]`: the gRPC API's address and limits (ADR 0009).
    pub grpc: GrpcSection,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: MetricsSection,
    /// `[consensus]`: round timeouts, block pacing and block contents.
    pub consensus: ConsensusSection,
    /// `[log]`: log format and filter.
    pub log: LogSection,
    /// `[storage]`: the sled data directory's cache.
    pub storage: StorageSection,
}

/// `[storage]` of `config.toml`: the sled store.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// `storage.cache_mib`: ceiling of sled's page cache, in MiB, 1 to
    /// 4096; default 32, `BIZRA_STORAGE_CACHE_MIB`. A long-running node's
    /// RSS carries about this much on top of the rest: measured at 4
    /// validators over 180 s, VmHWM 73-75 MiB at 32, 47-49 at 8, with the
    /// same block rate, while an attestation-heavy load lost ~5 % of its
    /// throughput at 8 (docs/BENCHMARKS.md, session 13).
    pub cache_mib: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection { cache_mib: 32 }
    }
}

/// `[p2p]` of `config.toml`: libp2p (docs/PROTOCOL.md §6, §7).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct P2pSection {
    /// `p2p.listen`: TCP address to listen on for peers, an IP literal and
    /// a port (`ip:port`, no host name); default `"127.0.0.1:7400"`,
    /// `BIZRA_P2P_LISTEN`.
    pub listen: String,
    /// `p2p.peers`: validators to peer with, `<validator-id>@<host>:<port>`
    /// ([`parse_peer`]); default none, `BIZRA_P2P_PEERS` (a TOML list,
    /// `["a","b"]`). Naming every other genesis validator turns on direct
    /// mode (ADR 0012).
    pub peers: Vec<String>,
    /// `p2p.max_message_bytes`: largest gossip message or sync frame, in
    /// bytes, 1024..=64 MiB; default 4 MiB, `BIZRA_P2P_MAX_MESSAGE_BYTES`. A
    /// quarter of it caps an attestation batch, three quarters a served
    /// block range.
    pub max_message_bytes: usize,
}

/// `[grpc]` of `config.toml`: the API (docs/PROTOCOL.md §8) and its limits
/// (ADR 0009, docs/OPERATIONS.md §1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcSection {
    /// `grpc.listen`: address the API listens on (`host:port`); default
    /// `"127.0.0.1:7500"`, `BIZRA_GRPC_LISTEN`.
    pub listen: String,
    /// `grpc.max_request_bytes`: largest request accepted, in bytes (larger:
    /// `RESOURCE_EXHAUSTED`); default 1 MiB, `BIZRA_GRPC_MAX_REQUEST_BYTES`.
    pub max_request_bytes: usize,
    /// `grpc.concurrency_limit`: calls in flight for the whole server (0 is
    /// read as 1); a call waits up to 2 s for a slot, then gets
    /// `RESOURCE_EXHAUSTED`. It also bounds calls and HTTP/2 streams per
    /// connection and open `SubscribeHeads` streams. Default 256,
    /// `BIZRA_GRPC_CONCURRENCY_LIMIT`.
    pub concurrency_limit: usize,
    /// `grpc.rate_limit_per_client`: calls per second accepted from one
    /// client, i.e. one connection (token bucket, burst one second's worth);
    /// 0 disables the limit. Default 5000,
    /// `BIZRA_GRPC_RATE_LIMIT_PER_CLIENT`. The old name `rate_limit_per_sec`
    /// (a global bucket until 2026-12) is read as this key in the file.
    #[serde(alias = "rate_limit_per_sec")]
    pub rate_limit_per_client: u64,
    /// `grpc.max_connections_per_ip`: connections accepted from one IP
    /// address at once (more are closed on accept); 0: unlimited. Default
    /// 64, `BIZRA_GRPC_MAX_CONNECTIONS_PER_IP`.
    pub max_connections_per_ip: usize,
}

/// `[metrics]` of `config.toml`: `GET /metrics` (docs/PROTOCOL.md §12).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `metrics.enabled`: whether the endpoint is served (the metrics are
    /// kept either way); default `true`, `BIZRA_METRICS_ENABLED`.
    pub enabled: bool,
    /// `metrics.listen`: address of the endpoint (`host:port`); default
    /// `"127.0.0.1:7600"`, `BIZRA_METRICS_LISTEN`.
    pub listen: String,
}

/// `[consensus]` of `config.toml`: the driver's timeouts
/// ([`crate::engine::driver_timeouts`]) and block contents. Each timing is
/// at most one hour.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// `consensus.propose_timeout_ms`: how long round 0 waits for a
    /// proposal, in ms, before prevoting nil; default 1000,
    /// `BIZRA_CONSENSUS_PROPOSE_TIMEOUT_MS`. Round timeouts adapt (ADR 0012).
    pub propose_timeout_ms: u64,
    /// `consensus.prevote_timeout_ms`: how long round 0 waits, in ms, after
    /// prevotes from a quorum of the weight (docs/PROTOCOL.md §4) for any
    /// values, before precommitting nil; default 500,
    /// `BIZRA_CONSENSUS_PREVOTE_TIMEOUT_MS`.
    pub prevote_timeout_ms: u64,
    /// `consensus.precommit_timeout_ms`: how long round 0 waits, in ms,
    /// after precommits from a quorum of the weight for any values, before
    /// moving to the next round (never scaled, ADR 0013); default 500,
    /// `BIZRA_CONSENSUS_PRECOMMIT_TIMEOUT_MS`.
    pub precommit_timeout_ms: u64,
    /// `consensus.timeout_delta_ms`: added to each of the three timeouts per
    /// round, in ms; default 250, `BIZRA_CONSENSUS_TIMEOUT_DELTA_MS`.
    pub timeout_delta_ms: u64,
    /// `consensus.block_interval_ms`: pause between a decision and the next
    /// height (block pacing), in ms; 0 = none. Default 200,
    /// `BIZRA_CONSENSUS_BLOCK_INTERVAL_MS`.
    pub block_interval_ms: u64,
    /// `consensus.max_block_attestations`: most PoI attestations a proposer
    /// puts in one block (taken round-robin across attesters); default 5000,
    /// `BIZRA_CONSENSUS_MAX_BLOCK_ATTESTATIONS`.
    pub max_block_attestations: usize,
}

/// `[log]` of `config.toml`. Logs go to stderr.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `log.format`: `text` or `json`; default `"text"`, `BIZRA_LOG_FORMAT`.
    pub format: String,
    /// `log.level`: a tracing filter, e.g. `info` or
    /// `bizra=debug,libp2p=warn`; default `"info"`, `BIZRA_LOG_LEVEL`.
    /// `RUST_LOG`, when set and valid, replaces it.
    pub level: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            moniker: "bizra-node".into(),
            genesis: "genesis.json".into(),
            key: "validator.key".into(),
            data_dir: "data".into(),
            p2p: P2pSection::default(),
            grpc: GrpcSection::default(),
            metrics: MetricsSection::default(),
            consensus: ConsensusSection::default(),
            log: LogSection::default(),
            storage: StorageSection::default(),
        }
    }
}
impl Default for P2pSection {
    fn default() -> Self {
        P2pSection {
            listen: "127.0.0.1:7400".into(),
            peers: vec![],
            max_message_bytes: 4 << 20,
        }
    }
}
impl Default for GrpcSection {
    fn default() -> Self {
        GrpcSection {
            listen: "127.0.0.1:7500".into(),
            max_request_bytes: 1 << 20,
            concurrency_limit: 256,
            rate_limit_per_client: 5_000,
            max_connections_per_ip: 64,
        }
    }
}
impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: true,
            listen: "127.0.0.1:7600".into(),
        }
    }
}
impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            propose_timeout_ms: 1000,
            prevote_timeout_ms: 500,
            precommit_timeout_ms: 500,
            timeout_delta_ms: 250,
            block_interval_ms: 200,
            max_block_attestations: 5000,
        }
    }
}
impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// Why a config was refused; the message names the file, the variable or
/// the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `config.toml` exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type (in the file or
    /// set by an environment override).
    #[error("{path}: {msg}")]
    Parse {
        /// The file: `config.toml`, or its full path from
        /// [`NodeConfig::load`].
        path: PathBuf,
        /// The TOML parser's message.
        msg: String,
    },
    /// An environment override could not be placed (its section is not a
    /// table in the file).
    #[error("environment variable {var}: {msg}")]
    Env {
        /// The variable, e.g. `BIZRA_GRPC_LISTEN`.
        var: String,
        /// Why it could not be placed.
        msg: String,
    },
    /// A value [`NodeConfig::validate`] refuses.
    #[error("{0}")]
    Invalid(String),
}

/// One peer from `p2p.peers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The peer's validator id: 64 lower-case hex digits, its Ed25519 public
    /// key, which is also its libp2p identity (docs/PROTOCOL.md §3).
    pub validator: String,
    /// Host name or IPv4 address (an IPv4 literal is dialled as `/ip4`,
    /// anything else as `/dns4`).
    pub host: String,
    /// TCP port of the peer's p2p listener.
    pub port: u16,
}

/// Parses one `p2p.peers` entry, `<validator-id>@<host>:<port>`: the id
/// must be a valid validator id, the host non-empty, the port a u16. The
/// error names the entry and what is wrong.
pub fn parse_peer(s: &str) -> Result<PeerAddr, String> {
    let (id, addr) = s
        .split_once('@')
        .ok_or_else(|| format!("peer {s:?}: expected <validator-id>@<host>:<port>"))?;
    bizra_consensus::signing::parse_validator_id(id).map_err(|e| format!("peer {s:?}: validator id: {e}"))?;
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("peer {s:?}: missing :port"))?;
    let port = port.parse().map_err(|_| format!("peer {s:?}: bad port"))?;
    if host.is_empty() {
        return Err(format!("peer {s:?}: empty host"));
    }
    Ok(PeerAddr {
        validator: id.to_string(),
        host: host.to_string(),
        port,
    })
}

impl NodeConfig {
    /// Loads `home/config.toml` (defaults if absent) and applies `BIZRA_*`
    /// environment overrides.
    pub fn load(home: &Path) -> Result<NodeConfig, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let vars: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("BIZRA_")).collect();
        Self::from_toml_with_env(&text, &vars).map_err(|e| match e {
            ConfigError::Parse { msg, .. } => ConfigError::Parse {
                path: path.clone(),
                msg,
            },
            other => other,
        })
    }

    /// Parses config text (empty text: all defaults), applies the `BIZRA_*`
    /// overrides in `env` (a variable that names no key is ignored), and
    /// validates the result: [`NodeConfig::load`] without the file system
    /// and the process environment.
    pub fn from_toml_with_env(text: &str, env: &[(String, String)]) -> Result<NodeConfig, ConfigError> {
        let parse_err = |msg: String| ConfigError::Parse {
            path: PathBuf::from(CONFIG_FILE),
            msg,
        };
        let mut value: toml::Value = if text.trim().is_empty() {
            toml::Value::Table(Default::default())
        } else {
            toml::from_str(text).map_err(|e| parse_err(e.to_string()))?
        };
        let defaults = toml::Value::try_from(NodeConfig::default()).expect("defaults serialize");
        for (var, raw) in env {
            let Some(path) = env_path(&defaults, var) else { continue };
            let parsed = env_value(lookup(&defaults, &path), raw);
            set_path(&mut value, &path, parsed).map_err(|msg| ConfigError::Env { var: var.clone(), msg })?;
        }
        let cfg: NodeConfig = value
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the types do not: every peer parses ([`parse_peer`]),
    /// `log.format` is `text` or `json`, `p2p.max_message_bytes` is within
    /// 1024..=64 MiB, `storage.cache_mib` within 1..=4096, and no `[consensus]` timing is above one hour
    /// (3,600,000 ms).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for p in &self.p2p.peers {
            parse_peer(p).map_err(ConfigError::Invalid)?;
        }
        if !["text", "json"].contains(&self.log.format.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "log.format {:?}: use \"text\" or \"json\"",
                self.log.format
            )));
        }
        if !(1024..=(64 << 20)).contains(&self.p2p.max_message_bytes) {
            return Err(ConfigError::Invalid(
                "p2p.max_message_bytes must be between 1024 and 64 MiB".into(),
            ));
        }
        if !(1..=4096).contains(&self.storage.cache_mib) {
            return Err(ConfigError::Invalid(format!(
                "storage.cache_mib = {} must be between 1 and 4096",
                self.storage.cache_mib
            )));
        }
        let c = &self.consensus;
        for (name, v) in [
            ("propose_timeout_ms", c.propose_timeout_ms),
            ("prevote_timeout_ms", c.prevote_timeout_ms),
            ("precommit_timeout_ms", c.precommit_timeout_ms),
            ("timeout_delta_ms", c.timeout_delta_ms),
            ("block_interval_ms", c.block_interval_ms),
        ] {
            if v > 3_600_000 {
                return Err(ConfigError::Invalid(format!(
                    "consensus.{name} = {v} is above one hour"
                )));
            }
        }
        Ok(())
    }

    /// The config as pretty TOML with every key written (what
    /// `bizra testnet init` writes to each node's `config.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

/// Maps `BIZRA_GRPC_LISTEN` to `["grpc", "listen"]` using the keys that exist.
fn env_path(defaults: &toml::Value, var: &str) -> Option<Vec<String>> {
    let rest = var.strip_prefix("BIZRA_")?.to_ascii_lowercase();
    let table = defaults.as_table()?;
    for (k, v) in table {
        match v {
            toml::Value::Table(sub) => {
                if let Some(key) = rest.strip_prefix(&format!("{k}_")) {
                    if sub.contains_key(key) {
                        return Some(vec![k.clone(), key.to_string()]);
                    }
                }
            }
            _ if rest == *k => return Some(vec![k.clone()]),
            _ => {}
        }
    }
    None
}

/// The value at `path` in `v`, if there is one.
fn lookup<'a>(v: &'a toml::Value, path: &[String]) -> Option<&'a toml::Value> {
    path.iter().try_fold(v, |cur, k| cur.as_table()?.get(k))
}

/// An environment variable's text as a config value. The text is read as a
/// TOML value (`["a","b"]`, `true`, `7`), falling back to a plain string;
/// but a key whose default is a string keeps the text as is, so
/// `BIZRA_MONIKER=7` is the name "7", not the number 7 (which the config
/// would then refuse). A quoted TOML string (`"7"`) is unquoted there too.
fn env_value(default: Option<&toml::Value>, raw: &str) -> toml::Value {
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    match (default, parsed) {
        (Some(toml::Value::String(_)), Some(s @ toml::Value::String(_))) => s,
        (Some(toml::Value::String(_)), _) => toml::Value::String(raw.to_owned()),
        (_, Some(v)) => v,
        (_, None) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(v: &mut toml::Value, path: &[String], new: toml::Value) -> Result<(), String> {
    let mut cur = v;
    for (i, k) in path.iter().enumerate() {
        let t = cur.as_table_mut().ok_or("not a table")?;
        if i + 1 == path.len() {
            t.insert(k.clone(), new);
            return Ok(());
        }
        cur = t
            .entry(k.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(())
}

/// Resolves a path of the config relative to the node's home directory.
pub fn resolve(home: &std::path::Path, p: &std::path::Path) -> std::path::PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        home.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_roundtrip_and_env_overrides() {
        let text = NodeConfig::default().to_toml();
        let env = vec![
            ("BIZRA_GRPC_LISTEN".to_string(), "127.0.0.1:9999".to_string()),
            ("BIZRA_CONSENSUS_BLOCK_INTERVAL_MS".to_string(), "5".to_string()),
            ("BIZRA_DATA_DIR".to_string(), "/tmp/x".to_string()),
            ("BIZRA_LOG_FORMAT".to_string(), "json".to_string()),
            ("BIZRA_STORAGE_CACHE_MIB".to_string(), "8".to_string()),
            ("BIZRA_UNKNOWN_THING".to_string(), "1".to_string()),
        ];
        let c = NodeConfig::from_toml_with_env(&text, &env).unwrap();
        assert_eq!(c.storage.cache_mib, 8);
        assert_eq!(NodeConfig::default().storage.cache_mib, 32);
        assert_eq!(c.grpc.listen, "127.0.0.1:9999");
        assert_eq!(c.consensus.block_interval_ms, 5);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log.format, "json");
    }

    #[test]
    fn string_keys_take_the_variable_as_text() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        for (raw, want) in [
            ("7", "7"),
            ("true", "true"),
            ("\"node 3\"", "node 3"),
            ("[1]", "[1]"),
            ("a b", "a b"),
        ] {
            let c = NodeConfig::from_toml_with_env("", &env("BIZRA_MONIKER", raw)).unwrap();
            assert_eq!(c.moniker, want, "BIZRA_MONIKER={raw}");
        }
        let c = NodeConfig::from_toml_with_env("", &env("BIZRA_DATA_DIR", "2026")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("2026"));
        // Keys of other types still read TOML: a number stays a number and
        // a string where a number belongs is still refused.
        let c = NodeConfig::from_toml_with_env("", &env("BIZRA_STORAGE_CACHE_MIB", "7")).unwrap();
        assert_eq!(c.storage.cache_mib, 7);
        assert!(NodeConfig::from_toml_with_env("", &env("BIZRA_STORAGE_CACHE_MIB", "seven")).is_err());
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        assert!(NodeConfig::from_toml_with_env("grpc = 5", &[]).is_err());
        assert!(NodeConfig::from_toml_with_env("[grpc]\nlisten_typo = \"x\"", &[])
            .unwrap_err()
            .to_string()
            .contains("listen_typo"));
        let e = NodeConfig::from_toml_with_env("[log]\nformat = \"xml\"", &[]).unwrap_err();
        assert!(e.to_string().contains("log.format"));
        let e = NodeConfig::from_toml_with_env("[p2p]\npeers = [\"nope\"]", &[]).unwrap_err();
        assert!(e.to_string().contains("validator-id"));
        for bad in ["0", "4097"] {
            let e = NodeConfig::from_toml_with_env(&format!("[storage]\ncache_mib = {bad}"), &[]).unwrap_err();
            assert!(e.to_string().contains("storage.cache_mib"), "{e}");
        }
        let env = vec![("BIZRA_CONSENSUS_BLOCK_INTERVAL_MS".to_string(), "\"soon\"".to_string())];
        assert!(NodeConfig::from_toml_with_env("", &env).is_err());
    }

    #[test]
    fn peers_parse() {
        let id = bizra_consensus::signing::Signer::from_secret([3; 32]).id().to_string();
        let p = parse_peer(&format!("{id}@node3:7403")).unwrap();
        assert_eq!((p.host.as_str(), p.port), ("node3", 7403));
        assert!(parse_peer(&format!("{id}@:1")).is_err());
        assert!(parse_peer("abc@h:1").is_err());
    }
}
