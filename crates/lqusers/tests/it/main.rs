//! lqusers binary tests: password input without a terminal.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn lqusers(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lqusers"))
        .args(args)
        .env_remove("LQOS_USERS_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lqusers");
    // The refusing runs exit without reading: a broken pipe here is expected.
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    child.wait_with_output().expect("wait")
}

#[test]
fn without_a_terminal_it_refuses_unless_password_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lqusers.toml");
    let f = file.to_str().expect("utf-8 path");
    let out = lqusers(&["--file", f, "add", "-u", "ops", "-r", "admin"], "piped-password\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--password-stdin"), "{err}");
    assert!(!file.exists(), "nothing written");

    let out = lqusers(
        &["--file", f, "add", "-u", "ops", "-r", "admin", "--password-stdin"],
        "piped-password\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "no prompt with --password-stdin");

    let out = lqusers(&["--file", f, "passwd", "ops"], "other-password\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));

    let out = lqusers(&["--file", f, "passwd", "ops", "--password-stdin"], "other-password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = lqos_web::users::UserStore::load(&file).expect("load");
    assert!(store.verify("ops", "other-password").is_some());
}
