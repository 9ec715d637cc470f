//! S3 (and S3-compatible servers such as Garage) through `aws-sdk-s3`.

use super::key::{validate_key, validate_prefix};
use super::*;
use crate::config::StorageConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use futures::StreamExt;

/// How to reach the bucket. Credentials come from the SDK's default chain unless given.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    pub checksum_when_required: bool,
    /// Static credentials (tests); `None` uses the environment, profiles, or instance roles.
    pub credentials: Option<(String, String)>,
    /// Prepended to every key, so that several deployments (or test runs) share a bucket.
    pub prefix: String,
}

impl S3Options {
    pub fn from_config(c: &StorageConfig) -> std::result::Result<Self, crate::CoreError> {
        let bucket = c
            .bucket
            .clone()
            .ok_or_else(|| crate::CoreError::Config("storage.bucket is required with backend = \"s3\"".into()))?;
        Ok(Self {
            bucket,
            endpoint: c.endpoint.clone(),
            region: c.region.clone(),
            force_path_style: c.force_path_style,
            checksum_when_required: c.checksum_when_required,
            credentials: None,
            prefix: c.prefix.clone().unwrap_or_default(),
        })
    }
}

/// A bucket as an object store.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    pub async fn connect(o: S3Options) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &o.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some((id, secret)) = &o.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(id, secret, None, None, "imagelake"));
        }
        let shared = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared).force_path_style(o.force_path_style);
        if let Some(e) = &o.endpoint {
            b = b.endpoint_url(e);
        }
        if o.checksum_when_required {
            b = b
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        let prefix = match o.prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Self { client: Client::from_conf(b.build()), bucket: o.bucket, prefix }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The bucket key of an object key.
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The object key of a bucket key.
    fn strip<'a>(&self, key: &'a str) -> &'a str {
        key.strip_prefix(self.prefix.as_str()).unwrap_or(key)
    }
}

/// Maps an SDK error: 404 and 416 by status, anything else (timeouts, refused
/// connections, 5xx) is `Unavailable`, which callers treat as retryable.
fn map_err<E: std::error::Error + Send + Sync + 'static>(
    key: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError {
    let status = e.raw_response().map(|r| r.status().as_u16());
    match status {
        Some(404) => {
            let text = format!("{}", DisplayErrorContext(&e));
            if text.contains("NoSuchUpload") {
                StoreError::NoSuchUpload(key.to_string())
            } else {
                StoreError::NotFound(key.to_string())
            }
        }
        Some(416) => StoreError::InvalidRange { start: 0, end: 0, size: 0 },
        _ => StoreError::Unavailable(format!("{key}: {}", DisplayErrorContext(&e))),
    }
}

fn etag(s: Option<&str>) -> String {
    let s = s.unwrap_or_default();
    if s.starts_with('"') {
        s.to_string()
    } else {
        format!("\"{s}\"")
    }
}

fn time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())).unwrap_or_default()
}

/// `bytes 0-99/1234` gives 1234.
fn total_from_content_range(cr: Option<&str>) -> Option<u64> {
    cr?.rsplit('/').next()?.parse().ok()
}

