//! The embedded queue: SQS semantics over redb, a transactional, crash-safe embedded
//! store. Every state change (send, receive, extend, ack, dead-letter) is one redb
//! transaction committed with fsync, so a `kill -9` at any point loses no message and
//! never lets an acknowledged one come back.

use super::*;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tokio::sync::Notify;

/// id -> message.
const MESSAGES: TableDefinition<'static, u128, &[u8]> = TableDefinition::new("messages");
/// (visible_at_ms, id): the messages in order of when they can next be received.
const READY: TableDefinition<'static, (i64, u128), ()> = TableDefinition::new("ready");
/// id -> message, once dead-lettered.
const DEAD: TableDefinition<'static, u128, &[u8]> = TableDefinition::new("dead");

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    body: String,
    sent_at_ms: i64,
    receive_count: u32,
    visible_at_ms: i64,
    /// Changes at every receive: a receipt carries it, so an old receipt cannot ack a
    /// message that someone else received since.
    token: u64,
}

/// The embedded durable queue.
pub struct LocalQueue {
    db: Arc<Database>,
    visibility: Duration,
    max_receives: u32,
    notify: Arc<Notify>,
}

fn storage<E: std::fmt::Display>(e: E) -> QueueError {
    QueueError::Storage(e.to_string())
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn receipt(id: u128, token: u64) -> String {
    format!("{id:032x}.{token:016x}")
}

fn parse_receipt(r: &str) -> Result<(u128, u64)> {
    let stale = || QueueError::StaleReceipt(r.chars().take(80).collect());
    let (id, token) = r.split_once('.').ok_or_else(stale)?;
    Ok((u128::from_str_radix(id, 16).map_err(|_| stale())?, u64::from_str_radix(token, 16).map_err(|_| stale())?))
}

fn to_message(id: u128, s: &Stored) -> Message {
    Message {
        id: uuid::Uuid::from_u128(id).to_string(),
        receipt: receipt(id, s.token),
        body: s.body.clone(),
        receive_count: s.receive_count,
        sent_at: DateTime::from_timestamp_millis(s.sent_at_ms).unwrap_or_default(),
    }
}

impl LocalQueue {
    pub fn open(dir: impl Into<PathBuf>, visibility: Duration, max_receives: u32) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(storage)?;
        let db = Database::create(dir.join("queue.redb")).map_err(storage)?;
        let w = db.begin_write().map_err(storage)?;
        w.open_table(MESSAGES).map_err(storage)?;
        w.open_table(READY).map_err(storage)?;
        w.open_table(DEAD).map_err(storage)?;
        w.commit().map_err(storage)?;
        Ok(Self { db: Arc::new(db), visibility, max_receives: max_receives.max(1), notify: Arc::new(Notify::new()) })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T> + Send + 'static) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(storage)?
    }

    /// One receive pass: returns the delivered messages and when the next one becomes visible.
    async fn try_receive(&self, max: usize) -> Result<(Vec<Message>, Option<i64>)> {
        let (vis_ms, max_receives) = (self.visibility.as_millis() as i64, self.max_receives);
        self.run(move |db| {
            let now = now_ms();
            let w = db.begin_write().map_err(storage)?;
            let mut out = Vec::new();
            let next;
            {
                let mut messages = w.open_table(MESSAGES).map_err(storage)?;
                let mut ready = w.open_table(READY).map_err(storage)?;
                let mut dead = w.open_table(DEAD).map_err(storage)?;
                let due: Vec<(i64, u128)> = ready
                    .range((i64::MIN, 0u128)..=(now, u128::MAX))
                    .map_err(storage)?
                    .map(|e| e.map(|(k, _)| k.value()))
                    .take(max * 4 + 16)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(storage)?;
                for (at, id) in due {
                    if out.len() >= max {
                        break;
                    }
                    ready.remove((at, id)).map_err(storage)?;
                    let Some(raw) = messages.get(id).map_err(storage)?.map(|v| v.value().to_vec()) else { continue };
                    let mut s: Stored = serde_json::from_slice(&raw).map_err(storage)?;
                    if s.receive_count >= max_receives {
                        // SQS redrive: received max_receives times without an ack.
                        messages.remove(id).map_err(storage)?;
                        dead.insert(id, raw.as_slice()).map_err(storage)?;
                        continue;
                    }
                    s.receive_count += 1;
                    s.token = rand::random();
                    s.visible_at_ms = now + vis_ms;
                    let bytes = serde_json::to_vec(&s).map_err(storage)?;
                    messages.insert(id, bytes.as_slice()).map_err(storage)?;
                    ready.insert((s.visible_at_ms, id), ()).map_err(storage)?;
                    out.push(to_message(id, &s));
                }
                next = ready.first().map_err(storage)?.map(|(k, _)| k.value().0);
            }
            w.commit().map_err(storage)?;
            Ok((out, next))
        })
        .await
    }

    /// Changes a held message's visibility; `None` deletes it.
    async fn update_held(&self, receipt_str: &str, visible_in: Option<Duration>) -> Result<()> {
        let (id, token) = parse_receipt(receipt_str)?;
        let r = receipt_str.to_string();
        let changed = self
            .run(move |db| {
                let w = db.begin_write().map_err(storage)?;
                {
                    let mut messages = w.open_table(MESSAGES).map_err(storage)?;
                    let mut ready = w.open_table(READY).map_err(storage)?;
                    let Some(raw) = messages.get(id).map_err(storage)?.map(|v| v.value().to_vec()) else {
                        // Already acknowledged (or dead-lettered): nothing to do.
                        return match visible_in {
                            None => Ok(false),
                            Some(_) => Err(QueueError::StaleReceipt(r)),
                        };
                    };
                    let mut s: Stored = serde_json::from_slice(&raw).map_err(storage)?;
                    if s.token != token {
                        return Err(QueueError::StaleReceipt(r));
                    }
                    ready.remove((s.visible_at_ms, id)).map_err(storage)?;
                    match visible_in {
                        None => {
                            messages.remove(id).map_err(storage)?;
                        }
                        Some(d) => {
                            s.visible_at_ms = now_ms() + d.as_millis() as i64;
                            messages.insert(id, serde_json::to_vec(&s).map_err(storage)?.as_slice()).map_err(storage)?;
                            ready.insert((s.visible_at_ms, id), ()).map_err(storage)?;
                        }
                    }
                }
                w.commit().map_err(storage)?;
                Ok(true)
            })
            .await?;
        if changed && visible_in == Some(Duration::ZERO) {
            self.notify.notify_waiters();
        }
        Ok(())
    }
}

