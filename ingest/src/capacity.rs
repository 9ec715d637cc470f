//! The capacity gate: at or over 100 % of `capacity.bytes`, uploads are refused with
//! `507 Insufficient Storage` before the body is read.

use crate::error::IngestError;
use imagelake_core::app::Context;

pub fn check(ctx: &Context) -> Result<(), IngestError> {
    if ctx.usage.is_full() {
        return Err(IngestError::InsufficientStorage(format!(
            "{} of {} bytes are used; uploads resume when usage falls below capacity",
            ctx.usage.used(),
            ctx.usage.capacity()
        )));
    }
    Ok(())
}

/// Counts an accepted upload at once, so that the gate is never more than one upload behind.
pub fn added(ctx: &Context, bytes: u64) {
    ctx.usage.add(bytes);
}
