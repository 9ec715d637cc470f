//! The embedded object store: a directory.
//!
//! Layout under the root: `objects/` holds one file per key, `tmp/` holds files being
//! written, `multipart/{upload_id}/` holds the parts of unfinished uploads. Every write
//! goes to `tmp/`, is fsynced, then renamed into place, and the parent directory is
//! fsynced: a crash leaves the old object or the new one, never half of one.

use super::key::{validate_key, validate_prefix};
use super::*;
use chrono::TimeZone;
use futures::StreamExt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tokio_util::io::ReaderStream;

/// A directory as an object store.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: Arc<PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct UploadInfo {
    key: String,
    initiated: DateTime<Utc>,
}

impl LocalStore {
    /// Opens (and creates) a store rooted at `root`. Leftover temporary files from a
    /// crash are removed: nothing refers to them.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for d in ["objects", "tmp", "multipart"] {
            fs::create_dir_all(root.join(d))?;
        }
        for entry in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(Self { root: Arc::new(root) })
    }

    fn object_path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join("objects").join(key))
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf> {
        if upload_id.len() != 32 || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NoSuchUpload(upload_id.chars().take(64).collect()));
        }
        Ok(self.root.join("multipart").join(upload_id))
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(crate::ids::new_compact_id())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Io(io::Error::other(e)))?
}

