//! Amazon SQS (and SQS-compatible servers) through `aws-sdk-sqs`. Dead-lettering is
//! SQS's own redrive policy, which [`SqsQueue::connect`] sets from `max_receives`.

use super::*;
use crate::config::QueueConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct SqsOptions {
    pub queue_url: String,
    pub dead_letter_url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub visibility: Duration,
    pub max_receives: u32,
    /// Static credentials (tests); `None` uses the SDK's default chain.
    pub credentials: Option<(String, String)>,
}

impl SqsOptions {
    pub fn from_config(c: &QueueConfig) -> std::result::Result<Self, crate::CoreError> {
        let need = |v: &Option<String>, name: &str| {
            v.clone().ok_or_else(|| crate::CoreError::Config(format!("queue.{name} is required with backend = \"sqs\"")))
        };
        Ok(Self {
            queue_url: need(&c.queue_url, "queue_url")?,
            dead_letter_url: need(&c.dead_letter_url, "dead_letter_url")?,
            endpoint: c.endpoint.clone(),
            region: c.region.clone(),
            visibility: c.visibility_timeout.0,
            max_receives: c.max_receives.max(1),
            credentials: None,
        })
    }
}

pub struct SqsQueue {
    client: Client,
    opts: SqsOptions,
}

fn unavailable<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(what: &str, e: SdkError<E, R>) -> QueueError {
    QueueError::Unavailable(format!("{what}: {}", DisplayErrorContext(&e)))
}

/// Builds a client for `endpoint`/`region`/`credentials`.
pub async fn client(endpoint: Option<&str>, region: Option<&str>, credentials: Option<&(String, String)>) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some((id, secret)) = credentials {
        loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(id, secret, None, None, "imagelake"));
    }
    let shared = loader.load().await;
    let mut b = aws_sdk_sqs::config::Builder::from(&shared);
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    Client::from_conf(b.build())
}

impl SqsQueue {
    /// Connects to existing queues and sets the main queue's redrive policy and
    /// visibility timeout from the options, so that the configuration is the truth.
    pub async fn connect(opts: SqsOptions) -> Result<Self> {
        let client = client(opts.endpoint.as_deref(), opts.region.as_deref(), opts.credentials.as_ref()).await;
        let q = Self { client, opts };
        q.apply_policy().await?;
        Ok(q)
    }

    /// Creates `name` and `name-dlq` (idempotent) and connects to them.
    pub async fn create(mut opts: SqsOptions, name: &str) -> Result<Self> {
        let client = client(opts.endpoint.as_deref(), opts.region.as_deref(), opts.credentials.as_ref()).await;
        let mk = |n: String| {
            let client = client.clone();
            async move {
                client
                    .create_queue()
                    .queue_name(&n)
                    .send()
                    .await
                    .map_err(|e| unavailable("CreateQueue", e))?
                    .queue_url()
                    .map(str::to_string)
                    .ok_or_else(|| QueueError::Unavailable("CreateQueue returned no url".into()))
            }
        };
        opts.dead_letter_url = mk(format!("{name}-dlq")).await?;
        opts.queue_url = mk(name.to_string()).await?;
        Self::connect(opts).await
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.opts.queue_url
    }

    pub fn dead_letter_url(&self) -> &str {
        &self.opts.dead_letter_url
    }

    async fn attributes(&self, url: &str, names: &[QueueAttributeName]) -> Result<HashMap<QueueAttributeName, String>> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", e))?;
        Ok(out.attributes().cloned().unwrap_or_default())
    }

    async fn apply_policy(&self) -> Result<()> {
        let arn = self
            .attributes(&self.opts.dead_letter_url, &[QueueAttributeName::QueueArn])
            .await?
            .remove(&QueueAttributeName::QueueArn)
            .ok_or_else(|| QueueError::Unavailable("dead-letter queue has no QueueArn".into()))?;
        let policy = serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": self.opts.max_receives });
        self.client
            .set_queue_attributes()
            .queue_url(&self.opts.queue_url)
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .attributes(QueueAttributeName::VisibilityTimeout, self.opts.visibility.as_secs().to_string())
            .send()
            .await
            .map_err(|e| unavailable("SetQueueAttributes", e))?;
        Ok(())
    }

    async fn receive_from(&self, url: &str, max: usize, wait: Duration, visibility: Option<i32>) -> Result<Vec<Message>> {
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .set_visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| {
                let attrs = m.attributes();
                let attr = |k: MessageSystemAttributeName| attrs.and_then(|a| a.get(&k)).cloned();
                Message {
                    id: m.message_id().unwrap_or_default().to_string(),
                    receipt: m.receipt_handle().unwrap_or_default().to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                    sent_at: attr(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|v| v.parse::<i64>().ok())
                        .and_then(DateTime::from_timestamp_millis)
                        .unwrap_or_default(),
                }
            })
            .collect())
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    fn backend(&self) -> &'static str {
        "sqs"
    }

    async fn send(&self, body: &str) -> Result<String> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge(body.len()));
        }
        let out = self
            .client
            .send_message()
            .queue_url(&self.opts.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| unavailable("SendMessage", e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>> {
        let url = self.opts.queue_url.clone();
        self.receive_from(&url, max, wait, None).await
    }

    async fn extend(&self, receipt: &str, timeout: Duration) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.opts.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(timeout.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(|e| {
                let text = format!("{}", DisplayErrorContext(&e));
                if text.contains("ReceiptHandle") || text.contains("MessageNotInflight") {
                    QueueError::StaleReceipt(text)
                } else {
                    unavailable("ChangeMessageVisibility", e)
                }
            })?;
        Ok(())
    }

    async fn ack(&self, receipt: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.opts.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| unavailable("DeleteMessage", e))?;
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth> {
        use QueueAttributeName::*;
        let main =
            self.attributes(&self.opts.queue_url, &[ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible]).await?;
        let dead = self.attributes(&self.opts.dead_letter_url, &[ApproximateNumberOfMessages]).await?;
        let n =
            |m: &HashMap<QueueAttributeName, String>, k: QueueAttributeName| m.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(QueueDepth {
            visible: n(&main, ApproximateNumberOfMessages),
            in_flight: n(&main, ApproximateNumberOfMessagesNotVisible),
            dead: n(&dead, ApproximateNumberOfMessages),
        })
    }

    async fn peek_dead(&self, max: usize) -> Result<Vec<Message>> {
        // A visibility timeout of zero leaves the messages where they are.
        let url = self.opts.dead_letter_url.clone();
        self.receive_from(&url, max, Duration::from_secs(1), Some(0)).await
    }

    fn visibility_timeout(&self) -> Duration {
        self.opts.visibility
    }

    fn max_receives(&self) -> u32 {
        self.opts.max_receives
    }
}
