//! The state file: the API's services and their version, written atomically.
//!
//! ```json
//! { "format": 1, "version": 3, "services": [ { "name": "reports", "upstreams": ["http://10.0.0.5:8080"], ... } ] }
//! ```
//!
//! A write goes to a temporary file in the same directory (mode 0600), is flushed to disk,
//! renamed over the old file, and the directory is flushed, so that a crash leaves either the
//! old file or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::spec::{self, Defaults};
use crate::config::Service;

/// The file's name, next to the config file.
pub const FILE_NAME: &str = "gateway-services.json";

/// The format this build writes and reads.
const FORMAT: u64 = 1;

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file exists but could not be read.
    #[error("cannot read the services state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid state file (it is left untouched).
    #[error("{path} is not a valid services state file: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the entry and field.
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write the services state file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The stored services could not be put in force with the config file.
    #[error("the services in {path} cannot be served with this config: {source}")]
    Build {
        /// The file.
        path: PathBuf,
        /// Why.
        source: crate::stack::BuildError,
    },
}

/// What the state file holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stored {
    /// The version of the API's service list (0 before the first change).
    pub(crate) version: u64,
    /// The services, in the order they were added.
    pub(crate) services: Vec<Service>,
}

/// Reads the state file; a missing file is an empty list at version 0.
pub(crate) fn load(path: &Path, defaults: &Defaults<'_>) -> Result<Stored, StateError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::default()),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let invalid = |message: String| StateError::Invalid {
        path: path.to_owned(),
        message,
    };
    let v: Value = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    if v["format"].as_u64() != Some(FORMAT) {
        return Err(invalid(format!(
            "`format` must be {FORMAT} (written by another version of the gateway?)"
        )));
    }
    let version = v["version"]
        .as_u64()
        .ok_or_else(|| invalid("`version` must be a whole number".into()))?;
    let entries = v["services"]
        .as_array()
        .ok_or_else(|| invalid("`services` must be a list".into()))?;
    let mut services: Vec<Service> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let s = spec::parse(entry, defaults)
            .map_err(|e| invalid(format!("services[{i}].{}: {}", e.field, e.message)))?;
        if services.iter().any(|o| o.name == s.name) {
            return Err(invalid(format!(
                "services[{i}].name: `{}` appears twice",
                s.name
            )));
        }
        services.push(s);
    }
    Ok(Stored { version, services })
}

/// Writes the state file atomically (temporary file, mode 0600, fsync, rename, fsync of the
/// directory).
pub(crate) fn save(path: &Path, version: u64, services: &[Service]) -> Result<(), StateError> {
    let body = json!({
        "format": FORMAT,
        "version": version,
        "services": services.iter().map(spec::to_json).collect::<Vec<_>>(),
    });
    let mut bytes = serde_json::to_vec_pretty(&body).map_err(|e| StateError::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes).map_err(|source| StateError::Write {
        path: path.to_owned(),
        source,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| FILE_NAME.to_owned());
    // Writers are serialised by the rebuild lock, so one name per process is enough.
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        // A temporary file left by a crash keeps its old mode through `truncate`: set it again.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory itself is on disk.
        #[cfg(unix)]
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
