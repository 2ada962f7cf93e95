//! Writing a release bundle: `DIR/` and `DIR.tar`.
//!
//! Everything is gathered and checked first (inputs exist, `--out` is absent
//! or empty, `DIR.tar` is absent, the SBOM validates); only then is anything
//! written. A failure while writing removes what this run created.

use crate::dsse::{Envelope, MANIFEST_TYPE, PROVENANCE_TYPE, SBOM_TYPE};
use crate::manifest::{FileEntry, Manifest, MANIFEST_VERSION};
use crate::names;
use crate::provenance::{self, GitInfo, ProvenanceInput};
use crate::sbom::{self, SbomError, SbomInput};
use crate::{now_rfc3339, sha256_file, sha256_hex};
use bizra_consensus::signing::Signer;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package whose binary is bundled.
pub const ROOT_PACKAGE: &str = "bizra-cli";
/// The name of the bundled binary (`bin/bizra`, provenance subject name).
pub const BINARY_NAME: &str = "bizra";

/// What goes into a bundle.
#[derive(Clone, Debug, Default)]
pub struct BundleRequest {
    /// Bundle directory to write (must be absent or empty); the tarball goes to `<out>.tar`.
    pub out: PathBuf,
    /// The `bizra` binary to bundle (hashed, then copied to `bin/bizra`).
    pub binary: PathBuf,
    /// Image tarball recorded in the manifest and provenance by digest only, not copied.
    pub image_tar: Option<PathBuf>,
    /// `wq-proof/1` JSON document copied in as `wq_proof.json`.
    pub wq_proof: Option<PathBuf>,
    /// `poi-attestation/1` JSON document copied in as `attestation.json`.
    pub attestation: Option<PathBuf>,
    /// Files copied under `bench/` by file name (names must be distinct).
    pub bench: Vec<PathBuf>,
}

/// What the build environment says: `cargo metadata`, Cargo.lock, git, rustc.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    /// Stdout of `cargo metadata --format-version 1 --filter-platform <target>` (JSON).
    pub metadata_json: Vec<u8>,
    /// The workspace's Cargo.lock bytes.
    pub cargo_lock: Vec<u8>,
    /// Target triple the binary is attested for (defaults to [`crate::HOST_TARGET`]).
    pub target: String,
    /// Commit, dirty flag and remote; `None` when `git rev-parse HEAD` gives no commit.
    pub git: Option<GitInfo>,
    /// First line of `rustc -vV`, if it ran.
    pub rustc_version: Option<String>,
    /// First line of `cargo -V`, if it ran.
    pub cargo_version: Option<String>,
}

/// Why a bundle was not written; each variant maps to the CLI exit code noted on it.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Bad usage or bad input; nothing was written (exit 2).
    #[error("{0}")]
    Input(String),
    /// A check failed, e.g. the SBOM does not validate; nothing was written (exit 1).
    #[error("{0}")]
    Check(String),
    /// Writing failed (exit 1).
    #[error("{0}")]
    Write(String),
}

impl From<SbomError> for BundleError {
    fn from(e: SbomError) -> Self {
        match e {
            SbomError::Input(m) => BundleError::Input(m),
            SbomError::Invalid(_) => BundleError::Check(e.to_string()),
        }
    }
}

/// What was written.
#[derive(Clone, Debug)]
pub struct BundleSummary {
    /// The bundle directory written.
    pub dir: PathBuf,
    /// The tarball written next to it (`<dir>.tar`).
    pub tar: PathBuf,
    /// The bundled version (root package version from the SBOM).
    pub version: String,
    /// Lower-case hex SHA-256 of the bundled binary.
    pub binary_sha256: String,
    /// Files listed in the manifest (in the bundle, not external).
    pub files: usize,
    /// Number of components in the SBOM.
    pub components: usize,
    /// Lower-case hex Ed25519 public key that signed the envelopes.
    pub signer: String,
}

fn input_file(p: &Path, what: &str) -> Result<(), BundleError> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(BundleError::Input(format!(
            "{what} {} is not a regular file",
            p.display()
        ))),
        Err(e) => Err(BundleError::Input(format!("cannot read {what} {}: {e}", p.display()))),
    }
}

/// The name a `--bench` file gets under `bench/`.
fn bench_name(p: &Path) -> Result<String, BundleError> {
    p.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| crate::manifest::is_safe_relative_path(n))
        .map(str::to_string)
        .ok_or_else(|| BundleError::Input(format!("bench file {} has no usable file name", p.display())))
}

