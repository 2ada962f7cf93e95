//! Node configuration: `HOME/config.toml`, overridable by environment
//! variables.
//!
//! Every key has an environment override named `BIZRA_<SECTION>_<KEY>` in
//! upper case (`BIZRA_GRPC_LISTEN`, `BIZRA_LOG_FORMAT`,
//! `BIZRA_CONSENSUS_BLOCK_INTERVAL_MS`, ...); top-level keys are
//! `BIZRA_<KEY>` (`BIZRA_DATA_DIR`). Values are parsed as TOML (so lists are
//! `["a","b"]`), falling back to a plain string.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.toml";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Human-readable node name (logs, devnet table).
    pub moniker: String,
    /// Genesis file, relative to the home directory.
    pub genesis: PathBuf,
    /// Validator key file, relative to the home directory.
    pub key: PathBuf,
    /// Data directory (sled), relative to the home directory.
    pub data_dir: PathBuf,
    pub p2p: P2pSection,
    pub grpc: GrpcSection,
    pub metrics: MetricsSection,
    pub consensus: ConsensusSection,
    pub log: LogSection,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct P2pSection {
    /// TCP address to listen on for peers.
    pub listen: String,
    /// Validators to peer with: `<validator-id>@<host>:<port>`.
    pub peers: Vec<String>,
    /// Largest gossip message or sync frame, in bytes.
    pub max_message_bytes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcSection {
    pub listen: String,
    /// Largest request accepted, in bytes.
    pub max_request_bytes: usize,
    /// Requests served at once.
    pub concurrency_limit: usize,
    /// Requests per second accepted from one client, i.e. one connection
    /// (token bucket, burst one second's worth); 0 disables the limit. The
    /// old name `rate_limit_per_sec` (a global bucket until 2026-12) is read
    /// as this key.
    #[serde(alias = "rate_limit_per_sec")]
    pub rate_limit_per_client: u64,
    /// Connections accepted from one IP address at once; 0: unlimited.
    pub max_connections_per_ip: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub enabled: bool,
    pub listen: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    pub propose_timeout_ms: u64,
    pub prevote_timeout_ms: u64,
    pub precommit_timeout_ms: u64,
    /// Added to each timeout per round.
    pub timeout_delta_ms: u64,
    /// Pause between a decision and the next height (block pacing); 0 = none.
    pub block_interval_ms: u64,
    /// Most attestations a proposer puts in one block.
    pub max_block_attestations: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `bizra=debug,libp2p=warn`.
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("environment variable {var}: {msg}")]
    Env { var: String, msg: String },
    #[error("{0}")]
    Invalid(String),
}

/// One peer from `p2p.peers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub validator: String,
    pub host: String,
    pub port: u16,
}

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
            let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.clone()));
            set_path(&mut value, &path, parsed).map_err(|msg| ConfigError::Env { var: var.clone(), msg })?;
        }
        let cfg: NodeConfig = value
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

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
            ("BIZRA_UNKNOWN_THING".to_string(), "1".to_string()),
        ];
        let c = NodeConfig::from_toml_with_env(&text, &env).unwrap();
        assert_eq!(c.grpc.listen, "127.0.0.1:9999");
        assert_eq!(c.consensus.block_interval_ms, 5);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log.format, "json");
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
