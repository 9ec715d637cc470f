//! Removing stored bytes, and the `deletions` facts that say so. One place for the
//! `event_id` scheme (`["deletion", image_id, "original", ""]` for an original,
//! `["deletion", image_id, "variant", name, format]` for one stored format of a variant),
//! so that a delete, an expiry and a clean-up of the same object write the same fact,
//! which the lake's views keep once, and two formats of one variant are two facts.

use crate::app::Context;
use crate::lake::{DeletionRow, Event};
use crate::record::{self, ImageRecord, VariantState};
use crate::CoreError;
use chrono::{DateTime, Utc};

/// The `deletions` row of a resumable upload that expired incomplete: kind `upload`,
/// reason `abandoned`, the bytes it had received.
pub fn abandoned_upload_event(upload_id: &str, customer: &str, bytes: u64, at: DateTime<Utc>) -> Event {
    Event::Deletion(DeletionRow {
        event_id: crate::ids::event_id(&["deletion", upload_id, "upload", ""]),
        image_id: upload_id.into(),
        customer_id: customer.into(),
        kind: "upload".into(),
        variant: None,
        bytes,
        reason: "abandoned".into(),
        deleted_at: at,
    })
}

/// The `deletions` row of one object: the original (`variant` is `None`, kind
/// `original`) or one stored format of a variant (`Some((name, format))`, kind `variant`;
/// the row names the variant, the `event_id` the format too). `reason` is `deleted` or
/// `expired`.
pub fn deletion_event(
    image_id: &str,
    customer: &str,
    variant: Option<(&str, &str)>,
    bytes: u64,
    at: DateTime<Utc>,
    reason: &str,
) -> Event {
    let (kind, event_id) = match variant {
        Some((name, format)) => ("variant", crate::ids::event_id(&["deletion", image_id, "variant", name, format])),
        None => ("original", crate::ids::event_id(&["deletion", image_id, "original", ""])),
    };
    Event::Deletion(DeletionRow {
        event_id,
        image_id: image_id.into(),
        customer_id: customer.into(),
        kind: kind.into(),
        variant: variant.map(|(name, _)| name.to_string()),
        bytes,
        reason: reason.into(),
        deleted_at: at,
    })
}

/// Finishes the delete of a tombstoned image (`MetadataStore::begin_delete`): removes its
/// original and ready variants from the store, then its rows, then writes its
/// `deletions` rows. Safe to run again after a failure at any step.
pub async fn remove_image(ctx: &Context, rec: &ImageRecord, at: DateTime<Utc>) -> Result<(), CoreError> {
    let mut keys = vec![record::original_key(&rec.customer, &rec.id)];
    let mut events = vec![deletion_event(&rec.id, &rec.customer, None, rec.bytes, at, "deleted")];
    for v in rec.variants.iter().filter(|v| v.state == VariantState::Ready) {
        keys.push(v.object_key(&rec.customer, &rec.id));
        events.push(deletion_event(&rec.id, &rec.customer, Some((&v.name, &v.format)), v.bytes, at, "deleted"));
    }
    ctx.store.delete_many(&keys).await?;
    ctx.meta.purge_image(&rec.id).await?;
    let freed: u64 = events.iter().map(|e| if let Event::Deletion(d) = e { d.bytes } else { 0 }).sum();
    ctx.usage.sub(freed);
    if let Err(e) = ctx.lake.append(events).await {
        tracing::warn!(error = %e, image_id = %rec.id, "deletion events not written to the lake");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_id(e: &Event) -> &str {
        match e {
            Event::Deletion(d) => &d.event_id,
            other => panic!("not a deletion: {other:?}"),
        }
    }

    #[test]
    fn each_stored_object_is_one_fact() {
        let at = Utc::now();
        let webp = deletion_event("i", "acme", Some(("thumb", "webp")), 10, at, "expired");
        let jpeg = deletion_event("i", "acme", Some(("thumb", "jpeg")), 20, at, "expired");
        assert_ne!(event_id(&webp), event_id(&jpeg), "two formats of one variant are two facts");
        let again = deletion_event("i", "acme", Some(("thumb", "webp")), 10, at + chrono::Duration::hours(1), "deleted");
        assert_eq!(event_id(&webp), event_id(&again), "one object's fact, whoever writes it and when");
        let Event::Deletion(row) = &webp else { unreachable!() };
        assert_eq!((row.kind.as_str(), row.variant.as_deref(), row.bytes), ("variant", Some("thumb"), 10));
        // The original's recipe is the one it always had.
        let original = deletion_event("i", "acme", None, 5, at, "deleted");
        assert_eq!(event_id(&original), crate::ids::event_id(&["deletion", "i", "original", ""]));
        let Event::Deletion(row) = &original else { unreachable!() };
        assert_eq!((row.kind.as_str(), row.variant.as_deref()), ("original", None));
    }
}
