//! lqos-lab builds a lab of network namespaces around lqosd: an Internet host, a shaper (Linux
//! bridge over two 4-queue veths, lqosd attached) and a subscriber host with N addresses. It is
//! the demo (`lqos-lab run`) and the harness of the end-to-end tests. It sends traffic only
//! between its own namespaces (198.18.0.0/15, 2001:db8::/32) and removes everything it made.
#![forbid(unsafe_code)]

pub mod cli;
pub mod forward;
pub mod lab;
pub mod netns;
pub mod traffic;

pub use lab::{Lab, LabSpec, Subscriber};
pub use netns::{LabError, Netns, is_root};

/// Finds a sibling binary of the running executable (e.g. `lqosd` next to `lqos-lab`, or in
/// the cargo target directory of a test), else `$PATH`.
pub fn find_binary(name: &str) -> std::path::PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(std::path::Path::to_path_buf);
        for _ in 0..2 {
            if let Some(d) = &dir {
                let candidate = d.join(name);
                if candidate.is_file() {
                    return candidate;
                }
                dir = d.parent().map(std::path::Path::to_path_buf);
            }
        }
    }
    std::path::PathBuf::from(name)
}
