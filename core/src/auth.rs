//! API keys. A key maps to a customer and a role; only its SHA-256 is ever stored.

use crate::config::KeyConfig;
use crate::problem::Problem;
use crate::CoreError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Uploads and reads its own customer's images only.
    Uploader,
    /// Reads statistics.
    Analyst,
    /// Everything, for every customer.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uploader" => Ok(Role::Uploader),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role `{s}` (uploader, analyst, admin)")),
        }
    }
}

/// The caller, once its key is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub customer: String,
    pub role: Role,
}

impl Principal {
    pub fn can_upload(&self) -> bool {
        matches!(self.role, Role::Uploader | Role::Admin)
    }
    pub fn can_read_stats(&self) -> bool {
        matches!(self.role, Role::Analyst | Role::Admin)
    }
    /// Whether this caller may see an image owned by `customer`.
    pub fn owns(&self, customer: &str) -> bool {
        self.role == Role::Admin || self.customer == customer
    }
}

/// The hex SHA-256 of a key, as stored in `[[keys]]`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: 32 random bytes, hex, with a recognisable prefix.
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("ilk_{}", hex::encode(bytes))
}

/// Customer names end up in object keys and lake partitions: keep them boring.
pub fn validate_customer(c: &str) -> Result<(), String> {
    let ok = !c.is_empty()
        && c.len() <= 64
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(format!("customer `{c}` must be 1 to 64 of [A-Za-z0-9_-]")) }
}

/// The keys a server accepts: those of the configuration plus those generated under
/// `data_dir` (`keys.toml`).
#[derive(Debug, Default)]
pub struct KeyStore {
    by_hash: HashMap<String, Principal>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

impl KeyStore {
    pub fn new(keys: &[KeyConfig]) -> Self {
        let by_hash = keys
            .iter()
            .map(|k| (k.sha256.to_ascii_lowercase(), Principal { customer: k.customer.clone(), role: k.role }))
            .collect();
        Self { by_hash }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn resolve(&self, key: &str) -> Option<&Principal> {
        self.by_hash.get(&hash_key(key))
    }

    /// Loads the configured keys and `data_dir/keys.toml`.
    pub fn load(configured: &[KeyConfig], data_dir: &Path) -> Result<Self, CoreError> {
        let mut all = configured.to_vec();
        all.extend(read_keys_file(&keys_file(data_dir))?);
        Ok(Self::new(&all))
    }
}

pub fn keys_file(data_dir: &Path) -> PathBuf {
    data_dir.join("keys.toml")
}

fn read_keys_file(path: &Path) -> Result<Vec<KeyConfig>, CoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str::<KeysFile>(&text)
            .map(|f| f.keys)
            .map_err(|e| CoreError::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Appends a `[[keys]]` entry to a TOML file (the configuration file or
/// `data_dir/keys.toml`), keeping what is already there, comments included.
pub fn append_key(path: &Path, entry: &KeyConfig) -> Result<(), CoreError> {
    use std::io::Write;
    validate_customer(&entry.customer).map_err(CoreError::Config)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let role = toml::Value::try_from(entry.role).map_err(|e| CoreError::Config(e.to_string()))?;
    let text = format!(
        "\n[[keys]]\nsha256 = \"{}\"\ncustomer = {}\nrole = {}\n",
        entry.sha256,
        toml::Value::String(entry.customer.clone()),
        role
    );
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Axum state that can authenticate requests.
pub type SharedKeys = Arc<KeyStore>;

impl<S> FromRequestParts<S> for Principal
where
    SharedKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let keys = SharedKeys::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Problem::unauthorized("missing `Authorization: Bearer <key>` header"))?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <key>`"))?;
        keys.resolve(key).cloned().ok_or_else(|| Problem::unauthorized("unknown API key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_by_hash_only() {
        let key = generate_key();
        let store = KeyStore::new(&[KeyConfig { sha256: hash_key(&key), customer: "acme".into(), role: Role::Uploader }]);
        assert_eq!(store.resolve(&key).unwrap().customer, "acme");
        assert!(store.resolve("ilk_wrong").is_none());
    }

    #[test]
    fn appended_keys_are_loaded_back() {
        let dir = std::env::temp_dir().join(format!("imagelake-keys-{}", crate::ids::new_compact_id()));
        let key = generate_key();
        let entry = KeyConfig { sha256: hash_key(&key), customer: "acme".into(), role: Role::Analyst };
        append_key(&keys_file(&dir), &entry).unwrap();
        let store = KeyStore::load(&[], &dir).unwrap();
        assert_eq!(store.resolve(&key).unwrap().role, Role::Analyst);
        assert!(append_key(&keys_file(&dir), &KeyConfig { customer: "../x".into(), ..entry }).is_err());
    }
}