/// `DIR.tar` next to `DIR`.
pub fn tar_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".tar");
    PathBuf::from(s)
}

impl BundleRequest {
    /// Checks every input before anything is run or written: files exist and
    /// are regular files, bench names are distinct, `--out` is absent or an
    /// empty directory, `DIR.tar` does not exist.
    pub fn check(&self) -> Result<(), BundleError> {
        input_file(&self.binary, "binary")?;
        if let Some(p) = &self.image_tar {
            input_file(p, "image tarball")?;
        }
        if let Some(p) = &self.wq_proof {
            input_file(p, "wq-proof")?;
        }
        if let Some(p) = &self.attestation {
            input_file(p, "attestation")?;
        }
        let mut seen = BTreeSet::new();
        for p in &self.bench {
            input_file(p, "bench file")?;
            let n = bench_name(p)?;
            if !seen.insert(n.clone()) {
                return Err(BundleError::Input(format!("two bench files are named {n}")));
            }
        }
        if self.out.file_name().is_none() {
            return Err(BundleError::Input(format!(
                "--out {} must name a directory",
                self.out.display()
            )));
        }
        match std::fs::symlink_metadata(&self.out) {
            Ok(m) if m.is_dir() => {
                let non_empty = std::fs::read_dir(&self.out)
                    .map_err(|e| BundleError::Input(format!("cannot read {}: {e}", self.out.display())))?
                    .next()
                    .is_some();
                if non_empty {
                    return Err(BundleError::Input(format!(
                        "{} is not empty; refusing to overwrite",
                        self.out.display()
                    )));
                }
            }
            Ok(_) => {
                return Err(BundleError::Input(format!(
                    "{} exists and is not a directory",
                    self.out.display()
                )))
            }
            Err(_) => {}
        }
        let tar = tar_path(&self.out);
        if std::fs::symlink_metadata(&tar).is_ok() {
            return Err(BundleError::Input(format!(
                "{} exists; refusing to overwrite",
                tar.display()
            )));
        }
        Ok(())
    }
}

fn run_stdout(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

fn first_line(s: &str) -> Option<String> {
    s.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

/// Runs `cargo metadata --format-version 1 --locked --offline --filter-platform
/// <target> --manifest-path <workspace>/Cargo.toml` (the `cargo` of `$CARGO`,
/// else of `PATH`; `target` defaults to the host triple this crate was built
/// for), reads `<workspace>/Cargo.lock`, and asks `git` and `rustc -vV` what
/// they know. A cargo failure is bad input.
pub fn collect_build_info(workspace: &Path, target: Option<&str>) -> Result<BuildInfo, BundleError> {
    let manifest = workspace.join("Cargo.toml");
    let lock_path = workspace.join("Cargo.lock");
    input_file(&manifest, "workspace manifest")?;
    input_file(&lock_path, "workspace lock file")?;
    let cargo_lock = std::fs::read(&lock_path)
        .map_err(|e| BundleError::Input(format!("cannot read {}: {e}", lock_path.display())))?;
    let target = target.unwrap_or(crate::HOST_TARGET).to_string();
    if target.is_empty()
        || !target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(BundleError::Input(format!("target {target:?} is not a target triple")));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--filter-platform",
        ])
        .arg(&target)
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .map_err(|e| BundleError::Input(format!("cannot run {}: {e}", Path::new(&cargo).display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let reason = err
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("error"))
            .or_else(|| err.lines().map(str::trim).find(|l| !l.is_empty()))
            .unwrap_or("no output")
            .to_string();
        return Err(BundleError::Input(format!("cargo metadata failed: {reason}")));
    }
    let git = |args: &[&str]| run_stdout(Command::new("git").arg("-C").arg(workspace).args(args));
    let git_info = git(&["rev-parse", "HEAD"])
        .and_then(|s| first_line(&s))
        .filter(|c| c.len() >= 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|commit| GitInfo {
            commit,
            dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|s| !s.trim().is_empty())
                .unwrap_or(true),
            remote: git(&["remote", "get-url", "origin"])
                .and_then(|s| first_line(&s))
                .filter(|r| r.contains("://") || (r.contains('@') && r.contains(':'))),
        });
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustc_version = run_stdout(Command::new(rustc).arg("-vV")).and_then(|s| first_line(&s));
    let cargo_version = run_stdout(Command::new(&cargo).arg("-V")).and_then(|s| first_line(&s));
    Ok(BuildInfo {
        metadata_json: out.stdout,
        cargo_lock,
        target,
        git: git_info,
        rustc_version,
        cargo_version,
    })
}

