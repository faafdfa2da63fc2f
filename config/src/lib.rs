//! Configuration plumbing shared by the daemons (node and dispatcher): the error every config
//! load reports, reading a TOML file over a config type's defaults, and default data
//! directories. Each daemon owns its typed config struct and its validation; this crate owns
//! only how files are read and how failures are named.

use std::path::{Path, PathBuf};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("config file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field.
        reason: String,
    },
    /// A field has a value the daemon cannot run with.
    #[error("config: {field}: {reason}")]
    Invalid {
        /// The field, dotted (`jobs.max_jobs`).
        field: &'static str,
        /// Why, and what to do.
        reason: String,
    },
}

/// The error for a bad field.
pub fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Reads a daemon's TOML config file over its defaults (the type's `#[serde(default)]`).
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = read(path)?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads a TOML file as an untyped table (to ask what it names before typing it).
pub fn load_table(path: &Path) -> Result<toml::Table, ConfigError> {
    load_toml(path)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The default data directory of a daemon: `$HOME/.pocmesh/<role>`.
pub fn default_data_dir(role: &str) -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".pocmesh")
        .join(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        name: String,
        port: u16,
    }

    #[test]
    fn a_file_is_read_over_the_defaults_and_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "port = 7\n").expect("write");
        let got: Sample = load_toml(&path).expect("loads");
        assert_eq!(
            got,
            Sample {
                name: String::new(),
                port: 7
            }
        );

        std::fs::write(&path, "port = \"x\"\n").expect("write");
        let err = load_toml::<Sample>(&path)
            .expect_err("bad type")
            .to_string();
        assert!(err.contains("c.toml") && err.contains("port"), "{err}");

        std::fs::write(&path, "colour = 1\n").expect("write");
        let err = load_toml::<Sample>(&path).expect_err("unknown").to_string();
        assert!(err.contains("colour"), "{err}");

        let missing = dir.path().join("missing.toml");
        let err = load_toml::<Sample>(&missing)
            .expect_err("missing")
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
    }
}
