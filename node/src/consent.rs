//! The volunteer's acceptance of the consent text and their standing, kept in
//! `<data-dir>/consent.json`: which text was accepted when, and whether the volunteer has opted
//! out. (The text, its version and hash are wire values in `pocmesh_protocol::consent`,
//! re-exported here.)
//!
//! [`ConsentState`] is the lifecycle: [`ConsentState::start`] decides whether a node may start
//! (an acceptance of the current text, stored or given with `--accept-policy`),
//! [`ConsentState::opt_out`] and [`ConsentState::opt_in`] move between taking part and
//! withdrawn. The file is small JSON written atomically (temporary file, fsync, rename), read
//! by the CLI before the node starts (to ask on a terminal) and written by the node only.
//! Dispatchers may require a given hash; a change of text is a new version.

use std::io::Write;
use std::path::{Path, PathBuf};

use pocmesh_protocol::Hash32;
use serde::{Deserialize, Serialize};

pub use pocmesh_protocol::consent::{CONSENT_TEXT, CONSENT_VERSION, consent_hash};

/// The file holding a node's [`ConsentState`].
pub fn consent_path(data_dir: &Path) -> PathBuf {
    data_dir.join("consent.json")
}

/// The volunteer accepted a consent text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// keccak256 of the text accepted.
    pub hash: Hash32,
    /// Its version.
    pub version: u32,
    /// When, unix ms.
    pub accepted_ms: u64,
}

impl Acceptance {
    /// An acceptance of the current text at `now_ms`.
    pub fn current(now_ms: u64) -> Self {
        Acceptance {
            hash: consent_hash(),
            version: CONSENT_VERSION,
            accepted_ms: now_ms,
        }
    }
}

/// Whether the volunteer takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Participation {
    /// Heartbeats go out and offers are considered.
    #[default]
    Active,
    /// Withdrawn: no heartbeats, every offer declined, until an opt-in.
    OptedOut {
        /// Since when, unix ms.
        since_ms: u64,
        /// The sequence number of the `opt_out` message.
        seq: u64,
    },
}

/// What the data directory records about the volunteer's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ConsentState {
    /// The latest text accepted, if any.
    pub accepted: Option<Acceptance>,
    /// Taking part or withdrawn.
    pub participation: Participation,
}