/// One file of the bundle and where its bytes come from.
enum Content {
    Bytes(Vec<u8>),
    /// Copied from this file (the binary; too large to hold twice).
    Copy(PathBuf),
}

fn read_json_doc(p: &Path, what: &str, version: &str) -> Result<Vec<u8>, BundleError> {
    let bytes = std::fs::read(p).map_err(|e| BundleError::Input(format!("cannot read {what} {}: {e}", p.display())))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| BundleError::Input(format!("{what} {} is not JSON: {e}", p.display())))?;
    if v.get("version").and_then(|v| v.as_str()) != Some(version) {
        return Err(BundleError::Input(format!(
            "{what} {} has no \"version\": {version:?}",
            p.display()
        )));
    }
    Ok(bytes)
}

/// Writes the bundle: `req.out/` and `req.out.tar`, signed with `signer`.
pub fn write_bundle(req: &BundleRequest, info: &BuildInfo, signer: &Signer) -> Result<BundleSummary, BundleError> {
    req.check()?;
    let started_on = now_rfc3339();

    // Gather everything in memory (except the binary, which is hashed here and copied later).
    let (binary_sha256, binary_size) = sha256_file(&req.binary).map_err(io_in(&req.binary))?;
    let image = match &req.image_tar {
        Some(p) => {
            let (sha, size) = sha256_file(p).map_err(io_in(p))?;
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| BundleError::Input(format!("image tarball {} has no usable file name", p.display())))?
                .to_string();
            Some((name, sha, size))
        }
        None => None,
    };
    let mut extra: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(p) = &req.wq_proof {
        extra.push((names::WQ_PROOF.into(), read_json_doc(p, "wq-proof", "wq-proof/1")?));
    }
    if let Some(p) = &req.attestation {
        extra.push((
            names::ATTESTATION.into(),
            read_json_doc(p, "attestation", "poi-attestation/1")?,
        ));
    }
    for p in &req.bench {
        let bytes = std::fs::read(p).map_err(io_in(p))?;
        extra.push((format!("{}/{}", names::BENCH_DIR, bench_name(p)?), bytes));
    }

    let created = now_rfc3339();
    let sbom = sbom::build(&SbomInput {
        metadata_json: &info.metadata_json,
        cargo_lock: &info.cargo_lock,
        root_package: ROOT_PACKAGE,
        binary_name: BINARY_NAME,
        binary_sha256: &binary_sha256,
        created: &created,
    })?;
    let profile = provenance::profile_from_path(&std::fs::canonicalize(&req.binary).unwrap_or(req.binary.clone()));
    let invocation_id = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let finished_on = now_rfc3339();
    let statement = provenance::statement(&ProvenanceInput {
        binary_name: BINARY_NAME,
        binary_sha256: &binary_sha256,
        image: image.as_ref().map(|(n, s, _)| (n.as_str(), s.as_str())),
        version: &sbom.version,
        target: &info.target,
        profile: &profile,
        git: info.git.as_ref(),
        cargo_lock_sha256: &sha256_hex(&info.cargo_lock),
        rustc_version: info.rustc_version.as_deref(),
        cargo_version: info.cargo_version.as_deref(),
        invocation_id: &invocation_id,
        started_on: &started_on,
        finished_on: &finished_on,
    });

    let mut files: Vec<(String, Content)> = vec![
        (names::BINARY.into(), Content::Copy(req.binary.clone())),
        (names::SBOM.into(), Content::Bytes(sbom.json.clone())),
        (names::PROVENANCE.into(), Content::Bytes(statement.clone())),
    ];
    files.extend(extra.into_iter().map(|(n, b)| (n, Content::Bytes(b))));
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let mut entries: Vec<FileEntry> = files
        .iter()
        .map(|(path, c)| match c {
            Content::Bytes(b) => FileEntry::file(path, sha256_hex(b), b.len() as u64),
            Content::Copy(_) => FileEntry::file(path, binary_sha256.clone(), binary_size),
        })
        .collect();
    if let Some((name, sha, size)) = &image {
        entries.push(FileEntry::external(name, sha.clone(), *size));
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION.into(),
        created: created.clone(),
        signer: signer.id().to_string(),
        files: entries,
    }
    .to_json();
    files.push((names::MANIFEST.into(), Content::Bytes(manifest.clone())));
    for (name, ptype, payload) in [
        (names::MANIFEST_DSSE, MANIFEST_TYPE, &manifest),
        (names::PROVENANCE_DSSE, PROVENANCE_TYPE, &statement),
        (names::SBOM_DSSE, SBOM_TYPE, &sbom.json),
    ] {
        files.push((
            name.into(),
            Content::Bytes(Envelope::sign(signer, ptype, payload).to_json()),
        ));
    }

    // Write; on failure remove what this run created.
    let created_dir = !req.out.exists();
    let tar = tar_path(&req.out);
    let result = write_files(&req.out, &files, &binary_sha256).and_then(|()| write_tar(&req.out, &tar, &created));
    if let Err(e) = result {
        if created_dir {
            let _ = std::fs::remove_dir_all(&req.out);
        } else {
            for (name, _) in &files {
                let _ = std::fs::remove_file(req.out.join(name));
            }
            let _ = std::fs::remove_dir(req.out.join("bin"));
            let _ = std::fs::remove_dir(req.out.join(names::BENCH_DIR));
        }
        let _ = std::fs::remove_file(&tar);
        return Err(e);
    }
    Ok(BundleSummary {
        dir: req.out.clone(),
        tar,
        version: sbom.version,
        binary_sha256,
        files: files.len() - names::UNLISTED.len(),
        components: sbom.components.len(),
        signer: signer.id().to_string(),
    })
}

