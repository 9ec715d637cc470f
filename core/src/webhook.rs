//! Webhook signing and the destination check, shared by ingest (which refuses a bad
//! `callback_url` at upload time) and the processor (which delivers).
//!
//! **Signature.** `Imagelake-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"{t}.{body}"` with the configured secret, the scheme Stripe made familiar: a receiver
//! recomputes it, compares in constant time, and refuses a `t` too far from its clock
//! (replays). See [`verify`].
//!
//! **SSRF.** A callback URL is the user telling our server where to connect. Unless
//! `[webhooks] allow_private` is set, every address its host resolves to must be a public
//! unicast address: loopback, private, link-local (the cloud metadata endpoint
//! 169.254.169.254), carrier-grade NAT, multicast, documentation and other special
//! ranges are refused, IPv4-mapped and NAT64 IPv6 forms included. The processor connects
//! to the very address it checked (no second lookup for DNS rebinding to exploit) and
//! follows no redirects.

use crate::config::Config;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "Imagelake-Signature";

/// Why a callback URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not an absolute http(s) URL with a host. Code `invalid_callback_url`.
    #[error("callback_url `{0}` is not an http(s) URL with a host")]
    Invalid(String),
    /// The host resolves to an address we do not call. Code `callback_url_refused`.
    #[error("callback_url host `{host}` resolves to {addr}, a loopback, private or reserved address")]
    Private { host: String, addr: IpAddr },
    /// The host does not resolve (now). Code `callback_url_unresolvable`.
    #[error("callback_url host `{0}` does not resolve: {1}")]
    Unresolvable(String, String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid(_) => "invalid_callback_url",
            Refusal::Private { .. } => "callback_url_refused",
            Refusal::Unresolvable(..) => "callback_url_unresolvable",
        }
    }
}

/// A checked destination: the URL and the address to connect to.
#[derive(Debug, Clone)]
pub struct Destination {
    pub url: url::Url,
    pub host: String,
    pub addr: SocketAddr,
}

/// Only the syntax: an absolute `http` or `https` URL with a host and no credentials.
pub fn parse(raw: &str) -> Result<url::Url, Refusal> {
    let invalid = || Refusal::Invalid(raw.chars().take(200).collect());
    let url = url::Url::parse(raw).map_err(|_| invalid())?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none();
    if ok {
        Ok(url)
    } else {
        Err(invalid())
    }
}

/// Parses `raw`, resolves its host and checks every address (see the module docs).
pub async fn check(raw: &str, allow_private: bool) -> Result<Destination, Refusal> {
    let url = parse(raw)?;
    let host = url.host_str().unwrap_or_default().trim_matches(|c| c == '[' || c == ']').to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => resolve(&host, port).await?,
    };
    let Some(&first) = addrs.first() else {
        return Err(Refusal::Unresolvable(host, "no address".into()));
    };
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(Refusal::Private { host, addr: bad.ip() });
        }
    }
    Ok(Destination { url, host, addr: first })
}

/// Lookups running at once, at most: each holds a thread of the blocking pool (the
/// system resolver blocks), which every local store and embedded queue call shares.
const MAX_LOOKUPS: usize = 8;
/// How long a lookup may take before the host counts as unresolvable.
pub const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves `host` with the system resolver, bounded: at most [`MAX_LOOKUPS`] threads are
/// ever inside the resolver (a lookup that outlives its caller keeps its permit until
/// the resolver returns), and a caller waits at most [`LOOKUP_TIMEOUT`] for a permit and
/// the answer together. A host whose DNS never answers costs its callers 5 s and a
/// bounded share of the pool, never the pool.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    static PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_LOOKUPS);
    let unresolvable = |why: String| Refusal::Unresolvable(host.to_string(), why);
    let name = host.to_string();
    let lookup = async move {
        let permit = PERMITS.acquire().await.map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || {
            let _held_until_the_resolver_returns = permit;
            std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)).map(|a| a.collect::<Vec<_>>())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(r) => r.map_err(unresolvable),
        Err(_) => Err(unresolvable(format!("no answer within {}s", LOOKUP_TIMEOUT.as_secs()))),
    }
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
                return is_public_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // discard-only
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224) // multicast, reserved, broadcast
}

/// The header value for `body` sent at unix time `t`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body).finalize().into_bytes()))
}

/// HMAC-SHA256 over `"{t}.{body}"`, not yet finalised: [`sign`] encodes it, [`verify`]
/// compares against it in constant time.
fn mac(secret: &[u8], t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// What a receiver does: checks `header` against `body`, and that its `t` is within
/// `tolerance_secs` of `now`. Constant-time comparison.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let expected = mac(secret, t, body);
    sigs.iter().any(|s| expected.clone().verify_slice(s).is_ok())
}

/// The signing secret: the configured one, else the one kept in `data_dir/webhook_secret`
/// (created, readable by the owner only, on first use).
pub fn secret(config: &Config) -> std::io::Result<Vec<u8>> {
    if !config.webhooks.secret.is_empty() {
        return Ok(config.webhooks.secret.as_bytes().to_vec());
    }
    let path = secret_file(config);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let fresh = format!("whsec_{}", crate::auth::generate_key());
    std::fs::create_dir_all(&config.data_dir)?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(fresh.as_bytes())?;
        f.sync_all()?;
    }
    // A second process racing us: the first rename wins and both read it back.
    if std::fs::hard_link(&tmp, &path).is_ok() {
        tracing::info!(path = %path.display(), "generated the webhook signing secret");
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(std::fs::read_to_string(&path)?.trim().as_bytes().to_vec())
}

pub fn secret_file(config: &Config) -> PathBuf {
    config.data_dir.join("webhook_secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(good.parse().unwrap()), "{good}");
        }
    }

    #[tokio::test]
    async fn check_refuses_private_and_malformed() {
        assert_eq!(check("ftp://x/", false).await.unwrap_err().code(), "invalid_callback_url");
        assert_eq!(check("http://u:p@example.com/", false).await.unwrap_err().code(), "invalid_callback_url");
        assert_eq!(check("not a url", false).await.unwrap_err().code(), "invalid_callback_url");
        assert_eq!(check("http://127.0.0.1:9/hook", false).await.unwrap_err().code(), "callback_url_refused");
        assert_eq!(check("http://[::1]:9/hook", false).await.unwrap_err().code(), "callback_url_refused");
        assert_eq!(check("http://localhost:9/hook", false).await.unwrap_err().code(), "callback_url_refused");
        let ok = check("http://127.0.0.1:9/hook", true).await.unwrap();
        assert_eq!(ok.addr, "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn signatures_verify_and_expire() {
        let h = sign(b"k", 1_700_000_000, b"{}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify(b"k", &h, b"{}", 1_700_000_100, 300));
        assert!(!verify(b"k", &h, b"{ }", 1_700_000_100, 300), "another body");
        assert!(!verify(b"j", &h, b"{}", 1_700_000_100, 300), "another key");
        assert!(!verify(b"k", &h, b"{}", 1_700_001_000, 300), "too old");
    }

    #[test]
    fn a_secret_is_generated_once() {
        let config = Config { data_dir: crate::testing::temp_dir("whsec"), ..Config::default() };
        let a = secret(&config).unwrap();
        assert!(a.starts_with(b"whsec_") && a.len() > 30);
        assert_eq!(secret(&config).unwrap(), a);
        let set = Config { webhooks: crate::config::WebhookConfig { secret: "s3cret".into(), ..Default::default() }, ..config };
        assert_eq!(secret(&set).unwrap(), b"s3cret");
    }
}
