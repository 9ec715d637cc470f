//! Generated multipart bodies at `POST /v1/images` and `POST /v1/posts` (issue 17,
//! fuzzing), on an in-process server on the embedded default: random boundaries (also a
//! header that names another boundary, or none), missing and duplicated `file` fields,
//! huge or many text fields, text that is not UTF-8, truncated bodies, junk preambles,
//! part headers without their blank line, LF for CRLF, no closing delimiter.
//!
//! Whatever the body, the answer comes within [`ANSWER_WITHIN`] and is `202` or a 4xx
//! problem+json, or the server closes the connection (which issue 17 allows on hostile
//! input; never for a good body); anything but `202` leaves no original (and no pending
//! multipart upload) in the store, and each `202` leaves exactly its own. Bodies are sent
//! whole or streamed in chunks of 1 byte to 8 KiB, and some files hold the start of their
//! delimiter, so the parser's scanning across chunks is exercised. A well-formed body whose
//! one `file` is an image and whose text fields are few, small and valid is accepted with
//! exactly those bytes; a well-formed body without a usable image, or with a field over
//! 16 KiB or more than 16 text fields, is refused.
//!
//! The root package has no `proptest` (it is a dev-dependency of core and ingest only), so
//! the cases come from a seeded generator: `FUZZ_MULTIPART_SEED` replays a run,
//! `FUZZ_MULTIPART_CASES` sets its length (64 by default), and a failure prints the case.

mod common;

use common::{image_bytes, Backend, InProcess};
use imagelake_core::store::list_all;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The longest a refusal or an acceptance may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);
/// Text fields the API documents: at most 16, of at most 16 KiB each.
const MAX_FIELDS: usize = 16;
const MAX_FIELD_BYTES: usize = 16 * 1024;

/// splitmix64: small, seedable, good enough to vary bodies.
struct Rng(u64);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n.max(1) as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    /// True `percent` times in 100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u64() as u8).collect()
    }
    fn text(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| alphabet[self.below(alphabet.len())] as char).collect()
    }
    /// `lo..=hi` characters of `alphabet`.
    fn text_of(&mut self, lo: usize, hi: usize, alphabet: &[u8]) -> String {
        let n = self.range(lo, hi);
        self.text(n, alphabet)
    }
}

const TOKEN: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'+_-.";
/// RFC 2046's other boundary characters, which need the header's quotes.
const QUOTED: &[u8] = b"()+_,-./:=? ";
const PROSE: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ 0123456789 .,;!?-";

/// Whether the header within `body` declares more pixels than the default
/// `[processor] max_pixels`, which the server refuses at upload.
fn too_many_pixels(body: &[u8]) -> bool {
    imagesize::blob_size(body).is_ok_and(|s| {
        (s.width as u64).saturating_mul(s.height as u64) > imagelake_core::config::ProcessorConfig::default().max_pixels
    })
}

/// What a part holds, as the generator meant it.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// An image the sniffer accepts (a real one or magic bytes then junk).
    Image,
    /// Bytes that are no accepted image format.
    NotImage,
    /// Small UTF-8 text.
    Text,
    /// Over 16 KiB of text.
    Huge,
    /// Not UTF-8.
    Binary,
}

#[derive(Debug, Clone)]
struct Part {
    /// `None`: a Content-Disposition without a name.
    name: Option<String>,
    filename: Option<String>,
    content_type: Option<&'static str>,
    kind: Kind,
    body: Vec<u8>,
}

#[derive(Debug, Default)]
struct Case {
    post: bool,
    /// The boundary the Content-Type header names (`None`: no boundary parameter).
    header_boundary: Option<String>,
    quoted: bool,
    /// The boundary the body uses.
    boundary: String,
    preamble: Vec<u8>,
    parts: Vec<Part>,
    /// Index of a part whose headers lack the blank line that ends them.
    no_header_end: Option<usize>,
    closing: bool,
    lf_only: bool,
    /// The body is cut at a random byte.
    truncated: bool,
    /// Index of a part whose headers are tens of KiB long (a very long filename).
    long_header: Option<usize>,
    /// Sent as a stream of chunks of at most this many bytes (chunked transfer coding).
    chunks: Option<usize>,
}

