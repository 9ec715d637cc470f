//! The embedded queue survives `kill -9`: a worker process sends, receives and
//! acknowledges as fast as it can and is killed at random moments, five times over the
//! same directory. Every message it reported as sent is afterwards either acknowledged or
//! still in the queue (nothing lost), and no acknowledged message is ever delivered again.

use imagelake_core::queue::{JobQueue, LocalQueue};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const WORKER_ENV: &str = "IMAGELAKE_QUEUE_KILL_WORKER_DIR";

/// The worker: prints `sent X` once `send` returned, `acking X` before an ack and
/// `acked X` once it returned.
fn worker(dir: &str, round: usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let q = LocalQueue::open(dir, Duration::from_millis(500), 1000).unwrap();
        let mut out = std::io::stdout().lock();
        for i in 0.. {
            let body = format!("r{round}-m{i}");
            q.send(&body).await.unwrap();
            writeln!(out, "sent {body}").unwrap();
            out.flush().unwrap();
            if i % 2 == 0 {
                for m in q.receive(3, Duration::ZERO).await.unwrap() {
                    // Said before the ack: a kill between the commit and the `acked`
                    // line must not read as a lost message.
                    writeln!(out, "acking {}", m.body).unwrap();
                    out.flush().unwrap();
                    q.ack(&m.receipt).await.unwrap();
                    writeln!(out, "acked {}", m.body).unwrap();
                    out.flush().unwrap();
                }
            }
        }
    });
}

#[test]
fn kill9_loses_nothing_and_never_redelivers_an_ack() {
    if let Ok(dir) = std::env::var(WORKER_ENV) {
        let round = std::env::var("ROUND").unwrap().parse().unwrap();
        return worker(&dir, round);
    }
    let dir = imagelake_core::testing::temp_dir("kill9");
    let (mut sent, mut acking, mut acked) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for round in 0..5 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kill9_loses_nothing_and_never_redelivers_an_ack", "--nocapture", "--test-threads=1"])
            .env(WORKER_ENV, &dir)
            .env("ROUND", round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>());
        std::thread::sleep(Duration::from_millis(300 + 137 * round as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            if let Some(b) = line.strip_prefix("sent ") {
                sent.insert(b.to_string());
            } else if let Some(b) = line.strip_prefix("acking ") {
                acking.insert(b.to_string());
            } else if let Some(b) = line.strip_prefix("acked ") {
                acked.insert(b.to_string());
            }
        }
    }
    assert!(sent.len() > 100, "the worker did real work: {} sent", sent.len());
    assert!(!acked.is_empty());
    // Drain what is left, once the in-flight messages' visibility has run out.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let remaining: Vec<String> = rt.block_on(async {
        let q = LocalQueue::open(&dir, Duration::from_secs(60), 1000).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut all = Vec::new();
        loop {
            let got = q.receive(10, Duration::ZERO).await.unwrap();
            if got.is_empty() {
                break;
            }
            for m in got {
                q.ack(&m.receipt).await.unwrap();
                all.push(m.body);
            }
        }
        all
    });
    let remaining_set: BTreeSet<String> = remaining.iter().cloned().collect();
    assert_eq!(remaining_set.len(), remaining.len(), "each remaining message once");
    let redelivered: Vec<_> = remaining_set.intersection(&acked).collect();
    assert!(redelivered.is_empty(), "acknowledged messages came back: {redelivered:?}");
    let lost: Vec<_> = sent.iter().filter(|b| !acking.contains(*b) && !remaining_set.contains(*b)).collect();
    assert!(lost.is_empty(), "{} sent messages lost, e.g. {:?}", lost.len(), lost.iter().take(5).collect::<Vec<_>>());
}
