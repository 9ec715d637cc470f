//! Running the `imagelake` binary as a client: a clean environment, a time limit, and
//! what it printed.

use super::Server;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one run of the binary did.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// The binary with a clean environment: no IMAGELAKE_* of the caller, an empty HOME (so
/// that no real profile file is read, and resume state goes under it), no backtraces in
/// error messages.
pub fn client(home: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_imagelake"));
    for (k, _) in std::env::vars() {
        if k.starts_with("IMAGELAKE_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    c.stdin(std::process::Stdio::null());
    c
}

pub async fn run(mut c: tokio::process::Command) -> Run {
    let out =
        tokio::time::timeout(Duration::from_secs(180), c.output()).await.expect("the client finished in time").expect("spawn");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `imagelake ARGS --url URL --key KEY`, in `cwd`.
pub async fn cli(server: &Server, key: &str, home: &Path, cwd: &Path, args: &[&str]) -> Run {
    let mut c = client(home);
    c.current_dir(cwd).args(args).args(["--url", &server.url, "--key", key]);
    run(c).await
}

pub fn write_file(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}
