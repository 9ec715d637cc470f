//! A body stream that measures what passes through it: size, SHA-256, the first bytes
//! (for the format, dimensions and EXIF), and the size limit. It fails the stream the
//! moment the body is over the limit or is not an image, so the upload is aborted before
//! any more of it is stored.

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
}

pub type Shared = Arc<Mutex<Inspection>>;

/// Wraps `body`. Errors of the inner stream are passed on as their text.
pub fn inspect<S, E>(body: S, limit: u64) -> (impl Stream<Item = Result<Bytes, String>> + Send, Shared)
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let shared: Shared = Arc::default();
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
            return self.identify();
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
        self.sha256 = Some(hex::encode(std::mem::take(&mut self.hasher).finalize()));
        Ok(())
    }
}
