//! Removing stored bytes, and the `deletions` facts that say so (their `event_id` is
//! `DeletionRow::event_id_of`: a delete, an expiry and a clean-up of the same object write
//! the same fact, which the lake's views keep once, and two formats of one variant are two
//! facts).

use crate::app::Context;
use crate::lake::{DeletionKind, DeletionReason, DeletionRow, Event};
use crate::record::{self, ImageRecord, VariantState};
use crate::CoreError;
use chrono::{DateTime, Utc};

/// The `deletions` row of a resumable upload that expired incomplete: kind `upload`,
/// reason `abandoned`, the bytes it had received.
pub fn abandoned_upload_event(upload_id: &str, customer: &str, bytes: u64, at: DateTime<Utc>) -> Event {
    Event::Deletion(DeletionRow {
        event_id: DeletionRow::event_id_of(upload_id, DeletionKind::Upload, None),
        image_id: upload_id.into(),
        customer_id: customer.into(),
        kind: DeletionKind::Upload,
        variant: None,
        bytes,
        reason: DeletionReason::Abandoned,
        deleted_at: at,
    })
}

/// The `deletions` row of one object: the original (`variant` is `None`, kind
/// `original`) or one stored format of a variant (`Some((name, format))`, kind `variant`;
/// the row names the variant, the `event_id` the format too), deleted or expired.
pub fn deletion_event(
    image_id: &str,
    customer: &str,
    variant: Option<(&str, &str)>,
    bytes: u64,
    at: DateTime<Utc>,
    reason: DeletionReason,
) -> Event {
    let kind = if variant.is_some() { DeletionKind::Variant } else { DeletionKind::Original };
    Event::Deletion(DeletionRow {
        event_id: DeletionRow::event_id_of(image_id, kind, variant),
        image_id: image_id.into(),
        customer_id: customer.into(),
        kind,
        variant: variant.map(|(name, _)| name.to_string()),
        bytes,
        reason,
        deleted_at: at,
    })
}

/// Finishes the delete of a tombstoned image (`MetadataStore::begin_delete`): removes its
/// original and ready variants from the store, then its rows, then writes its
/// `deletions` rows. Safe to run again after a failure at any step.
pub async fn remove_image(ctx: &Context, rec: &ImageRecord, at: DateTime<Utc>) -> Result<(), CoreError> {
    let mut keys = vec![record::original_key(&rec.customer, &rec.id)];
    let mut events = vec![deletion_event(&rec.id, &rec.customer, None, rec.bytes, at, DeletionReason::Deleted)];
    for v in rec.variants.iter().filter(|v| v.state == VariantState::Ready) {
        keys.push(v.object_key(&rec.customer, &rec.id));
        events.push(deletion_event(&rec.id, &rec.customer, Some((&v.name, &v.format)), v.bytes, at, DeletionReason::Deleted));
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
        let webp = deletion_event("i", "acme", Some(("thumb", "webp")), 10, at, DeletionReason::Expired);
        let jpeg = deletion_event("i", "acme", Some(("thumb", "jpeg")), 20, at, DeletionReason::Expired);
        assert_ne!(event_id(&webp), event_id(&jpeg), "two formats of one variant are two facts");
        let again =
            deletion_event("i", "acme", Some(("thumb", "webp")), 10, at + chrono::Duration::hours(1), DeletionReason::Deleted);
        assert_eq!(event_id(&webp), event_id(&again), "one object's fact, whoever writes it and when");
        let Event::Deletion(row) = &webp else { unreachable!() };
        assert_eq!((row.kind, row.variant.as_deref(), row.bytes), (DeletionKind::Variant, Some("thumb"), 10));
        // The original's recipe is the one it always had.
        let original = deletion_event("i", "acme", None, 5, at, DeletionReason::Deleted);
        assert_eq!(event_id(&original), DeletionRow::event_id_of("i", DeletionKind::Original, None));
        let Event::Deletion(row) = &original else { unreachable!() };
        assert_eq!((row.kind, row.variant.as_deref()), (DeletionKind::Original, None));
    }
}