fn meta_of(key: &str, m: &fs::Metadata) -> ObjectMeta {
    let modified = m.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    let nanos = modified.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    ObjectMeta {
        key: key.to_string(),
        size: m.len(),
        etag: format!("\"{:x}-{:x}\"", m.len(), nanos),
        last_modified: Utc.timestamp_nanos(nanos as i64),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames a finished temporary file to `dest`, durably.
fn publish(tmp: &Path, dest: &Path) -> io::Result<()> {
    let parent = dest.parent().expect("object paths have a parent");
    fs::create_dir_all(parent)?;
    fs::rename(tmp, dest)?;
    sync_dir(parent)
}

fn write_file(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(body)?;
    f.sync_all()
}

fn not_found(key: &str) -> impl Fn(io::Error) -> StoreError + '_ {
    move |e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StoreError::NotFound(key.to_string()),
        _ => StoreError::Io(e),
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<ObjectMeta> {
        let dest = self.object_path(key)?;
        let tmp = self.tmp_path();
        let key = key.to_string();
        blocking(move || {
            let r = write_file(&tmp, &body).and_then(|_| publish(&tmp, &dest));
            if let Err(e) = r {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
            Ok(meta_of(&key, &fs::metadata(&dest)?))
        })
        .await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<GetResult> {
        let path = self.object_path(key)?;
        let k = key.to_string();
        let (file, meta, range) = blocking(move || {
            // Metadata is read from the open handle: if the object is replaced meanwhile,
            // the body and the metadata still describe the same version.
            let mut file = File::open(&path).map_err(not_found(&k))?;
            let m = file.metadata()?;
            if m.is_dir() {
                return Err(StoreError::NotFound(k));
            }
            let meta = meta_of(&k, &m);
            let range = clamp_range(range, meta.size)?;
            file.seek(SeekFrom::Start(range.start))?;
            Ok((file, meta, range))
        })
        .await?;
        let reader = tokio::fs::File::from_std(file);
        use tokio::io::AsyncReadExt;
        let body = ReaderStream::with_capacity(reader.take(range.end - range.start), 256 * 1024)
            .map(|r| r.map_err(StoreError::Io))
            .boxed();
        Ok(GetResult { meta, range, body })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.object_path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(meta_of(key, &m))),
            Ok(_) => Ok(None),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<ListPage> {
        validate_prefix(prefix)?;
        let objects_root = self.root.join("objects");
        let prefix = prefix.to_string();
        let after = after.map(str::to_string);
        blocking(move || {
            // Walk only the deepest directory the prefix names.
            let dir_part = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let mut keys = Vec::new();
            walk(&objects_root.join(dir_part), dir_part, &mut keys)?;
            let mut selected: Vec<(String, fs::Metadata)> = keys
                .into_iter()
                .filter(|(k, _)| k.starts_with(&prefix) && after.as_deref().is_none_or(|a| k.as_str() > a))
                .collect();
            selected.sort_by(|a, b| a.0.cmp(&b.0));
            let more = selected.len() > limit;
            selected.truncate(limit);
            let objects: Vec<ObjectMeta> = selected.iter().map(|(k, m)| meta_of(k, m)).collect();
            let next = if more { objects.last().map(|o| o.key.clone()) } else { None };
            Ok(ListPage { objects, next })
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let paths = keys.iter().map(|k| self.object_path(k)).collect::<Result<Vec<_>>>()?;
        blocking(move || {
            let mut dirs = std::collections::BTreeSet::new();
            for p in paths {
                match fs::remove_file(&p) {
                    Ok(()) => {
                        dirs.insert(p.parent().unwrap().to_path_buf());
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            for d in dirs {
                sync_dir(&d)?;
            }
            Ok(())
        })
        .await
    }

    async fn create_multipart(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        let id = crate::ids::new_compact_id();
        let dir = self.upload_dir(&id)?;
        let info = serde_json::to_vec(&UploadInfo { key: key.to_string(), initiated: Utc::now() }).unwrap();
        blocking(move || {
            fs::create_dir_all(&dir)?;
            write_file(&dir.join("upload.json"), &info)?;
            Ok(id)
        })
        .await
    }

    async fn put_part(&self, key: &str, upload_id: &str, number: u32, body: Bytes) -> Result<PartTag> {
        let dir = self.checked_upload(key, upload_id).await?;
        let tmp = self.tmp_path();
        blocking(move || {
            let dest = dir.join(format!("{number:05}.part"));
            let r = write_file(&tmp, &body).and_then(|_| fs::rename(&tmp, &dest));
            if let Err(e) = r {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
            Ok(PartTag { number, etag: format!("\"{number}-{:x}\"", body.len()) })
        })
        .await
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, mut parts: Vec<PartTag>) -> Result<ObjectMeta> {
        let dir = self.checked_upload(key, upload_id).await?;
        let dest = self.object_path(key)?;
        let tmp = self.tmp_path();
        let key = key.to_string();
        parts.sort_by_key(|p| p.number);
        blocking(move || {
            let assemble = || -> Result<()> {
                let mut out = File::create(&tmp)?;
                for p in &parts {
                    let mut f = File::open(dir.join(format!("{:05}.part", p.number)))
                        .map_err(|_| StoreError::NoSuchUpload(format!("part {} was never uploaded", p.number)))?;
                    io::copy(&mut f, &mut out)?;
                }
                out.sync_all()?;
                publish(&tmp, &dest)?;
                Ok(())
            };
            if let Err(e) = assemble() {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            fs::remove_dir_all(&dir)?;
            Ok(meta_of(&key, &fs::metadata(&dest)?))
        })
        .await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let dir = self.checked_upload(key, upload_id).await?;
        blocking(move || Ok(fs::remove_dir_all(dir)?)).await
    }

    async fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        validate_prefix(prefix)?;
        let root = self.root.join("multipart");
        let prefix = prefix.to_string();
        blocking(move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(&root)? {
                let entry = entry?;
                let Ok(text) = fs::read(entry.path().join("upload.json")) else { continue };
                let Ok(info) = serde_json::from_slice::<UploadInfo>(&text) else { continue };
                if info.key.starts_with(&prefix) {
                    out.push(PendingUpload {
                        key: info.key,
                        upload_id: entry.file_name().to_string_lossy().into_owned(),
                        initiated: info.initiated,
                    });
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
            Ok(out)
        })
        .await
    }
}

impl LocalStore {
    /// The upload's directory, after checking that the upload exists and is for `key`.
    async fn checked_upload(&self, key: &str, upload_id: &str) -> Result<PathBuf> {
        validate_key(key)?;
        let dir = self.upload_dir(upload_id)?;
        let id = upload_id.to_string();
        let key = key.to_string();
        blocking(move || {
            let mut text = String::new();
            File::open(dir.join("upload.json"))
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(|_| StoreError::NoSuchUpload(id.clone()))?;
            let info: UploadInfo = serde_json::from_str(&text).map_err(|_| StoreError::NoSuchUpload(id.clone()))?;
            if info.key != key {
                return Err(StoreError::NoSuchUpload(id));
            }
            Ok(dir)
        })
        .await
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, fs::Metadata)>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else {
            out.push((key, meta));
        }
    }
    Ok(())
}

/// The byte range to serve: `None` is the whole object; the end is clamped to the size.
pub(crate) fn clamp_range(range: Option<Range<u64>>, size: u64) -> Result<Range<u64>> {
    match range {
        None => Ok(0..size),
        Some(r) if r.start >= size || r.end <= r.start => Err(StoreError::InvalidRange { start: r.start, end: r.end, size }),
        Some(r) => Ok(r.start..r.end.min(size)),
    }
}