struct Samples {
    images: Vec<Vec<u8>>,
}

impl Samples {
    fn new() -> Self {
        use image::ImageFormat::*;
        Samples { images: vec![image_bytes(8, 6, Png), image_bytes(16, 9, Jpeg), image_bytes(5, 5, Gif)] }
    }
}

fn gen_boundary(rng: &mut Rng) -> (String, bool) {
    let len = match rng.below(4) {
        0 => rng.range(1, 3),
        1 => 70,
        _ => rng.range(4, 40),
    };
    if rng.chance(20) {
        // Quoted, with RFC 2046's other characters (never a space last).
        let mut b = rng.text(len, &[TOKEN, QUOTED].concat());
        if b.ends_with(' ') {
            b.pop();
            b.push('x');
        }
        (b, true)
    } else {
        (rng.text(len, TOKEN), false)
    }
}

fn gen_part(rng: &mut Rng, s: &Samples, name: Option<String>, kind: Kind) -> Part {
    let body = match kind {
        Kind::Image => {
            if rng.chance(50) {
                s.images[rng.below(s.images.len())].clone()
            } else {
                let magic: &[&[u8]] =
                    &[b"\xFF\xD8\xFF", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\0\0\0\0WEBP", b"II*\0", b"MM\0*"];
                let mut b = magic[rng.below(magic.len())].to_vec();
                let n = rng.range(9, 3000);
                b.extend(rng.bytes(n));
                b
            }
        }
        Kind::NotImage => match rng.below(3) {
            0 => Vec::new(),
            1 => rng.text_of(1, 400, PROSE).into_bytes(),
            _ => {
                // Not one of the magic numbers' first bytes.
                let n = rng.range(1, 2000);
                let mut b = rng.bytes(n);
                b[0] = b"\0abc%<"[rng.below(6)];
                b
            }
        },
        Kind::Text => {
            let n = rng.range(0, 60);
            if rng.chance(20) {
                "ünïcødé ✓ ".repeat(n / 10 + 1).into_bytes()
            } else {
                rng.text(n, PROSE).into_bytes()
            }
        }
        Kind::Huge => rng.text_of(MAX_FIELD_BYTES + 1, 4 * MAX_FIELD_BYTES, PROSE).into_bytes(),
        Kind::Binary => {
            let mut b = rng.text_of(0, 20, PROSE).into_bytes();
            b.extend([0xFF, 0xFE, 0xC3]);
            b
        }
    };
    let file_like = matches!(kind, Kind::Image | Kind::NotImage);
    Part {
        name,
        filename: (file_like && rng.chance(70)).then(|| rng.text_of(1, 20, TOKEN)),
        content_type: (file_like && rng.chance(50)).then_some("application/octet-stream"),
        kind,
        body,
    }
}

fn gen_case(rng: &mut Rng, s: &Samples, post: bool) -> Case {
    let (boundary, quoted) = gen_boundary(rng);
    let mut c = Case { post, boundary: boundary.clone(), quoted, closing: true, ..Case::default() };
    c.header_boundary = match rng.below(20) {
        0 => None,
        1 => Some(gen_boundary(rng).0),
        _ => Some(boundary),
    };
    // Text fields: usually a few, sometimes many.
    let fields = if rng.chance(15) { rng.range(MAX_FIELDS - 2, MAX_FIELDS + 14) } else { rng.range(0, 4) };
    for _ in 0..fields {
        let name = match rng.below(8) {
            0 => None,
            1 => Some(String::new()),
            2 | 3 if post => Some(["caption", "author"][rng.below(2)].to_string()),
            _ => Some(format!("note{}", rng.below(1000))),
        };
        let kind = match rng.below(20) {
            0 => Kind::Huge,
            1 => Kind::Binary,
            _ => Kind::Text,
        };
        let part = gen_part(rng, s, name, kind);
        c.parts.push(part);
    }
    // `file`: usually one, sometimes none or several.
    let files = match rng.below(10) {
        0 => 0,
        1 => rng.range(2, 3),
        _ => 1,
    };
    for _ in 0..files {
        let kind = match rng.below(10) {
            0 | 1 => Kind::NotImage,
            2 => Kind::Text,
            _ => Kind::Image,
        };
        let part = gen_part(rng, s, Some("file".into()), kind);
        let at = rng.below(c.parts.len() + 1);
        c.parts.insert(at, part);
    }
    // Corruptions, each now and then.
    if rng.chance(8) {
        let n = rng.range(1, 300);
        c.preamble = rng.bytes(n);
    }
    if rng.chance(8) && !c.parts.is_empty() {
        c.no_header_end = Some(rng.below(c.parts.len()));
    }
    c.closing = !rng.chance(8);
    c.lf_only = rng.chance(5);
    c.truncated = rng.chance(12);
    // A file that holds the start of its delimiter (`\r\n--` and part of the boundary):
    // a parser must not end the part there, nor lose those bytes.
    if rng.chance(25) {
        let b = c.boundary.clone();
        for p in c.parts.iter_mut().filter(|p| p.kind == Kind::Image) {
            let keep = rng.below(b.len());
            let mut near = format!("\r\n--{}", &b[..keep]).into_bytes();
            near.push(b'\0');
            // After the magic numbers, which decide the format.
            let at = rng.range(12, p.body.len());
            p.body.splice(at..at, near);
        }
    }
    c.chunks = match rng.below(4) {
        0 => Some(rng.range(1, 16)),
        1 => Some(rng.range(17, 8192)),
        _ => None,
    };
    if rng.chance(5) && !c.parts.is_empty() {
        let i = rng.below(c.parts.len());
        c.parts[i].filename = Some(rng.text_of(2 << 10, 40 << 10, TOKEN));
        c.long_header = Some(i);
    }
    c
}

impl Case {
    fn content_type(&self) -> String {
        match &self.header_boundary {
            None => "multipart/form-data".into(),
            Some(b) if self.quoted => format!("multipart/form-data; boundary=\"{b}\""),
            Some(b) => format!("multipart/form-data; boundary={b}"),
        }
    }

    fn body(&self, rng: &mut Rng) -> Vec<u8> {
        let nl: &[u8] = if self.lf_only { b"\n" } else { b"\r\n" };
        let mut out = self.preamble.clone();
        if !out.is_empty() {
            out.extend_from_slice(nl);
        }
        for (i, p) in self.parts.iter().enumerate() {
            out.extend_from_slice(format!("--{}", self.boundary).as_bytes());
            out.extend_from_slice(nl);
            let mut cd = String::from("Content-Disposition: form-data");
            if let Some(n) = &p.name {
                let _ = write!(cd, "; name=\"{n}\"");
            }
            if let Some(f) = &p.filename {
                let _ = write!(cd, "; filename=\"{f}\"");
            }
            out.extend_from_slice(cd.as_bytes());
            out.extend_from_slice(nl);
            if let Some(t) = p.content_type {
                out.extend_from_slice(format!("Content-Type: {t}").as_bytes());
                out.extend_from_slice(nl);
            }
            if self.no_header_end != Some(i) {
                out.extend_from_slice(nl);
            }
            out.extend_from_slice(&p.body);
            out.extend_from_slice(nl);
        }
        if self.closing {
            out.extend_from_slice(format!("--{}--", self.boundary).as_bytes());
            out.extend_from_slice(nl);
        }
        if self.truncated && !out.is_empty() {
            let at = rng.below(out.len());
            out.truncate(at);
        }
        out
    }

    /// A body any multipart parser must read as the parts that were generated.
    fn well_formed(&self) -> bool {
        let delimiter = format!("\r\n--{}", self.boundary);
        self.header_boundary.as_deref() == Some(self.boundary.as_str())
            && self.preamble.is_empty()
            && self.no_header_end.is_none()
            && self.closing
            && !self.lf_only
            && !self.truncated
            && self.long_header.is_none()
            && !self.parts.is_empty()
            && self.parts.iter().all(|p| p.name.is_some() && !contains(&p.body, delimiter.as_bytes()))
    }

    fn files(&self) -> Vec<&Part> {
        self.parts.iter().filter(|p| p.name.as_deref() == Some("file")).collect()
    }

    fn texts(&self) -> Vec<&Part> {
        self.parts.iter().filter(|p| p.name.as_deref() != Some("file")).collect()
    }

    /// What a correct server answers, where the body alone decides it: `Some(true)`
    /// accepted, `Some(false)` refused, `None` either (a corrupt body, duplicated files).
    fn expected(&self) -> Option<bool> {
        if !self.well_formed() {
            return None;
        }
        let files = self.files();
        let texts = self.texts();
        let field = |name: &str| texts.iter().find(|p| p.name.as_deref() == Some(name));
        let bad_post = self.post
            && (field("caption").is_some_and(|p| String::from_utf8_lossy(&p.body).chars().count() > 2200)
                || field("author").is_some_and(|p| String::from_utf8_lossy(&p.body).trim().is_empty()));
        let bad_text = texts.iter().any(|p| matches!(p.kind, Kind::Huge | Kind::Binary)) || texts.len() > MAX_FIELDS;
        if files.is_empty() || bad_text || bad_post {
            return Some(false);
        }
        match (files.len(), &files[0].kind) {
            (_, Kind::NotImage | Kind::Text) => Some(false),
            // Junk after the magic numbers (or a delimiter spliced in) may declare any
            // size: past `[processor] max_pixels` the upload is refused (422).
            (1, Kind::Image) if too_many_pixels(&files[0].body) => Some(false),
            // Few fields: whatever bound on parts an implementation sets, it takes these.
            (1, Kind::Image) if texts.len() <= 4 => Some(true),
            _ => None,
        }
    }

    fn describe(&self, body: &[u8]) -> String {
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|p| {
                let filename = p.filename.as_ref().map(|f| if f.len() > 40 { format!("{} B", f.len()) } else { f.clone() });
                format!("{:?}={:?}({} B, filename {:?})", p.name, p.kind, p.body.len(), filename)
            })
            .collect();
        format!(
            "{} Content-Type {:?}; body boundary {:?}; preamble {} B; no header end at {:?}; long header at {:?}; \
             closing {}; LF only {}; truncated {}; chunks of {:?} B; {} B in all; parts: {}\nfirst bytes: {:?}",
            if self.post { "POST /v1/posts" } else { "POST /v1/images" },
            self.content_type(),
            self.boundary,
            self.preamble.len(),
            self.no_header_end,
            self.long_header,
            self.closing,
            self.lf_only,
            self.truncated,
            self.chunks,
            body.len(),
            parts.join(", "),
            String::from_utf8_lossy(&body[..body.len().min(400)]),
        )
    }
}

