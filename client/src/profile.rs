//! Where the client finds the server and its key: `--url`/`--key` win over
//! `IMAGELAKE_URL`/`IMAGELAKE_KEY` (clap reads both), which win over the profile file
//! (`$XDG_CONFIG_HOME/imagelake/profile.toml`, else `~/.config/imagelake/profile.toml`):
//!
//! ```toml
//! url = "http://127.0.0.1:8080"      # the default profile
//! key = "ilk_..."
//!
//! [staging]                          # --profile staging (or IMAGELAKE_PROFILE=staging)
//! url = "https://images.staging.example.com"
//! key = "ilk_..."
//! ```

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use std::path::PathBuf;

/// The server's address when no flag, variable or profile names one: `serve`'s default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Connection options of the client commands (global flags of the `imagelake` binary).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Client options (upload, status, download, list, post, stats)")]
pub struct Connection {
    /// The server's base URL [default: the profile's, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "IMAGELAKE_URL")]
    pub url: Option<String>,
    /// The API key [default: the profile's].
    #[arg(long, global = true, env = "IMAGELAKE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// A named section of ~/.config/imagelake/profile.toml instead of its top level.
    #[arg(long, global = true, env = "IMAGELAKE_PROFILE")]
    pub profile: Option<String>,
}

/// A resolved server address and key.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub key: String,
}

/// The profile file's path.
pub fn profile_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("imagelake").join("profile.toml"))
}

#[derive(Default)]
struct Profile {
    url: Option<String>,
    key: Option<String>,
}

fn read_profile(name: Option<&str>) -> anyhow::Result<Profile> {
    let Some(path) = profile_path() else {
        return match name {
            Some(n) => bail!("profile `{n}` asked for, but there is no HOME to find profile.toml in"),
            None => Ok(Profile::default()),
        };
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.is_none() => return Ok(Profile::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read the profile file {}", path.display())),
    };
    let doc: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
    let table = match name {
        None => &doc,
        Some(n) => match doc.get(n) {
            Some(toml::Value::Table(t)) => t,
            _ => {
                let known: Vec<&str> = doc.iter().filter(|(_, v)| v.is_table()).map(|(k, _)| k.as_str()).collect();
                bail!(
                    "no profile `{n}` in {} (its profiles: {})",
                    path.display(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )
            }
        },
    };
    let field = |k: &str| -> anyhow::Result<Option<String>> {
        match table.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(anyhow!("`{k}` in {} must be a string", path.display())),
        }
    };
    Ok(Profile { url: field("url")?, key: field("key")? })
}

impl Connection {
    /// Flag > environment (both in `self`, by clap) > profile > default URL; a key is required.
    pub fn resolve(&self) -> anyhow::Result<Target> {
        let nonempty = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let (mut url, mut key) = (nonempty(&self.url), nonempty(&self.key));
        if url.is_none() || key.is_none() || self.profile.is_some() {
            let p = read_profile(nonempty(&self.profile).as_deref())?;
            url = url.or_else(|| nonempty(&p.url));
            key = key.or_else(|| nonempty(&p.key));
        }
        let url = url.unwrap_or_else(|| DEFAULT_URL.to_string()).trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("the server URL must start with http:// or https://, not `{url}`");
        }
        let where_ = profile_path().map(|p| p.display().to_string()).unwrap_or_else(|| "~/.config/imagelake/profile.toml".into());
        let key = key.ok_or_else(|| {
            anyhow!("no API key: pass --key, set IMAGELAKE_KEY, or put `key = \"...\"` in {where_} (create one with `imagelake keys add`)")
        })?;
        Ok(Target { url, key })
    }
}
