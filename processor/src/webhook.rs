//! The `callback_url` webhook: the final record, POSTed once the job is done (processed
//! or failed). Best effort: a failed call is logged; the record is the truth.

use imagelake_core::record::ImageRecord;
use std::time::Duration;

pub async fn notify(url: &str, record: &ImageRecord) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "webhook client"),
    };
    match client.post(url).json(record).send().await {
        Ok(r) if r.status().is_success() => tracing::debug!(url, image_id = %record.id, "webhook delivered"),
        Ok(r) => tracing::warn!(url, status = %r.status(), image_id = %record.id, "webhook refused"),
        Err(e) => tracing::warn!(url, error = %e, image_id = %record.id, "webhook failed"),
    }
}