fn io_in(p: &Path) -> impl Fn(std::io::Error) -> BundleError + '_ {
    move |e| BundleError::Input(format!("cannot read {}: {e}", p.display()))
}

fn write_err(p: &Path) -> impl Fn(std::io::Error) -> BundleError + '_ {
    move |e| BundleError::Write(format!("cannot write {}: {e}", p.display()))
}

fn write_files(out: &Path, files: &[(String, Content)], binary_sha256: &str) -> Result<(), BundleError> {
    std::fs::create_dir_all(out).map_err(write_err(out))?;
    for (name, content) in files {
        let dest = out.join(name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        match content {
            Content::Bytes(b) => std::fs::write(&dest, b).map_err(write_err(&dest))?,
            Content::Copy(src) => {
                std::fs::copy(src, &dest).map_err(write_err(&dest))?;
                let (sha, _) = sha256_file(&dest).map_err(write_err(&dest))?;
                if sha != binary_sha256 {
                    return Err(BundleError::Write(format!(
                        "{} changed while it was bundled (sha256 {binary_sha256} before, {sha} after)",
                        src.display()
                    )));
                }
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
                        .map_err(write_err(&dest))?;
                }
            }
        }
    }
    Ok(())
}

/// Every directory and file under `dir`, relative, `/`-separated, sorted.
pub(crate) fn walk(dir: &Path) -> std::io::Result<Vec<(String, std::fs::Metadata)>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        for e in std::fs::read_dir(&abs)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let m = std::fs::symlink_metadata(e.path())?;
            if m.is_dir() {
                stack.push((e.path(), r.clone()));
            }
            out.push((r, m));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A tarball of `dir` with entries under `<dir name>/`, in sorted path order,
/// owner 0:0, mtime the bundle's creation time, modes 0755 (directories and
/// bin/bizra) or 0644.
fn write_tar(dir: &Path, tar: &Path, created: &str) -> Result<(), BundleError> {
    let base = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BundleError::Write(format!("{} has no usable name", dir.display())))?;
    let mtime = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp().max(0) as u64)
        .unwrap_or(0);
    let file = std::fs::File::create(tar).map_err(write_err(tar))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    let entries = walk(dir).map_err(|e| BundleError::Write(format!("cannot read {}: {e}", dir.display())))?;
    let mut all = vec![(String::new(), true)];
    all.extend(entries.iter().map(|(r, m)| (r.clone(), m.is_dir())));
    for (rel, is_dir) in all {
        let path = if rel.is_empty() {
            format!("{base}/")
        } else {
            format!("{base}/{rel}")
        };
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        if is_dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, &path, std::io::empty()).map_err(write_err(tar))?;
        } else {
            let src = dir.join(&rel);
            let f = std::fs::File::open(&src).map_err(write_err(tar))?;
            let len = f.metadata().map_err(write_err(tar))?.len();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(if rel == names::BINARY { 0o755 } else { 0o644 });
            h.set_size(len);
            b.append_data(&mut h, &path, f).map_err(write_err(tar))?;
        }
    }
    let w = b.into_inner().map_err(write_err(tar))?;
    let f = w.into_inner().map_err(|e| write_err(tar)(e.into_error()))?;
    f.sync_all().map_err(write_err(tar))?;
    Ok(())
}
