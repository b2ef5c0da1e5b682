//! Forwards a TCP port of the host namespace into a lab namespace (the GUI on :9123).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use crate::netns::LabError;

/// Listens on `listen` in the current namespace; every connection is joined to `target`
/// as seen from inside the namespace at `ns_path`. Runs until the process exits.
pub fn forward_into_netns(
    listen: SocketAddr,
    ns_path: &Path,
    target: SocketAddr,
) -> Result<(), LabError> {
    let listener =
        TcpListener::bind(listen).map_err(|e| LabError::Other(format!("bind {listen}: {e}")))?;
    let ns = File::open(ns_path)
        .map_err(|e| LabError::Other(format!("open {}: {e}", ns_path.display())))?;
    // One thread lives inside the namespace and opens the inner connections: a socket stays
    // bound to the namespace it was created in.
    let (req_tx, req_rx) = mpsc::channel::<mpsc::Sender<io::Result<TcpStream>>>();
    thread::Builder::new()
        .name("netns-connector".into())
        .spawn(move || {
            if let Err(e) = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET) {
                tracing::error!(error = %e, "setns failed");
                return;
            }
            for reply in req_rx {
                let _ = reply.send(TcpStream::connect(target));
            }
        })
        .map_err(|e| LabError::Other(e.to_string()))?;
    thread::Builder::new()
        .name("forwarder".into())
        .spawn(move || {
            for outer in listener.incoming().flatten() {
                let (tx, rx) = mpsc::channel();
                if req_tx.send(tx).is_err() {
                    break;
                }
                let Ok(Ok(inner)) = rx.recv() else { continue };
                pipe(outer, inner);
            }
        })
        .map_err(|e| LabError::Other(e.to_string()))?;
    Ok(())
}

fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else { return };
    let (mut a, mut b) = (a, b);
    thread::spawn(move || {
        let _ = io::copy(&mut a, &mut b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    thread::spawn(move || {
        let _ = io::copy(&mut b, &mut a2);
        let _ = a2.shutdown(std::net::Shutdown::Write);
    });
}