/// Why the node may not start, or a consent change is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// No acceptance of the current text (first run, or the text changed since).
    #[error(
        "{} the node consent text version {version} (hash {hash}); read it with `pocmesh node run \
         --show-consent`, then accept it by running `pocmesh node run` on a terminal, or by \
         passing --accept-policy {hash}",
        previous.map_or("this node has not accepted".to_string(), |v| format!(
            "this node accepted version {v}, not"
        ))
    )]
    NotAccepted {
        /// The current version.
        version: u32,
        /// The current hash.
        hash: Hash32,
        /// The version accepted before, if any.
        previous: Option<u32>,
    },
    /// `--accept-policy` named another text than this build's.
    #[error(
        "--accept-policy {given} is not the hash of this node's consent text (version {version}, \
         hash {current}); read the text with `pocmesh node run --show-consent` and pass its hash"
    )]
    WrongHash {
        /// The hash given.
        given: Hash32,
        /// The current hash.
        current: Hash32,
        /// The current version.
        version: u32,
    },
    /// Opt-out asked of a node already withdrawn.
    #[error("the node is already opted out (since unix ms {since_ms})")]
    AlreadyOptedOut {
        /// Since when.
        since_ms: u64,
    },
    /// Opt-in asked of a node that takes part.
    #[error("the node is not opted out; nothing to do")]
    NotOptedOut,
    /// The consent file could not be read or written.
    #[error("consent file {path}: {source}; check the data directory's permissions and free space")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The consent file is not what this version writes.
    #[error(
        "consent file {path} is unreadable ({reason}); move it away to start afresh (you will be asked to accept the consent text again)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl ConsentState {
    /// Reads the state in `data_dir` (the default state when there is no file yet).
    pub fn load(data_dir: &Path) -> Result<Self, ConsentError> {
        let path = consent_path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConsentError::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConsentState::default()),
            Err(source) => Err(ConsentError::Io { path, source }),
        }
    }

    /// Writes the state to `data_dir` durably (temporary file, fsync, rename, fsync of the
    /// directory), so an opt-out survives a crash right after it was announced.
    pub fn save(&self, data_dir: &Path) -> Result<(), ConsentError> {
        let path = consent_path(data_dir);
        let io = |source| ConsentError::Io {
            path: path.clone(),
            source,
        };
        let tmp = data_dir.join("consent.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    /// Whether starting needs an acceptance of the current text: a node that takes part and
    /// has none (or one of an older text). A withdrawn node does nothing to consent to; its
    /// opt-in asks.
    pub fn needs_acceptance(&self) -> bool {
        self.participation == Participation::Active
            && self.accepted.is_none_or(|a| a.hash != consent_hash())
    }

    /// The start-up decision: `offered` (`--accept-policy`) must be the current hash and is
    /// recorded; without it, a node that takes part needs a stored acceptance of the current
    /// text. Returns whether the state changed (and must be saved).
    pub fn start(&mut self, offered: Option<Hash32>, now_ms: u64) -> Result<bool, ConsentError> {
        match offered {
            Some(given) => {
                check_hash(given)?;
                if self.accepted.is_some_and(|a| a.hash == given) {
                    return Ok(false);
                }
                self.accepted = Some(Acceptance::current(now_ms));
                Ok(true)
            }
            None if self.needs_acceptance() => Err(ConsentError::NotAccepted {
                version: CONSENT_VERSION,
                hash: consent_hash(),
                previous: self.accepted.map(|a| a.version),
            }),
            None => Ok(false),
        }
    }

    /// Withdraws: `seq` is the sequence number of the `opt_out` that announces it.
    pub fn opt_out(&mut self, now_ms: u64, seq: u64) -> Result<(), ConsentError> {
        match self.participation {
            Participation::OptedOut { since_ms, .. } => {
                Err(ConsentError::AlreadyOptedOut { since_ms })
            }
            Participation::Active => {
                self.participation = Participation::OptedOut {
                    since_ms: now_ms,
                    seq,
                };
                Ok(())
            }
        }
    }

    /// Takes part again, accepting the current text anew (`offered` must be its hash).
    pub fn opt_in(&mut self, offered: Hash32, now_ms: u64) -> Result<(), ConsentError> {
        if self.participation == Participation::Active {
            return Err(ConsentError::NotOptedOut);
        }
        check_hash(offered)?;
        self.accepted = Some(Acceptance::current(now_ms));
        self.participation = Participation::Active;
        Ok(())
    }

    /// The policy heartbeats carry, or `None` when no heartbeat may go out (withdrawn, or no
    /// acceptance of the current text).
    pub fn heartbeat_policy(&self) -> Option<Hash32> {
        match (self.participation, self.accepted) {
            (Participation::Active, Some(a)) if a.hash == consent_hash() => Some(a.hash),
            _ => None,
        }
    }

    /// Whether the volunteer has withdrawn.
    pub fn is_opted_out(&self) -> bool {
        matches!(self.participation, Participation::OptedOut { .. })
    }
}

fn check_hash(given: Hash32) -> Result<(), ConsentError> {
    if given == consent_hash() {
        Ok(())
    } else {
        Err(ConsentError::WrongHash {
            given,
            current: consent_hash(),
            version: CONSENT_VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_says_what_http_checks_do_and_its_hash_is_version_2s() {
        assert_eq!(CONSENT_VERSION, 2);
        assert!(CONSENT_TEXT.starts_with("pocmesh node consent, version 2."));
        for needle in [
            "link_health",
            "robots_recheck",
            "GET",
            "5 redirects",
            "1 MiB",
            "512 KiB",
            "10 seconds",
            "private, loopback",
            "deny-list",
            "user agent",
            "opt-out",
        ] {
            assert!(CONSENT_TEXT.contains(needle), "{needle:?} missing");
        }
        assert_eq!(consent_hash(), Hash32::keccak(CONSENT_TEXT.as_bytes()));
    }

    #[test]
    fn a_first_run_needs_the_current_hash_and_records_it() {
        let mut s = ConsentState::default();
        let e = s.start(None, 1).expect_err("first run");
        let text = e.to_string();
        assert!(text.contains("--accept-policy") && text.contains(&consent_hash().to_string()));
        assert!(text.contains("has not accepted"), "{text}");
        let wrong = Hash32::keccak(b"another text");
        assert!(matches!(
            s.start(Some(wrong), 1),
            Err(ConsentError::WrongHash { .. })
        ));
        assert!(s.start(Some(consent_hash()), 5).expect("accepted"));
        assert_eq!(s.accepted, Some(Acceptance::current(5)));
        assert!(
            !s.start(None, 9).expect("stored acceptance"),
            "nothing changes"
        );
        assert!(
            !s.start(Some(consent_hash()), 9).expect("again"),
            "kept as it was"
        );
        assert_eq!(s.heartbeat_policy(), Some(consent_hash()));

        // An acceptance of an older text is a first run again.
        s.accepted = Some(Acceptance {
            hash: Hash32::keccak(b"version 1"),
            version: 1,
            accepted_ms: 1,
        });
        let e = s.start(None, 10).expect_err("old text");
        assert!(e.to_string().contains("accepted version 1, not"), "{e}");
        assert_eq!(s.heartbeat_policy(), None);
    }

    #[test]
    fn opting_out_and_in_are_transitions_and_survive_a_reload() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = ConsentState::default();
        s.start(Some(consent_hash()), 1).expect("accept");
        s.opt_out(20, 7).expect("opt out");
        assert!(matches!(
            s.opt_out(21, 8),
            Err(ConsentError::AlreadyOptedOut { since_ms: 20 })
        ));
        assert_eq!(s.heartbeat_policy(), None);
        assert!(
            !s.needs_acceptance(),
            "a withdrawn node starts without asking"
        );
        s.save(dir.path()).expect("save");
        let mut back = ConsentState::load(dir.path()).expect("load");
        assert_eq!(back, s);
        assert!(back.start(None, 30).is_ok(), "starts, still opted out");
        assert!(back.is_opted_out());
        assert!(matches!(
            back.opt_in(Hash32::keccak(b"x"), 40),
            Err(ConsentError::WrongHash { .. })
        ));
        assert!(back.is_opted_out(), "a refused opt-in changes nothing");
        back.opt_in(consent_hash(), 40).expect("opt in");
        assert_eq!(back.accepted.map(|a| a.accepted_ms), Some(40));
        assert_eq!(back.heartbeat_policy(), Some(consent_hash()));
        assert!(matches!(
            back.opt_in(consent_hash(), 41),
            Err(ConsentError::NotOptedOut)
        ));
        std::fs::write(consent_path(dir.path()), b"{not json").expect("write");
        assert!(matches!(
            ConsentState::load(dir.path()),
            Err(ConsentError::Corrupt { .. })
        ));
        let empty = tempfile::tempdir().expect("tmp");
        assert_eq!(
            ConsentState::load(empty.path()).expect("no file"),
            ConsentState::default()
        );
    }
}