#[async_trait]
impl ObjectStore for S3Store {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<ObjectMeta> {
        validate_key(key)?;
        let size = body.len() as u64;
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .body(SdkBody::from(body))
            .send()
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(ObjectMeta { key: key.into(), size, etag: etag(out.e_tag()), last_modified: Utc::now() })
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<GetResult> {
        validate_key(key)?;
        let mut req = self.client.get_object().bucket(&self.bucket).key(self.full(key));
        if let Some(r) = &range {
            if r.end <= r.start {
                return Err(StoreError::InvalidRange { start: r.start, end: r.end, size: 0 });
            }
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req.send().await.map_err(|e| match map_err(key, e) {
            StoreError::InvalidRange { .. } => {
                let r = range.clone().unwrap_or(0..0);
                StoreError::InvalidRange { start: r.start, end: r.end, size: 0 }
            }
            other => other,
        })?;
        let len = out.content_length().unwrap_or(0).max(0) as u64;
        let size = total_from_content_range(out.content_range()).unwrap_or(len);
        let start = range.as_ref().map(|r| r.start).unwrap_or(0);
        let meta = ObjectMeta { key: key.into(), size, etag: etag(out.e_tag()), last_modified: time(out.last_modified()) };
        let key_owned = key.to_string();
        let body = futures::stream::unfold(out.body, move |mut b| {
            let key = key_owned.clone();
            async move {
                match b.next().await {
                    Some(Ok(chunk)) => Some((Ok(chunk), b)),
                    Some(Err(e)) => Some((Err(StoreError::Unavailable(format!("{key}: {e}"))), b)),
                    None => None,
                }
            }
        })
        .boxed();
        Ok(GetResult { meta, range: start..start + len, body })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        validate_key(key)?;
        match self.client.head_object().bucket(&self.bucket).key(self.full(key)).send().await {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.into(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                etag: etag(out.e_tag()),
                last_modified: time(out.last_modified()),
            })),
            Err(e) => match map_err(key, e) {
                StoreError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        validate_prefix(prefix)?;
        let mut req =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(self.full(prefix)).max_keys(limit.clamp(1, 1000) as i32);
        if let Some(a) = after {
            req = req.start_after(self.full(a));
        }
        let out = req.send().await.map_err(|e| map_err(prefix, e))?;
        let objects: Vec<ObjectMeta> = out
            .contents()
            .iter()
            .map(|o| ObjectMeta {
                key: self.strip(o.key().unwrap_or_default()).to_string(),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: etag(o.e_tag()),
                last_modified: time(o.last_modified()),
            })
            .collect();
        let next = if out.is_truncated().unwrap_or(false) { objects.last().map(|o| o.key.clone()) } else { None };
        Ok(ListPage { objects, next })
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        for k in keys {
            validate_key(k)?;
        }
        for chunk in keys.chunks(1000) {
            let ids = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(self.full(k)).build().expect("key is set"))
                .collect::<Vec<_>>();
            let delete = Delete::builder().set_objects(Some(ids)).quiet(true).build().expect("objects are set");
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| map_err("DeleteObjects", e))?;
            if let Some(err) = out.errors().iter().find(|e| e.code() != Some("NoSuchKey")) {
                return Err(StoreError::Unavailable(format!(
                    "delete {}: {} {}",
                    self.strip(err.key().unwrap_or_default()),
                    err.code().unwrap_or_default(),
                    err.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    async fn create_multipart(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| map_err(key, e))?;
        out.upload_id().map(str::to_string).ok_or_else(|| StoreError::Unavailable("no upload id".into()))
    }

    async fn put_part(&self, key: &str, upload_id: &str, number: u32, body: Bytes) -> Result<PartTag> {
        validate_key(key)?;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .part_number(number as i32)
            .body(SdkBody::from(body))
            .send()
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(PartTag { number, etag: etag(out.e_tag()) })
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, mut parts: Vec<PartTag>) -> Result<ObjectMeta> {
        validate_key(key)?;
        parts.sort_by_key(|p| p.number);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts.iter().map(|p| CompletedPart::builder().part_number(p.number as i32).e_tag(&p.etag).build()).collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| match e.raw_response().map(|r| r.status().as_u16()) {
                // A part list the store refuses (an unknown ETag, a part too small).
                Some(400) => StoreError::Rejected(format!("{key}: {}", DisplayErrorContext(&e))),
                _ => map_err(key, e),
            })?;
        self.head(key).await?.ok_or_else(|| StoreError::NotFound(key.into()))
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>> {
        validate_key(key)?;
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| StoreError::Unavailable(format!("presigning: {e}")))?;
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .part_number(number as i32)
            .presigned(config)
            .await
            .map_err(|e| StoreError::Unavailable(format!("presigning {key}: {}", DisplayErrorContext(&e))))?;
        Ok(Some(request.uri().to_string()))
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        validate_key(key)?;
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(())
    }

    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        validate_prefix(prefix)?;
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| map_err(prefix, e))?;
            for u in page.uploads() {
                out.push(PendingUpload {
                    key: self.strip(u.key().unwrap_or_default()).into(),
                    upload_id: u.upload_id().unwrap_or_default().into(),
                    initiated: time(u.initiated()),
                });
            }
            if !page.is_truncated().unwrap_or(false) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(out);
            }
        }
    }

    /// PutBucketLifecycleConfiguration replaces the bucket's whole configuration, so the
    /// rules already there are read first and kept; ours is identified by its prefix
    /// (deployments sharing a bucket under different prefixes each keep their own).
    async fn install_expiry_rule(&self, prefix: &str, days: u32) -> Result<bool> {
        use aws_sdk_s3::types::{
            BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
        };
        validate_prefix(prefix)?;
        let full = self.full(prefix);
        let id = format!("imagelake-expire-{}", full.replace('/', "-").trim_end_matches('-'));
        let mut rules: Vec<LifecycleRule> =
            match self.client.get_bucket_lifecycle_configuration().bucket(&self.bucket).send().await {
                Ok(out) => out.rules().iter().filter(|r| r.id() != Some(id.as_str())).cloned().collect(),
                // No configuration yet (404 NoSuchLifecycleConfiguration).
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Vec::new(),
                Err(e) => return Err(map_err(prefix, e)),
            };
        let rule = LifecycleRule::builder()
            .id(&id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(&full).build())
            .expiration(LifecycleExpiration::builder().days(days.min(i32::MAX as u32) as i32).build())
            .build()
            .map_err(|e| StoreError::Unavailable(format!("lifecycle rule: {e}")))?;
        rules.push(rule);
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("lifecycle configuration: {e}")))?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| map_err(prefix, e))?;
        Ok(true)
    }
}
