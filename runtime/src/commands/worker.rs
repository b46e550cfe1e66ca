//! `weft worker`: one replica of one group, driven by a manager.

use crate::deploy::worker::Worker;
use anyhow::Context as _;
use std::net::SocketAddr;
use tokio::io::AsyncReadExt as _;

/// Host one replica of one group for a manager (`weft deploy` starts these).
#[derive(Debug, clap::Args)]
pub struct WorkerCommand {
    /// The address of the worker's gRPC services.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// How the worker is named in its logs, such as back/0.
    #[arg(long, default_value = "worker")]
    pub name: String,
    /// Exit when standard input closes: the manager that started it is gone.
    #[arg(long)]
    pub exit_with_stdin: bool,
}

impl WorkerCommand {
    /// Serves until the manager says stop, SIGTERM, or (with
    /// `--exit-with-stdin`) the end of standard input.
    pub async fn execute(self) -> anyhow::Result<()> {
        let signal = super::run::shutdown_signal()?;
        let socket = tokio::net::TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("worker {}: cannot listen on {}", self.name, self.listen))?;
        let exit_with_stdin = self.exit_with_stdin;
        let shutdown = async move {
            tokio::select! {
                () = signal => {}
                () = stdin_closed(), if exit_with_stdin => {}
            }
        };
        let worker = Worker::new(&self.name);
        worker.serve(socket, shutdown).await?;
        say!("weft worker {}: stopped", self.name);
        Ok(())
    }
}

/// Resolves when standard input reaches its end or fails.
async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}
