//! The HTTP side: one reqwest client, the bearer key, and errors from problem+json.

use crate::profile::Target;
use anyhow::Context as _;
use reqwest::{Method, RequestBuilder, Response};
use serde::Deserialize;
use std::time::Duration;

pub struct Api {
    pub base: String,
    key: String,
    http: reqwest::Client,
}

/// A request the server refused: its problem+json, or what it sent instead.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {}, HTTP {})", self.detail, self.code, self.status)
    }
}

impl std::error::Error for ApiError {}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

impl Api {
    pub fn new(target: Target) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("imagelake-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { base: target.url, key: target.key, http })
    }

    /// An absolute URL for an API path (`/v1/...`), or the URL itself if it is one.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// The HTTP client without the key, for URLs that carry their own authorization
    /// (presigned object store URLs).
    pub fn plain(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.key)
    }

    /// Sends, and turns a non-2xx answer into an [`ApiError`].
    pub async fn send(&self, req: RequestBuilder) -> anyhow::Result<Response> {
        let res = req.send().await.map_err(|e| self.transport_error(e))?;
        check(res).await
    }

    pub async fn get_json(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<serde_json::Value> {
        // Records and pages are small: a server that does not answer within a minute is stuck.
        let res = self.send(self.request(Method::GET, path).query(query).timeout(Duration::from_secs(60))).await?;
        res.json().await.with_context(|| format!("the answer of GET {path} is not JSON"))
    }

    pub fn transport_error(&self, e: reqwest::Error) -> anyhow::Error {
        let mut msg = format!("request to {} failed: {e}", self.base);
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        anyhow::anyhow!(msg)
    }
}

/// `res` if it succeeded; otherwise the server's problem+json as an error.
pub async fn check(res: Response) -> anyhow::Result<Response> {
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    let (code, detail) = match serde_json::from_str::<Problem>(&text) {
        Ok(p) => (
            p.code.unwrap_or_else(|| "unknown".into()),
            p.detail.or(p.title).unwrap_or_else(|| status.canonical_reason().unwrap_or("error").into()),
        ),
        Err(_) => {
            let t = text.trim();
            let detail = if t.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                t.chars().take(500).collect()
            };
            ("unknown".into(), detail)
        }
    };
    Err(ApiError { status: status.as_u16(), code, detail }.into())
}
