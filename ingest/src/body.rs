//! Guards on an upload's body against hostile or broken clients. Each ends the stream
//! with an error the moment its bound is crossed, and leaves its verdict (the
//! [`IngestError`] the client gets) in a [`Verdict`] for the handler to answer with.
//!
//! - [`timed`]: no byte for `ingest.body_idle_timeout` ends the body (`408 body_timeout`),
//!   so a stalled client holds neither its buffers nor its connection for long; nor may a
//!   body take longer than `ingest.max_upload_time` in all (`408 upload_too_slow`), the
//!   bound that lets reconcile tell an upload in flight from a dead one.
//! - [`Lingering`]: a body refused before its end is read on, and thrown away, for a
//!   few seconds and megabytes, as web servers do on a "lingering close". A client that
//!   writes its whole body before it reads (most do) then gets the 4xx; without it, the
//!   server closes a socket with unread data, the kernel answers with a reset, and the
//!   client sees a broken pipe instead of the answer.
//! - [`multipart`]: bounds what a multipart parser has to buffer. The parser (multer)
//!   keeps everything it reads until it finds the first boundary, and then each part's
//!   blank line after its headers; a body without them would be held in memory whole.
//!   This guard follows the same framing and allows at most [`MAX_HEAD_BYTES`] for the
//!   preamble and each part's headers, [`MAX_PARTS`] parts, and the upload limit plus
//!   [`FORM_ALLOWANCE`] for the whole stream. The file's bytes themselves are not
//!   copied: the boundary is searched where they lie.

use crate::error::IngestError;
use axum::body::BodyDataStream;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use memchr::memmem::Finder;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// What a guard decided, once it ended a stream.
pub type Verdict = Arc<Mutex<Option<IngestError>>>;

/// The preamble plus the first part's headers, or one part's headers, at most.
pub const MAX_HEAD_BYTES: u64 = 64 * 1024;
/// Parts of a multipart body at most (the file and the text fields, with room to spare).
pub const MAX_PARTS: usize = 24;
/// Bytes a multipart body may have beyond the upload limit: the text fields and headers.
pub const FORM_ALLOWANCE: u64 = 1024 * 1024;

/// Bytes and time a refused body is read on for, at most.
const LINGER_BYTES: usize = 16 << 20;
const LINGER_TIME: Duration = Duration::from_secs(5);

/// A body stream that, dropped before its end, is drained in the background (bounded by
/// [`LINGER_BYTES`] and [`LINGER_TIME`]); see the module.
pub struct Lingering {
    inner: Option<BodyDataStream>,
    ended: bool,
}

impl Lingering {
    pub fn new(inner: BodyDataStream) -> Self {
        Self { inner: Some(inner), ended: false }
    }
}

impl Stream for Lingering {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        let next = Pin::new(inner).poll_next(cx);
        if let Poll::Ready(None) = next {
            self.ended = true;
        }
        next
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(mut rest), false) = (self.inner.take(), self.ended) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let mut read = 0;
            let drain = async {
                while let Some(Ok(chunk)) = rest.next().await {
                    read += chunk.len();
                    if read > LINGER_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER_TIME, drain).await;
        });
    }
}

fn decide(verdict: &Verdict, e: IngestError) -> String {
    let msg = e.to_string();
    let mut slot = verdict.lock().unwrap();
    if slot.is_none() {
        *slot = Some(e);
    }
    msg
}

/// Ends `body` with [`IngestError::BodyTimeout`] when no chunk arrives for `idle`, and
/// with [`IngestError::UploadTooSlow`] when it is not over within `total`.
pub fn timed<S, E>(body: S, idle: Duration, total: Duration, verdict: Verdict) -> impl Stream<Item = Result<Bytes, String>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let deadline = tokio::time::Instant::now() + total;
    futures::stream::unfold((Box::pin(body), verdict, false), move |(mut body, verdict, done)| async move {
        if done {
            return None;
        }
        let until = deadline.min(tokio::time::Instant::now() + idle);
        match tokio::time::timeout_at(until, body.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), (body, verdict, false))),
            Ok(Some(Err(e))) => Some((Err(e.to_string()), (body, verdict, true))),
            Ok(None) => None,
            Err(_) => {
                let e = if until == deadline { IngestError::UploadTooSlow(total) } else { IngestError::BodyTimeout(idle) };
                imagelake_core::metrics::refused(e.code());
                let msg = decide(&verdict, e);
                Some((Err(msg), (body, verdict, true)))
            }
        }
    })
}

