//! The async side: accept connections on the Unix socket and forward every request to one
//! queue. The owner of the queue (lqosd's apply task) answers through a oneshot channel, so
//! requests from all clients are handled one at a time, in order.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::{BusError, Command, CommandError, Response, frame};

/// A request waiting for its answer.
#[derive(Debug)]
pub struct Request {
    /// What was asked.
    pub command: Command,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Response>,
}

/// Binds the socket at `path` (removing a stale one, creating the directory) with mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, BusError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| BusError::Io { source })?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(BusError::Io { source }),
    }
    let listener = UnixListener::bind(path)
        .map_err(|source| BusError::Connect { path: path.to_owned(), source })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|source| BusError::Io { source })?;
    Ok(listener)
}

/// Accepts connections forever, forwarding requests to `queue`.
pub async fn serve(listener: UnixListener, queue: mpsc::Sender<Request>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let queue = queue.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle_connection(stream, queue).await {
                        tracing::debug!(error = %e, "bus connection ended with an error");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "bus accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle_connection(
    mut stream: UnixStream,
    queue: mpsc::Sender<Request>,
) -> Result<(), BusError> {
    loop {
        let mut prefix = [0u8; 4];
        match stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(source) => return Err(BusError::Io { source }),
        }
        let len = frame::frame_len(prefix)?;
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await.map_err(|source| BusError::Io { source })?;
        let response = match frame::decode::<Command>(&buf) {
            Ok(command) => dispatch(&queue, command).await,
            Err(e) => Response::Error(CommandError::Internal { message: format!("{e}") }),
        };
        let bytes = frame::encode(&response)?;
        stream.write_all(&bytes).await.map_err(|source| BusError::Io { source })?;
    }
}

/// Sends one command to the queue and waits for the answer.
pub async fn dispatch(queue: &mpsc::Sender<Request>, command: Command) -> Response {
    let (reply, answer) = oneshot::channel();
    if queue.send(Request { command, reply }).await.is_err() {
        return Response::Error(CommandError::Internal {
            message: "lqosd is shutting down".into(),
        });
    }
    answer.await.unwrap_or_else(|_| {
        Response::Error(CommandError::Internal { message: "lqosd dropped the request".into() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BusClient;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_requests_reach_the_queue_and_answers_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run/bus");
        let listener = bind(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let (tx, mut rx) = mpsc::channel::<Request>(4);
        tokio::spawn(serve(listener, tx));
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                let answer = match req.command {
                    Command::Ping => Response::Pong,
                    _ => Response::Ack,
                };
                let _ = req.reply.send(answer);
            }
        });
        let path2 = path.clone();
        let answers = tokio::task::spawn_blocking(move || {
            let mut c = BusClient::connect(&path2).expect("connect");
            let a = c.request(&Command::Ping).expect("ping");
            let b = c.request(&Command::ClearTree).expect("clear");
            (a, b)
        })
        .await
        .expect("join");
        assert_eq!(answers, (Response::Pong, Response::Ack));
    }

    #[test]
    fn connect_to_missing_socket_names_the_path_and_lqosd() {
        let err = BusClient::connect(Path::new("/nonexistent/lqos/bus")).expect_err("no daemon");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/lqos/bus") && msg.contains("lqosd"), "{msg}");
    }
}
