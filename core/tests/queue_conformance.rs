//! The job-queue conformance suite: every case runs against the embedded queue and
//! against the SQS server over a real socket (started by `scripts/test`).

use imagelake_core::queue::{LocalQueue, QueueError, SharedQueue, SqsQueue};
use imagelake_core::{ids, testing};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

async fn local(visibility: Duration, max_receives: u32) -> SharedQueue {
    Arc::new(LocalQueue::open(testing::temp_dir("queue"), visibility, max_receives).unwrap())
}

async fn sqs(visibility: Duration, max_receives: u32) -> SharedQueue {
    let name = format!("conformance-{}", ids::new_compact_id());
    Arc::new(SqsQueue::create(testing::sqs_options(visibility, max_receives), &name).await.unwrap())
}

/// Receives until `n` messages arrived or `within` passed.
async fn receive_n(q: &SharedQueue, n: usize, within: Duration) -> Vec<imagelake_core::queue::Message> {
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < n && start.elapsed() < within {
        got.extend(q.receive(10, SECOND).await.unwrap());
    }
    got
}

async fn send_receive_ack(q: SharedQueue) {
    let sent: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    for b in &sent {
        q.send(b).await.unwrap();
    }
    let got = receive_n(&q, 3, 10 * SECOND).await;
    assert_eq!(got.iter().map(|m| m.body.clone()).collect::<BTreeSet<_>>(), sent);
    for m in &got {
        assert_eq!(m.receive_count, 1);
        assert!(!m.id.is_empty() && !m.receipt.is_empty());
        q.ack(&m.receipt).await.unwrap();
    }
    assert!(q.receive(10, SECOND).await.unwrap().is_empty(), "acknowledged messages never come back");
    let d = q.depth().await.unwrap();
    assert_eq!((d.visible, d.in_flight, d.dead), (0, 0, 0));
}

async fn visibility_timeout_redelivers(q: SharedQueue) {
    q.send("job").await.unwrap();
    let first = receive_n(&q, 1, 10 * SECOND).await.remove(0);
    assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty(), "invisible while held");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = receive_n(&q, 1, 10 * SECOND).await.remove(0);
    assert_eq!(second.id, first.id);
    assert_eq!(second.receive_count, 2, "the receive count counts");
    // The first receipt is stale: acknowledging with it must not delete the message
    // that someone else now holds (SQS answers success, ours an error; neither deletes).
    match q.ack(&first.receipt).await {
        Ok(()) | Err(QueueError::StaleReceipt(_)) => {}
        Err(e) => panic!("unexpected {e}"),
    }
    q.ack(&second.receipt).await.unwrap();
    assert!(q.receive(10, Duration::from_millis(1500)).await.unwrap().is_empty());
}

async fn extend_keeps_a_message_hidden(q: SharedQueue) {
    q.send("long job").await.unwrap();
    let m = receive_n(&q, 1, 10 * SECOND).await.remove(0);
    q.extend(&m.receipt, 4 * SECOND).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty(), "extended past the default timeout");
    q.ack(&m.receipt).await.unwrap();
}

async fn long_poll_wakes_on_send(q: SharedQueue) {
    let q2 = q.clone();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        q2.send("late").await.unwrap();
    });
    let start = Instant::now();
    let got = q.receive(1, 5 * SECOND).await.unwrap();
    sender.await.unwrap();
    let got = if got.is_empty() { receive_n(&q, 1, 5 * SECOND).await } else { got };
    assert_eq!(got[0].body, "late");
    assert!(start.elapsed() < Duration::from_millis(4_500), "long poll returned in {:?}", start.elapsed());
    q.ack(&got[0].receipt).await.unwrap();
}

async fn dead_letter_after_max_receives(q: SharedQueue) {
    q.send("poison").await.unwrap();
    for attempt in 1..=2 {
        let m = receive_n(&q, 1, 10 * SECOND).await;
        assert_eq!(m.len(), 1, "attempt {attempt} delivered");
        assert_eq!(m[0].receive_count, attempt);
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    // The third receive finds the message over max_receives and redrives it.
    assert!(q.receive(10, 2 * SECOND).await.unwrap().is_empty(), "never delivered a third time");
    let start = Instant::now();
    let mut dead = Vec::new();
    while dead.is_empty() && start.elapsed() < 10 * SECOND {
        dead = q.peek_dead(10).await.unwrap();
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(q.depth().await.unwrap().dead, 1);
}

async fn batch_receive(q: SharedQueue) {
    for i in 0..15 {
        q.send(&format!("m{i}")).await.unwrap();
    }
    let got = receive_n(&q, 15, 20 * SECOND).await;
    let bodies: BTreeSet<String> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies.len(), 15, "each message once");
    for m in got {
        q.ack(&m.receipt).await.unwrap();
    }
}

async fn oversized_message_is_refused(q: SharedQueue) {
    let big = "x".repeat(256 * 1024 + 1);
    assert!(matches!(q.send(&big).await, Err(QueueError::TooLarge(_))));
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_queue {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::local(super::SECOND, 2).await).await } )*
        }
        mod sqs_server {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::$case(super::sqs(super::SECOND, 2).await).await } )*
        }
    };
}

conformance!(
    send_receive_ack,
    visibility_timeout_redelivers,
    extend_keeps_a_message_hidden,
    long_poll_wakes_on_send,
    dead_letter_after_max_receives,
    batch_receive,
    oversized_message_is_refused,
);
