//! Secret keys: generate, load and save a secp256k1 key; sign under the pocmesh rule.
//!
//! A key file holds one line, the 32-byte secret as `0x`-prefixed hex (the form `cast` and most
//! wallets import). It is created with mode 0600 and refused when others can read it. The secret
//! never appears in `Debug` output or an error message.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use k256::ecdsa::SigningKey;
use zeroize::Zeroizing;

use crate::address::Address;
use crate::signature::{Signature, address_of, eip191_digest, personal_sign_digest};

/// Why a key could not be created, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// The secret is not 32 bytes of hex, or is zero / not below the curve order.
    #[error(
        "{what} is not a valid secp256k1 secret key (expected 64 hex digits, 0x-prefixed or not)"
    )]
    Invalid {
        /// Where the secret came from (a path or "the given secret").
        what: String,
    },
    /// Reading or writing the key file failed.
    #[error("{action} key file {path}: {source}")]
    Io {
        /// "reading", "writing", …
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file exists and overwriting was not asked for.
    #[error(
        "key file {path} already exists; choose another path or pass --force to replace it (the old key is lost)"
    )]
    Exists {
        /// The key file.
        path: PathBuf,
    },
    /// The key file can be read by other users.
    #[error("key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// A secp256k1 secret key: the identity of a node or dispatcher.
#[derive(Clone)]
pub struct SecretKey {
    inner: SigningKey,
    address: Address,
}

impl SecretKey {
    /// A new random key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
            // Fails only for zero or values ≥ the curve order (probability ~2^-128): draw again.
            if let Ok(key) = Self::from_bytes(&bytes) {
                return Ok(key);
            }
        }
    }

    /// A key from its 32 secret bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let inner = SigningKey::from_slice(bytes).map_err(|_| KeyError::Invalid {
            what: "the given secret".into(),
        })?;
        let address = address_of(inner.verifying_key());
        Ok(SecretKey { inner, address })
    }

    /// A key from hex text (64 digits, optional `0x`).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let invalid = || KeyError::Invalid {
            what: "the given secret".into(),
        };
        let bytes = Zeroizing::new(crate::bytes::decode_hex(text).map_err(|_| invalid())?);
        let arr: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| invalid())?;
        Self::from_bytes(arr)
    }

    /// The secret as `0x`-prefixed hex. Handle with care: this is the key.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("0x{}", hex::encode(self.inner.to_bytes())))
    }

    /// The 32 secret bytes. Handle with care: this is the key.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&self.inner.to_bytes());
        out
    }

    /// The address (identity) of this key.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The uncompressed public key (65 bytes, leading 0x04).
    pub fn public_key_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out.copy_from_slice(self.inner.verifying_key().to_sec1_point(false).as_bytes());
        out
    }

    /// The compressed public key (33 bytes), the form libp2p uses.
    pub fn public_key_compressed(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out.copy_from_slice(self.inner.verifying_key().to_sec1_point(true).as_bytes());
        out
    }

    /// Signs a 32-byte digest as it is (no further hashing).
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> Signature {
        let (sig, recid) = self.inner.sign_prehash_recoverable(digest);
        Signature::from_parts(&sig, recid)
    }

    /// Signs `payload` under the pocmesh rule: EIP-191 `personal_sign` of keccak256(payload).
    pub fn sign_payload(&self, payload: &[u8]) -> Signature {
        self.sign_prehash(&eip191_digest(payload))
    }

    /// Signs a 32-byte message the way `personal_sign` does.
    pub fn personal_sign(&self, message: &[u8; 32]) -> Signature {
        self.sign_prehash(&personal_sign_digest(message))
    }

    /// Reads a key file, refusing one that other users can read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        };
        check_permissions(path)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Self::from_hex(text.trim()).map_err(|_| KeyError::Invalid {
            what: format!("the content of {}", path.display()),
        })
    }

    /// Writes the key to `path` with mode 0600, creating parent folders. Refuses to replace an
    /// existing file unless `overwrite`; a replacement goes through a temporary file and a rename,
    /// so a crash never leaves half a key.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            action: "writing",
            path: path.to_path_buf(),
            source,
        };
        if !overwrite && path.exists() {
            return Err(KeyError::Exists {
                path: path.to_path_buf(),
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let tmp = path.with_extension("key.tmp");
        let mut file = open_private(&tmp).map_err(io)?;
        let mut line = self.to_hex();
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        if overwrite {
            std::fs::rename(&tmp, path).map_err(io)?;
        } else {
            // hard_link fails if `path` appeared meanwhile: never clobber a key we did not expect.
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            linked.map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyError::Exists {
                        path: path.to_path_buf(),
                    }
                } else {
                    io(e)
                }
            })?;
        }
        Ok(())
    }

    /// Loads the key at `path`, or creates and saves a new one there if the file does not exist.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let key = Self::generate()?;
        match key.save(path, false) {
            Ok(()) => Ok((key, true)),
            // Another process created it first: use theirs.
            Err(KeyError::Exists { .. }) => Ok((Self::load(path)?, false)),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Anvil's first development account: a well-known public test key.
    const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const DEV_ADDR: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    #[test]
    fn derives_the_known_address() {
        let key = SecretKey::from_hex(DEV_KEY).expect("valid key");
        assert_eq!(key.address().to_string(), DEV_ADDR);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = SecretKey::from_hex(DEV_KEY).expect("valid key");
        let shown = format!("{key:?}");
        assert!(!shown.contains("ac0974bec39a17e36ba4a6b4d238ff944bacb478"));
        assert!(shown.contains(DEV_ADDR));
    }

    #[test]
    fn sign_then_recover_gives_the_signer() {
        let key = SecretKey::generate().expect("random key");
        let sig = key.sign_payload(b"hello");
        assert_eq!(sig.recover_payload(b"hello"), Ok(key.address()));
        assert_ne!(sig.recover_payload(b"hellO"), Ok(key.address()));
    }

    #[test]
    fn save_and_load_round_trip_with_owner_only_mode() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/node.key");
        let key = SecretKey::generate().expect("random key");
        key.save(&path, false).expect("saved");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = SecretKey::load(&path).expect("loads");
        assert_eq!(loaded.address(), key.address());
        assert!(matches!(
            SecretKey::generate().expect("key").save(&path, false),
            Err(KeyError::Exists { .. })
        ));
        let (again, created) = SecretKey::load_or_create(&path).expect("loads");
        assert!(!created);
        assert_eq!(again.address(), key.address());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_world_readable_key_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("open.key");
        SecretKey::generate()
            .expect("key")
            .save(&path, false)
            .expect("saved");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = SecretKey::load(&path).expect_err("must refuse");
        assert!(matches!(
            err,
            KeyError::InsecurePermissions { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn rejects_invalid_secrets_without_echoing_them() {
        for bad in [
            "",
            "0x00",
            &format!("0x{}", "00".repeat(32)),
            &format!("0x{}", "ff".repeat(32)),
            "zz",
        ] {
            let err = SecretKey::from_hex(bad).expect_err("invalid");
            if bad.len() > 4 {
                assert!(!err.to_string().contains(&bad[4..]));
            }
        }
    }
}