#[async_trait]
impl JobQueue for LocalQueue {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn send(&self, body: &str) -> Result<String> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge(body.len()));
        }
        let id = uuid::Uuid::now_v7().as_u128();
        let now = now_ms();
        let s = Stored { body: body.to_string(), sent_at_ms: now, receive_count: 0, visible_at_ms: now, token: 0 };
        let bytes = serde_json::to_vec(&s).map_err(storage)?;
        self.run(move |db| {
            let w = db.begin_write().map_err(storage)?;
            {
                w.open_table(MESSAGES).map_err(storage)?.insert(id, bytes.as_slice()).map_err(storage)?;
                w.open_table(READY).map_err(storage)?.insert((now, id), ()).map_err(storage)?;
            }
            w.commit().map_err(storage)
        })
        .await?;
        self.notify.notify_waiters();
        Ok(uuid::Uuid::from_u128(id).to_string())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>> {
        let max = max.clamp(1, 10);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            let (got, next) = self.try_receive(max).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut until = deadline;
            if let Some(at) = next {
                let ms = (at - now_ms()).max(1) as u64;
                until = until.min(now + Duration::from_millis(ms));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn extend(&self, receipt: &str, timeout: Duration) -> Result<()> {
        self.update_held(receipt, Some(timeout)).await
    }

    async fn ack(&self, receipt: &str) -> Result<()> {
        self.update_held(receipt, None).await
    }

    async fn depth(&self) -> Result<QueueDepth> {
        self.run(|db| {
            let r = db.begin_read().map_err(storage)?;
            let ready = r.open_table(READY).map_err(storage)?;
            let total = ready.len().map_err(storage)?;
            let now = now_ms();
            let visible = ready.range((i64::MIN, 0u128)..=(now, u128::MAX)).map_err(storage)?.count() as u64;
            let dead = r.open_table(DEAD).map_err(storage)?.len().map_err(storage)?;
            Ok(QueueDepth { visible, in_flight: total - visible, dead })
        })
        .await
    }

    async fn peek_dead(&self, max: usize) -> Result<Vec<Message>> {
        self.run(move |db| {
            let r = db.begin_read().map_err(storage)?;
            let dead = r.open_table(DEAD).map_err(storage)?;
            let mut out = Vec::new();
            for e in dead.iter().map_err(storage)?.take(max) {
                let (k, v) = e.map_err(storage)?;
                let s: Stored = serde_json::from_slice(v.value()).map_err(storage)?;
                out.push(to_message(k.value(), &s));
            }
            Ok(out)
        })
        .await
    }

    fn visibility_timeout(&self) -> Duration {
        self.visibility
    }

    fn max_receives(&self) -> u32 {
        self.max_receives
    }
}