/// Whether the request failed because the server closed the connection (not a timeout,
/// not a refused connection).
fn closed_by_server(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind::*;
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| matches!(io.kind(), BrokenPipe | ConnectionReset | UnexpectedEof))
            || s.to_string().contains("connection closed before message completed")
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn innermost(e: &reqwest::Error) -> String {
    let mut s: &dyn std::error::Error = e;
    while let Some(next) = s.source() {
        s = next;
    }
    s.to_string()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn originals(p: &InProcess) -> BTreeSet<String> {
    list_all(&*p.ctx.store, "originals/").await.unwrap().into_iter().map(|o| o.key).collect()
}

async fn pending_uploads(p: &InProcess) -> usize {
    p.ctx.store.list_multipart("originals/").await.unwrap().len()
}

fn sha256_hex(b: &[u8]) -> String {
    common::sha256_hex(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_multipart_bodies_are_accepted_or_refused_cleanly() {
    let seed: u64 = std::env::var("FUZZ_MULTIPART_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    let cases: usize = std::env::var("FUZZ_MULTIPART_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    println!("FUZZ_MULTIPART_SEED={seed} FUZZ_MULTIPART_CASES={cases}");
    let mut rng = Rng(seed);
    let samples = Samples::new();
    let p = InProcess::start(Backend::Embedded, None).await;
    let http = reqwest::Client::builder().timeout(ANSWER_WITHIN).build().unwrap();
    let started = Instant::now();
    let (mut accepted, mut refused) = (0, 0);
    // Cases whose answer the body decides: accepted, refused.
    let mut predicted = [0; 2];
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..cases {
        for post in [false, true] {
            let case = gen_case(&mut rng, &samples, post);
            let body = case.body(&mut rng);
            let what = format!("case {i} of seed {seed}: {}", case.describe(&body));
            let before = originals(&p).await;
            let path = if post { "/v1/posts" } else { "/v1/images" };
            let sent = Instant::now();
            let res = http
                .post(p.client.url(path))
                .bearer_auth(&p.key)
                .header("content-type", case.content_type())
                .body(match case.chunks {
                    None => reqwest::Body::from(body.clone()),
                    Some(n) => {
                        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(n).map(|c| Ok(c.to_vec())).collect();
                        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
                    }
                })
                .send()
                .await;
            let (status, content_type, answer) = match res {
                Ok(res) => {
                    let status = res.status();
                    let content_type =
                        res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    (Some(status), content_type, res.json::<serde_json::Value>().await.unwrap_or_default())
                }
                // Issue 17 allows a server to close the connection on hostile input: a
                // refusal before the body is read then reaches a streaming client as a
                // broken pipe or a reset instead of its 4xx.
                Err(e) if !e.is_timeout() && closed_by_server(&e) => {
                    let how = if case.chunks.is_some() { "streamed" } else { "whole" };
                    *codes.entry(format!("closed ({how}): {}", innermost(&e))).or_default() += 1;
                    (None, String::new(), serde_json::Value::Null)
                }
                Err(e) => panic!("no answer within {ANSWER_WITHIN:?} ({e:?}, after {:?}); {what}", sent.elapsed()),
            };
            assert!(
                status.is_none_or(|s| s == 202 || (s.is_client_error() && content_type.starts_with("application/problem+json"))),
                "{status:?} {content_type} {answer}; {what}"
            );
            let status = status.map_or(0, |s| s.as_u16());
            let mut after = originals(&p).await;
            if status == 0 {
                // The server's clean-up ran before it answered, but give a closed connection a moment.
                let t = Instant::now();
                while after != before && t.elapsed() < Duration::from_secs(2) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    after = originals(&p).await;
                }
            }
            let new: Vec<&String> = after.difference(&before).collect();
            assert!(before.is_subset(&after), "an original went away; {what}");
            assert_eq!(pending_uploads(&p).await, 0, "a multipart upload was left pending; {what}");
            if status == 202 {
                accepted += 1;
                let image_id = answer[if post { "image_id" } else { "id" }].as_str().unwrap_or_else(|| panic!("{answer}"));
                assert_eq!(new, [&format!("originals/acme/{image_id}")], "{answer}; {what}");
                if let Some(true) = case.expected() {
                    // Exactly the bytes of the one `file` were stored.
                    let rec: serde_json::Value =
                        p.client.get(&p.key, &format!("/v1/images/{image_id}")).send().await.unwrap().json().await.unwrap();
                    assert_eq!(rec["sha256"], sha256_hex(&case.files()[0].body), "{rec}; {what}");
                }
            } else {
                refused += 1;
                if status != 0 {
                    *codes.entry(format!("{status} {}", answer["code"].as_str().unwrap_or("?"))).or_default() += 1;
                }
                assert!(new.is_empty(), "{status} {answer} left {new:?}; {what}");
            }
            match case.expected() {
                Some(true) => {
                    predicted[0] += 1;
                    assert_eq!(status, 202, "{answer}; {what}")
                }
                Some(false) => {
                    predicted[1] += 1;
                    assert_ne!(status, 202, "accepted; {what}")
                }
                None => {}
            }
        }
    }
    println!(
        "{accepted} accepted, {refused} refused in {:?} ({} predicted accepted, {} predicted refused): {codes:?}",
        started.elapsed(),
        predicted[0],
        predicted[1]
    );
    assert!(predicted.iter().all(|&n| n > 0), "the generator should make well-formed bodies of both kinds");
    p.stop().await;
}
