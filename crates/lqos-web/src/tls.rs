//! HTTPS: the rustls configuration from `[web] tls_cert` / `tls_key`, or from a self-signed
//! certificate made on first start and kept in `<state_directory>/web/` (`tls-cert.pem`,
//! `tls-key.pem` mode 0600), so the GUI is never served in clear text unless the operator
//! sets `[web] tls = "off"`. The certificate's SHA-256 fingerprint is logged at every start so
//! an operator can check what the browser shows before accepting it.
//!
//! Only TLS 1.2 and 1.3 with rustls's safe defaults (ring provider), HTTP/1.1 by ALPN.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// File name of the generated certificate inside `<state_directory>/web`.
pub const GENERATED_CERT: &str = "tls-cert.pem";
/// File name of the generated key inside `<state_directory>/web`.
pub const GENERATED_KEY: &str = "tls-key.pem";

/// Why HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The generated certificate could not be stored.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not make a certificate.
    #[error("cannot generate a self-signed certificate: {message}")]
    Generate {
        /// rcgen's error.
        message: String,
    },
    /// rustls refused the certificate or key.
    #[error("certificate and key do not make a TLS configuration")]
    Config {
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
}

/// A ready HTTPS configuration.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// For [`crate::server::serve_with`].
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// Where the certificate is.
    pub cert_path: PathBuf,
    /// True when this start generated it.
    pub generated: bool,
}

/// `AB:CD:…` SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |what: String| TlsError::Pem { path: path.to_owned(), what };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::Pem { path: path.to_owned(), what: e.to_string() })
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config { source })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Config { source })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes `bytes` to `path` atomically with `mode`, through a temp file created exclusively.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write { path: path.to_owned(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.{}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id(),
        hex::encode(rand::random::<[u8; 6]>())
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    let result = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| {
        drop(f);
        std::fs::rename(&tmp, path)
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// The HTTPS configuration: `cert` + `key` when configured; otherwise the certificate in
/// `<state_dir>/web`, generated there for `names` (DNS names and IP literals) when missing.
pub fn load_or_generate(
    cert: Option<&Path>,
    key: Option<&Path>,
    state_dir: &Path,
    names: &[String],
) -> Result<TlsSetup, TlsError> {
    if let (Some(cert), Some(key)) = (cert, key) {
        let certs = read_certs(cert)?;
        let fp = fingerprint(&certs[0]);
        return Ok(TlsSetup {
            config: server_config(certs, read_key(key)?)?,
            fingerprint: fp,
            cert_path: cert.to_owned(),
            generated: false,
        });
    }
    let dir = state_dir.join("web");
    let (cert_path, key_path) = (dir.join(GENERATED_CERT), dir.join(GENERATED_KEY));
    let mut generated = false;
    if !(cert_path.exists() && key_path.exists()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| TlsError::Write { path: dir.clone(), source })?;
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| TlsError::Generate { message: e.to_string() })?;
        write_new(&key_path, made.key_pair.serialize_pem().as_bytes(), 0o600)?;
        write_new(&cert_path, made.cert.pem().as_bytes(), 0o644)?;
        generated = true;
    }
    let certs = read_certs(&cert_path)?;
    let fp = fingerprint(&certs[0]);
    Ok(TlsSetup {
        config: server_config(certs, read_key(&key_path)?)?,
        fingerprint: fp,
        cert_path,
        generated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_certificate_is_made_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = load_or_generate(None, None, dir.path(), &names).expect("generate");
        assert!(first.generated);
        let key = dir.path().join("web").join(GENERATED_KEY);
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1, "{}", first.fingerprint);
        let again = load_or_generate(None, None, dir.path(), &names).expect("reuse");
        assert!(!again.generated);
        assert_eq!(again.fingerprint, first.fingerprint);
        // Configured files are used as they are.
        let configured =
            load_or_generate(Some(&first.cert_path), Some(&key), Path::new("/nonexistent"), &[])
                .expect("configured");
        assert_eq!(configured.fingerprint, first.fingerprint);
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("cert.pem");
        std::fs::write(&bad, "not a certificate").expect("write");
        let err = load_or_generate(Some(&bad), Some(&bad), dir.path(), &[]).expect_err("bad");
        assert!(err.to_string().contains("cert.pem"), "{err}");
    }
}
