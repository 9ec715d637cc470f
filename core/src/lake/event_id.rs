//! Each fact's `event_id`, built by its row type: the one place for every recipe. An id is
//! derived from what happened (`ids::event_id` of the parts), so the same fact written
//! twice (a redelivered job, an expiry redone, a delete and a clean-up of one object) has
//! one id, which the lake's views and the aggregates keep once; a download is the one fact
//! that happens again with the same parts, so its id takes a fresh random part.

use super::{
    CommentEventKind, CommentRow, DeletionKind, DeletionRow, DownloadRow, JobRow, PostEventKind, PostRow, UploadRow, UsageRow,
    VariantRow,
};
use crate::ids::event_id;

impl UploadRow {
    /// One image accepted.
    pub fn event_id_of(image_id: &str) -> String {
        event_id(&["upload", image_id])
    }
}

impl JobRow {
    /// One attempt of a job.
    pub fn event_id_of(job_id: &str, attempt: u32) -> String {
        event_id(&["job", job_id, &attempt.to_string()])
    }
}

impl VariantRow {
    /// One stored format of one variant of an image.
    pub fn event_id_of(image_id: &str, variant: &str, format: &str) -> String {
        event_id(&["variant", image_id, variant, format])
    }
}

impl DeletionRow {
    /// The removal of one object: an original, one stored format of a variant
    /// (`Some((name, format))`), or an abandoned resumable upload.
    pub fn event_id_of(image_id: &str, kind: DeletionKind, variant: Option<(&str, &str)>) -> String {
        match variant {
            Some((name, format)) => event_id(&["deletion", image_id, kind.as_str(), name, format]),
            None => event_id(&["deletion", image_id, kind.as_str(), ""]),
        }
    }
}

impl DownloadRow {
    /// One object served (`variant` `None`: the original); `nonce` tells two downloads of
    /// the same object apart (`ids::new_id()`, or a generator's counter).
    pub fn event_id_of(image_id: &str, variant: Option<&str>, nonce: &str) -> String {
        event_id(&["download", image_id, variant.unwrap_or(""), nonce])
    }
}

impl UsageRow {
    /// One snapshot of one customer (`None`: the whole store) at `stamp`.
    pub fn event_id_of(stamp: &str, customer: Option<&str>) -> String {
        event_id(&["usage", stamp, customer.unwrap_or("")])
    }
}

impl PostRow {
    /// One transition of a post (each happens once).
    pub fn event_id_of(post_id: &str, event: PostEventKind) -> String {
        event_id(&["post", post_id, event.as_str()])
    }
}

impl CommentRow {
    /// One transition of a comment.
    pub fn event_id_of(comment_id: &str, event: CommentEventKind) -> String {
        event_id(&["comment", comment_id, event.as_str()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_are_stable_and_distinct() {
        // The ids of facts already in lakes: a change here would count them twice.
        assert_eq!(UploadRow::event_id_of("i"), event_id(&["upload", "i"]));
        assert_eq!(JobRow::event_id_of("j", 2), event_id(&["job", "j", "2"]));
        assert_eq!(DeletionRow::event_id_of("i", DeletionKind::Original, None), event_id(&["deletion", "i", "original", ""]));
        assert_eq!(DeletionRow::event_id_of("u", DeletionKind::Upload, None), event_id(&["deletion", "u", "upload", ""]));
        let webp = DeletionRow::event_id_of("i", DeletionKind::Variant, Some(("thumb", "webp")));
        assert_ne!(webp, DeletionRow::event_id_of("i", DeletionKind::Variant, Some(("thumb", "jpeg"))));
        assert_ne!(VariantRow::event_id_of("i", "thumb", "webp"), VariantRow::event_id_of("i", "thumb", "jpeg"));
        assert_ne!(PostRow::event_id_of("p", PostEventKind::Created), CommentRow::event_id_of("p", CommentEventKind::Created));
        assert_ne!(DownloadRow::event_id_of("i", None, "1"), DownloadRow::event_id_of("i", None, "2"));
        assert_eq!(UsageRow::event_id_of("t", None), event_id(&["usage", "t", ""]));
    }
}
