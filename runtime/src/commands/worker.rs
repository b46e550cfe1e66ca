//! `weft worker`: one replica of one group, driven by a manager.

use crate::deploy::worker::Worker;
use crate::rpc::auth::Token;
use anyhow::Context as _;
use std::net::SocketAddr;
use tokio::io::AsyncReadExt as _;

/// Host one replica of one group for a manager (`weft deploy` starts these).
/// The first line of standard input is the deployment's token.
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
        let token = read_token().await.with_context(|| {
            format!(
                "worker {}: the first line of standard input must be the deployment's token \
                 (the manager writes it there)",
                self.name
            )
        })?;
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
        let worker = Worker::new(&self.name, token);
        worker.serve(socket, shutdown).await?;
        say!("weft worker {}: stopped", self.name);
        Ok(())
    }
}

/// The token on the first line of standard input.
async fn read_token() -> anyhow::Result<Token> {
    let mut line = Vec::new();
    let mut stdin = tokio::io::stdin();
    let mut byte = [0u8; 1];
    // Byte by byte: nothing past the line may be taken from the pipe, whose
    // end later tells the worker that its manager is gone.
    while line.len() <= 128 && stdin.read(&mut byte).await? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    Token::parse(&String::from_utf8_lossy(&line)).context("no token was given")
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
