//! Small JSON objects the lifecycle keeps in the store: job status, sweep watermarks.

use crate::LifecycleError;
use imagelake_core::store::{ObjectStore, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub async fn read_json<T: DeserializeOwned>(store: &dyn ObjectStore, key: &str) -> Result<Option<T>, LifecycleError> {
    match store.get(key, None).await {
        Ok(got) => {
            let bytes = got.bytes().await?;
            serde_json::from_slice(&bytes).map(Some).map_err(|e| LifecycleError::CorruptState(key.into(), e.to_string()))
        }
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn write_json<T: Serialize>(store: &dyn ObjectStore, key: &str, value: &T) -> Result<(), LifecycleError> {
    let body = serde_json::to_vec_pretty(value).expect("state serializes");
    store.put(key, body.into()).await?;
    Ok(())
}