/// Where the framing of a multipart body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first `--boundary`.
    Preamble,
    /// In a part's headers: up to the blank line.
    Head,
    /// In a part's content: up to the next `\r\n--boundary`.
    Content,
}

/// The framing follower behind [`multipart`]; public to the crate for its tests.
pub(crate) struct Framing {
    stage: Stage,
    first: Finder<'static>,
    next: Finder<'static>,
    blank: Finder<'static>,
    /// The last bytes seen, shorter than the longest pattern, for matches across chunks.
    carry: Vec<u8>,
    head_bytes: u64,
    parts: usize,
    total: u64,
    max_total: u64,
}

impl Framing {
    pub(crate) fn new(boundary: &str, limit: u64) -> Self {
        Self {
            stage: Stage::Preamble,
            first: Finder::new(format!("--{boundary}").as_bytes()).into_owned(),
            next: Finder::new(format!("\r\n--{boundary}").as_bytes()).into_owned(),
            blank: Finder::new(b"\r\n\r\n").into_owned(),
            carry: Vec::new(),
            head_bytes: 0,
            parts: 0,
            total: 0,
            max_total: limit.saturating_add(FORM_ALLOWANCE),
        }
    }

    /// Follows one chunk; the error is the client's answer.
    pub(crate) fn take(&mut self, chunk: &[u8], limit: u64) -> Result<(), IngestError> {
        self.total += chunk.len() as u64;
        if self.total > self.max_total {
            return Err(IngestError::TooLarge(limit));
        }
        let mut at = 0;
        while at < chunk.len() {
            let rest = &chunk[at..];
            let finder = match self.stage {
                Stage::Preamble => &self.first,
                Stage::Head => &self.blank,
                Stage::Content => &self.next,
            };
            let found = find(finder, &self.carry, rest);
            let keep = finder.needle().len() - 1;
            match found {
                Some(end) => {
                    self.count_head(end as u64)?;
                    at += end;
                    self.carry.clear();
                    self.stage = match self.stage {
                        Stage::Preamble => Stage::Head,
                        Stage::Head => {
                            self.head_bytes = 0;
                            Stage::Content
                        }
                        Stage::Content => {
                            self.parts += 1;
                            if self.parts > MAX_PARTS {
                                return Err(IngestError::BadRequest(
                                    "too_many_fields",
                                    format!("more than {MAX_PARTS} multipart parts"),
                                ));
                            }
                            Stage::Head
                        }
                    };
                }
                None => {
                    self.count_head(rest.len() as u64)?;
                    let tail = &rest[rest.len().saturating_sub(keep)..];
                    self.carry.extend_from_slice(tail);
                    let excess = self.carry.len().saturating_sub(keep);
                    self.carry.drain(..excess);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Counts bytes read outside a part's content against [`MAX_HEAD_BYTES`].
    fn count_head(&mut self, n: u64) -> Result<(), IngestError> {
        if self.stage == Stage::Content {
            return Ok(());
        }
        self.head_bytes += n;
        if self.head_bytes > MAX_HEAD_BYTES {
            let what = if self.stage == Stage::Preamble { "no boundary" } else { "no end of the part's headers" };
            return Err(IngestError::BadRequest(
                "invalid_multipart",
                format!("the multipart body has {what} within its first {MAX_HEAD_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

/// The end (an index into `data`) of the first match of `finder` in `carry ++ data` that
/// ends inside `data`. `carry` is shorter than the needle, so no match lies wholly in it.
fn find(finder: &Finder<'_>, carry: &[u8], data: &[u8]) -> Option<usize> {
    let n = finder.needle().len();
    if !carry.is_empty() {
        let mut joined = carry.to_vec();
        joined.extend_from_slice(&data[..data.len().min(n - 1)]);
        if let Some(i) = finder.find(&joined) {
            return Some(i + n - carry.len());
        }
    }
    finder.find(data).map(|i| i + n)
}

/// Ends a multipart `body` (with `boundary`) that crosses a framing bound; see the module.
pub fn multipart<S>(body: S, boundary: &str, limit: u64, verdict: Verdict) -> impl Stream<Item = Result<Bytes, String>> + Send
where
    S: Stream<Item = Result<Bytes, String>> + Send,
{
    let framing = Framing::new(boundary, limit);
    futures::stream::unfold((Box::pin(body), framing, verdict, false), move |(mut body, mut framing, verdict, done)| async move {
        if done {
            return None;
        }
        match body.next().await? {
            Ok(chunk) => match framing.take(&chunk, limit) {
                Ok(()) => Some((Ok(chunk), (body, framing, verdict, false))),
                Err(e) => {
                    imagelake_core::metrics::refused("multipart");
                    let msg = decide(&verdict, e);
                    Some((Err(msg), (body, framing, verdict, true)))
                }
            },
            Err(e) => Some((Err(e), (body, framing, verdict, true))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(framing: &mut Framing, body: &[u8], chunk: usize) -> Result<(), IngestError> {
        body.chunks(chunk.max(1)).try_for_each(|c| framing.take(c, 1 << 30))
    }

    fn form(parts: usize, file: usize) -> Vec<u8> {
        let mut b = b"--XB\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".to_vec();
        b.extend(std::iter::repeat_n(b'\r', file));
        for i in 0..parts {
            b.extend_from_slice(format!("\r\n--XB\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv").as_bytes());
        }
        b.extend_from_slice(b"\r\n--XB--\r\n");
        b
    }

    #[test]
    fn a_well_formed_body_passes_in_any_chunking() {
        let body = form(3, 200_000);
        for chunk in [1, 2, 3, 7, 64, 4096, body.len()] {
            let mut f = Framing::new("XB", 1 << 30);
            feed(&mut f, &body, chunk).unwrap_or_else(|e| panic!("chunk {chunk}: {e}"));
            assert_eq!(f.parts, 4, "chunk {chunk}");
        }
    }

    #[test]
    fn a_body_without_boundary_is_cut_at_the_head_bound() {
        let body = vec![b'a'; 200_000];
        let e = feed(&mut Framing::new("XB", 1 << 30), &body, 8192).unwrap_err();
        assert_eq!(e.code(), "invalid_multipart", "{e}");
        assert!(e.to_string().contains("no boundary"), "{e}");
    }

    #[test]
    fn headers_without_their_blank_line_are_cut() {
        let mut body = b"--XB\r\nContent-Disposition: form-data; name=\"file\"\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'h', 100_000));
        let e = feed(&mut Framing::new("XB", 1 << 30), &body, 1000).unwrap_err();
        assert!(e.to_string().contains("no end of the part's headers"), "{e}");
    }

    #[test]
    fn too_many_parts_are_refused() {
        let e = feed(&mut Framing::new("XB", 1 << 30), &form(MAX_PARTS + 1, 1), 100).unwrap_err();
        assert_eq!(e.code(), "too_many_fields");
        feed(&mut Framing::new("XB", 1 << 30), &form(MAX_PARTS - 1, 1), 100).unwrap();
    }

    #[test]
    fn the_whole_stream_is_bounded() {
        let mut f = Framing::new("XB", 1000);
        let body = form(1, 1000 + FORM_ALLOWANCE as usize);
        let e = body.chunks(4096).try_for_each(|c| f.take(c, 1000)).unwrap_err();
        assert_eq!(e.code(), "payload_too_large");
    }

    #[tokio::test]
    async fn a_stalled_body_ends_with_a_timeout() {
        let verdict = Verdict::default();
        let stalled = futures::stream::iter([Ok::<_, String>(Bytes::from_static(b"abc"))]).chain(futures::stream::pending());
        let mut s = Box::pin(timed(stalled, Duration::from_millis(50), Duration::from_secs(60), verdict.clone()));
        assert_eq!(s.next().await.unwrap().unwrap(), Bytes::from_static(b"abc"));
        assert!(s.next().await.unwrap().is_err());
        assert!(s.next().await.is_none());
        assert_eq!(verdict.lock().unwrap().as_ref().map(IngestError::code), Some("body_timeout"));
    }

    #[tokio::test]
    async fn a_trickling_body_ends_at_the_deadline() {
        let verdict = Verdict::default();
        let trickle = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Some((Ok::<_, String>(Bytes::from_static(b"a")), ()))
        });
        let s = timed(trickle, Duration::from_millis(100), Duration::from_millis(300), verdict.clone());
        let items: Vec<_> = s.collect().await;
        assert!(items.len() > 5 && items.last().unwrap().is_err(), "{} items", items.len());
        assert_eq!(verdict.lock().unwrap().as_ref().map(IngestError::code), Some("upload_too_slow"));
    }
}
