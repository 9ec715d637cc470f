//! A body stream that measures what passes through it: size, SHA-256, the first bytes
//! (for the format, dimensions and EXIF), and the limits. It fails the stream the moment
//! the body is over the size limit, is not an image, or declares more pixels than
//! `[processor] max_pixels` in its header, so the upload is aborted before any more of it
//! is stored.

use crate::error::IngestError;
use crate::sniff::{self, Format, SNIFF_BYTES};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// Bytes kept from the start of the body: enough for the headers and EXIF of most files.
const HEAD_BYTES: usize = 256 * 1024;

/// What the inspection found. Read it once the stream ended (or failed).
#[derive(Default)]
pub struct Inspection {
    pub bytes: u64,
    pub head: Vec<u8>,
    pub format: Option<Format>,
    pub sha256: Option<String>,
    /// Why the inspection failed the stream, when it did.
    pub failure: Option<IngestError>,
    hasher: Sha256,
    max_pixels: u64,
    /// The dimensions were read from the head, or will not be (the head is full without).
    sized: bool,
}

pub type Shared = Arc<Mutex<Inspection>>;

/// Wraps `body`, at most `limit` bytes of an image of at most `max_pixels`. Errors of the
/// inner stream are passed on as their text.
pub fn inspect<S, E>(body: S, limit: u64, max_pixels: u64) -> (impl Stream<Item = Result<Bytes, String>> + Send, Shared)
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let shared: Shared = Arc::new(Mutex::new(Inspection { max_pixels, ..Inspection::default() }));
    let state = shared.clone();
    let stream = futures::stream::unfold((Box::pin(body), state, false), move |(mut body, state, done)| async move {
        if done {
            return None;
        }
        match body.next().await {
            Some(Ok(chunk)) => {
                let verdict = state.lock().unwrap().take(&chunk, limit);
                match verdict {
                    Ok(()) => Some((Ok(chunk), (body, state, false))),
                    Err(msg) => Some((Err(msg), (body, state, true))),
                }
            }
            Some(Err(e)) => Some((Err(e.to_string()), (body, state, true))),
            None => {
                let verdict = state.lock().unwrap().finish();
                match verdict {
                    Ok(()) => None,
                    Err(msg) => Some((Err(msg), (body, state, true))),
                }
            }
        }
    });
    (stream, shared)
}

impl Inspection {
    fn fail(&mut self, e: IngestError) -> Result<(), String> {
        let msg = e.to_string();
        self.failure = Some(e);
        Err(msg)
    }

    fn take(&mut self, chunk: &[u8], limit: u64) -> Result<(), String> {
        self.bytes += chunk.len() as u64;
        if self.bytes > limit {
            return self.fail(IngestError::TooLarge(limit));
        }
        self.hasher.update(chunk);
        if self.head.len() < HEAD_BYTES {
            let room = HEAD_BYTES - self.head.len();
            self.head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if self.format.is_none() && self.head.len() >= SNIFF_BYTES {
            self.identify()?;
        }
        self.check_pixels(false)
    }

    /// Once the head holds the dimensions: refuses an image of too many pixels.
    fn check_pixels(&mut self, last: bool) -> Result<(), String> {
        if self.sized || self.format.is_none() {
            return Ok(());
        }
        if let Some((width, height)) = sniff::dimensions(&self.head) {
            self.sized = true;
            if let Some(e) = sniff::too_many_pixels(&self.head, self.max_pixels) {
                tracing::debug!(width, height, "refused: too many pixels");
                return self.fail(e);
            }
        } else if last || self.head.len() >= HEAD_BYTES {
            self.sized = true;
        }
        Ok(())
    }

    fn identify(&mut self) -> Result<(), String> {
        match sniff::sniff(&self.head) {
            Some(f) => {
                self.format = Some(f);
                Ok(())
            }
            None => {
                let why = sniff::refusal(&self.head);
                self.fail(IngestError::NotAnImage(why))
            }
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        if self.bytes == 0 {
            return self.fail(IngestError::EmptyBody);
        }
        if self.format.is_none() {
            self.identify()?;
        }
        self.check_pixels(true)?;
        self.sha256 = Some(hex::encode(std::mem::take(&mut self.hasher).finalize()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs `body`, cut at `cuts` (empty chunks too), through the inspector: what the
    /// stream passed on, whether it failed, and the inspection.
    fn run(body: &[u8], cuts: &[usize], limit: u64) -> (Vec<u8>, bool, Inspection) {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([body.len()]) {
            chunks.push(Ok::<_, std::convert::Infallible>(Bytes::copy_from_slice(&body[from..to])));
            from = to;
        }
        let (stream, shared) = inspect(futures::stream::iter(chunks), limit, u64::MAX);
        let items: Vec<Result<Bytes, String>> = futures::executor::block_on(stream.collect());
        let failed = items.iter().any(Result::is_err);
        let passed = items.into_iter().filter_map(Result::ok).flatten().collect();
        let inspection = std::mem::take(&mut *shared.lock().unwrap());
        (passed, failed, inspection)
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let magic = prop_oneof![
            Just(b"\xFF\xD8\xFF".to_vec()),
            Just(b"\x89PNG\r\n\x1a\n".to_vec()),
            Just(b"GIF89a".to_vec()),
            Just(b"RIFF\0\0\0\0WEBP".to_vec()),
            Just(b"II*\0".to_vec()),
            Just(Vec::new()),
        ];
        (magic, proptest::collection::vec(any::<u8>(), 0..2048)).prop_map(|(mut m, tail)| {
            m.extend(tail);
            m
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// However the body arrives in chunks, under the limit: an image passes whole, with
        /// its size, SHA-256, first bytes and format; anything else fails the stream with
        /// `empty_body` or `unsupported_media_type`.
        #[test]
        fn chunking_does_not_change_the_verdict(b in body(), cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
            let (passed, failed, i) = run(&b, &cuts, b.len() as u64);
            match sniff::sniff(&b) {
                Some(format) => {
                    prop_assert!(!failed);
                    prop_assert!(i.failure.is_none());
                    prop_assert_eq!(&passed, &b);
                    prop_assert_eq!(i.bytes, b.len() as u64);
                    prop_assert_eq!(i.format, Some(format));
                    prop_assert_eq!(i.sha256, Some(hex::encode(Sha256::digest(&b))));
                    prop_assert_eq!(&i.head[..], &b[..b.len().min(HEAD_BYTES)]);
                }
                None => {
                    prop_assert!(failed);
                    let code = i.failure.as_ref().map(IngestError::code);
                    prop_assert_eq!(code, Some(if b.is_empty() { "empty_body" } else { "unsupported_media_type" }));
                    prop_assert!(i.sha256.is_none());
                }
            }
        }

        /// Over the limit, a body never passes: the stream fails (too large, or not an
        /// image when that showed first), and no byte past the limit went by.
        #[test]
        fn over_the_limit_fails(b in body(), cuts in proptest::collection::vec(any::<usize>(), 0..12), under in 1..64usize) {
            prop_assume!(!b.is_empty());
            let limit = b.len().saturating_sub(under) as u64;
            let (passed, failed, i) = run(&b, &cuts, limit);
            prop_assert!(failed);
            prop_assert!(i.sha256.is_none());
            let code = i.failure.as_ref().map(IngestError::code);
            prop_assert!(matches!(code, Some("payload_too_large" | "unsupported_media_type")), "{code:?}");
            prop_assert!(passed.len() as u64 <= limit, "{} bytes passed a limit of {limit}", passed.len());
        }
    }
}
