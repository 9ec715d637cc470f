//! A TCP relay in front of a real server, that a test can take down and bring back on the
//! same port. Down: every open connection is cut and new ones are refused, which is what
//! a client sees when the server behind it stops. Up: connections reach the server again,
//! with its state intact (a restarted moto would have lost its queues, which would test
//! moto, not us).

use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Relay {
    pub addr: SocketAddr,
    target: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Relay {
    /// A relay on a free loopback port to `target` (`host:port`), up.
    pub async fn start(target: &str) -> Relay {
        let target = tokio::net::lookup_host(target).await.unwrap().next().expect("target address");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay { addr: listener.local_addr().unwrap(), target, accept: Mutex::new(None) };
        relay.serve(listener);
        relay
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every connection and refuses new ones.
    pub fn down(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Accepts again, on the same port.
    pub async fn up(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind the relay's port");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        // The accept loop owns its connections: aborting it drops (closes) all of them.
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                conns.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.down();
    }
}
