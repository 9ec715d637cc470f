//! API keys. A key maps to a customer and a role; only its SHA-256 is ever stored.

use crate::config::KeyConfig;
use crate::meta::{ApiKey, MetaError, SharedMeta};
use crate::problem::Problem;
use crate::CoreError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// An analyst key made for every customer's statistics (admins always are).
    pub all_customers: bool,
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
    /// The customer whose statistics a request for `asked` (`None`: everyone) reads:
    /// admins and keys for every customer read what they ask; any other key reads its own
    /// customer's only (`Err` when it asks for another's).
    pub fn stats_scope(&self, asked: Option<String>) -> Result<Option<String>, String> {
        if self.role == Role::Admin || self.all_customers {
            return Ok(asked);
        }
        match asked {
            None => Ok(Some(self.customer.clone())),
            Some(c) if c == self.customer => Ok(Some(c)),
            Some(c) => Err(format!("this key reads the statistics of customer `{}` only, not `{c}`", self.customer)),
        }
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
    let ok = !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("customer `{c}` must be 1 to 64 of [A-Za-z0-9_-]"))
    }
}

/// The keys a server accepts: the `api_keys` table of the metadata database, read through
/// a small cache so that a request costs no database round trip for a key seen within
/// [`KeyStore::FRESH`]. A key added or revoked by `imagelake keys` (another process)
/// takes effect on every server within that time.
pub struct KeyStore {
    meta: SharedMeta,
    cache: Mutex<HashMap<String, (Instant, Option<Principal>)>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

impl KeyStore {
    /// How long an answer (a key known or unknown) is reused.
    pub const FRESH: Duration = Duration::from_millis(500);
    /// Entries kept at most (a flood of random keys cannot grow it further).
    const CACHE_MAX: usize = 10_000;

    pub fn new(meta: SharedMeta) -> Self {
        Self { meta, cache: Mutex::new(HashMap::new()) }
    }

    /// The caller of `key`, if it is a known, unrevoked key.
    pub async fn resolve(&self, key: &str) -> Result<Option<Principal>, MetaError> {
        let hash = hash_key(key);
        if let Some((at, p)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&hash) {
            if at.elapsed() < Self::FRESH {
                return Ok(p.clone());
            }
        }
        let p = self.meta.resolve_key(&hash).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= Self::CACHE_MAX {
            cache.clear();
        }
        cache.insert(hash, (Instant::now(), p.clone()));
        Ok(p)
    }

    /// Imports the configuration's `[[keys]]` and an existing `data_dir/keys.toml` (where
    /// earlier versions kept generated keys) into the database. Keys already there are
    /// left as they are: a revoked key stays revoked. Returns how many were new.
    pub async fn import(
        meta: &SharedMeta,
        configured: &[KeyConfig],
        data_dir: &Path,
        now: DateTime<Utc>,
    ) -> Result<usize, CoreError> {
        let mut added = 0;
        let from_file = read_keys_file(&keys_file(data_dir))?;
        let all = configured.iter().map(|k| (k, "config")).chain(from_file.iter().map(|k| (k, "file")));
        for (k, source) in all {
            validate_customer(&k.customer).map_err(CoreError::Config)?;
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(CoreError::Config(format!("[[keys]] sha256 of customer {:?} is not 64 hex digits", k.customer)));
            }
            let key = ApiKey::new(&k.sha256, &k.customer, k.role, source, now).for_all_customers(k.all_customers);
            if meta.add_key(&key).await? {
                added += 1;
            }
        }
        Ok(added)
    }
}

/// Where earlier versions kept the keys `keys add` made (imported at start).
pub fn keys_file(data_dir: &Path) -> PathBuf {
    data_dir.join("keys.toml")
}

fn read_keys_file(path: &Path) -> Result<Vec<KeyConfig>, CoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str::<KeysFile>(&text).map(|f| f.keys).map_err(|e| CoreError::Config(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Axum state that can authenticate requests.
pub type SharedKeys = Arc<KeyStore>;

/// A short tag of the request's `Authorization` value (16 bytes of its SHA-256), for the
/// per-key limits: it names a key without keeping the secret in memory, and costs no
/// database lookup, so it works before (and without) authentication.
pub fn key_tag(headers: &http::HeaderMap) -> Option<[u8; 16]> {
    let value = headers.get(http::header::AUTHORIZATION)?;
    let digest = Sha256::digest(value.as_bytes());
    Some(digest[..16].try_into().expect("a SHA-256 digest is 32 bytes"))
}

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
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Problem::unauthorized("missing `Authorization: Bearer <key>` header"))?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <key>`"))?;
        match keys.resolve(key).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Problem::unauthorized("unknown or revoked API key")),
            Err(e) => {
                tracing::warn!(error = %e, "could not check an API key");
                Err(Problem::unavailable(e.code(), "the key database is unavailable; retry shortly").with_retry_after(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::SqlMetadata;

    async fn meta() -> SharedMeta {
        let dir = crate::testing::temp_dir("keys");
        let url = format!("sqlite://{}", dir.join("m.db").display());
        Arc::new(SqlMetadata::connect(&url, 4, Duration::from_secs(5)).await.unwrap())
    }

    #[tokio::test]
    async fn keys_resolve_by_hash_only_and_revocation_is_seen() {
        let meta = meta().await;
        let key = generate_key();
        meta.add_key(&ApiKey::new(&hash_key(&key), "acme", Role::Uploader, "cli", Utc::now())).await.unwrap();
        let store = KeyStore::new(meta.clone());
        assert_eq!(store.resolve(&key).await.unwrap().unwrap().customer, "acme");
        assert!(store.resolve("ilk_wrong").await.unwrap().is_none());
        assert!(meta.revoke_key(&hash_key(&key)[..16], Utc::now()).await.unwrap());
        tokio::time::sleep(KeyStore::FRESH).await;
        assert!(store.resolve(&key).await.unwrap().is_none(), "a revoked key stops working");
    }

    #[tokio::test]
    async fn keys_toml_and_config_keys_are_imported_once() {
        let meta = meta().await;
        let dir = crate::testing::temp_dir("keys-file");
        let (a, b) = (generate_key(), generate_key());
        std::fs::write(
            keys_file(&dir),
            format!("[[keys]]\nsha256 = \"{}\"\ncustomer = \"acme\"\nrole = \"analyst\"\n", hash_key(&a)),
        )
        .unwrap();
        let configured =
            [KeyConfig { sha256: hash_key(&b), customer: "globex".into(), role: Role::Uploader, all_customers: false }];
        let now = Utc::now();
        assert_eq!(KeyStore::import(&meta, &configured, &dir, now).await.unwrap(), 2);
        assert_eq!(KeyStore::import(&meta, &configured, &dir, now).await.unwrap(), 0, "idempotent");
        let store = KeyStore::new(meta.clone());
        assert_eq!(store.resolve(&a).await.unwrap().unwrap().role, Role::Analyst);
        assert_eq!(store.resolve(&b).await.unwrap().unwrap().customer, "globex");
        let bad = [KeyConfig { sha256: "zz".into(), customer: "x".into(), role: Role::Admin, all_customers: false }];
        assert!(KeyStore::import(&meta, &bad, &dir, now).await.is_err());
    }
}
