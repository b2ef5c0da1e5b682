//! The HTTP edge: one GET with authentication, a per-request timeout and retries with
//! exponential backoff on 429, 5xx and connection failures. Everything else about a CRM is in
//! its module's pure `import`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tracing::{debug, warn};

use crate::error::{Crm, ImportError};

/// Per-request timeout unless a CRM sets its own (LibreQoS's legacy UISP importer used 60 s).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per request (the first one included), as Netzur's urllib3 `Retry(total=3)`.
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// First backoff; doubled after each retry (urllib3 `backoff_factor = 1`).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// Longest `Retry-After` that is honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Largest answer read from a CRM (256 MiB, far above any real subscriber list): a larger or
/// endless answer is refused instead of exhausting memory.
pub const MAX_ANSWER_BYTES: usize = 256 << 20;

/// Why [`read_capped`] stopped.
#[derive(Debug)]
pub enum CappedError {
    /// The answer is larger than the limit.
    TooLarge,
    /// The transfer failed.
    Http(reqwest::Error),
}

/// Reads an answer body, refusing more than `max` bytes (checked against `Content-Length`
/// first, then while streaming).
pub async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, CappedError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(CappedError::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(CappedError::Http)? {
        if out.len() + chunk.len() > max {
            return Err(CappedError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// How requests are made.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Per-request timeout (connect + answer).
    pub timeout: Duration,
    /// Attempts per request, the first included (at least 1).
    pub attempts: u32,
    /// First backoff; doubled after each retry.
    pub backoff: Duration,
    /// Largest answer accepted (default [`MAX_ANSWER_BYTES`]).
    pub max_answer_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: DEFAULT_REQUEST_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
            max_answer_bytes: MAX_ANSWER_BYTES,
        }
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// A named header (`X-Auth-Token: …`).
    Header(&'static str, &'a str),
    /// `Authorization: Basic base64(user:password)`.
    Basic(&'a str, &'a str),
    /// `Authorization: Bearer …`.
    Bearer(&'a str),
}

/// A reqwest client (rustls) bound to one CRM.
#[derive(Debug, Clone)]
pub struct Http {
    crm: Crm,
    client: reqwest::Client,
    opts: HttpOptions,
}

impl Http {
    /// Builds the client. `insecure` accepts invalid certificates (UISP `insecure_ssl`).
    pub fn new(crm: Crm, opts: &HttpOptions, insecure: bool) -> Result<Self, ImportError> {
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .danger_accept_invalid_certs(insecure)
            .user_agent(concat!("lqos_scheduler/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ImportError::Client { crm, source })?;
        Ok(Http { crm, client, opts: opts.clone() })
    }

    /// GETs `url` and parses the answer as JSON, retrying transient failures.
    pub async fn get_json(&self, url: &str, auth: Auth<'_>) -> Result<Value, ImportError> {
        let crm = self.crm;
        let attempts = self.opts.attempts.max(1);
        let mut backoff = self.opts.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= attempts;
            let mut req = self.client.get(url).header("Accept", "application/json");
            req = match auth {
                Auth::Header(name, value) => req.header(name, value),
                Auth::Basic(user, pass) => req.basic_auth(user, Some(pass)),
                Auth::Bearer(token) => req.bearer_auth(token),
            };
            debug!(crm = crm.key(), url, attempt, "GET");
            let retry_wait = match req.send().await {
                Err(source) => {
                    let err = if source.is_timeout() {
                        ImportError::Timeout {
                            crm,
                            url: url.to_string(),
                            timeout_secs: self.opts.timeout.as_secs().max(1),
                        }
                    } else {
                        ImportError::Connect { crm, url: url.to_string(), source }
                    };
                    if last {
                        return Err(err);
                    }
                    warn!(crm = crm.key(), url, attempt, error = %err, "request failed, retrying");
                    backoff
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        let bytes = read_capped(resp, self.opts.max_answer_bytes).await.map_err(
                            |e| match e {
                                CappedError::TooLarge => ImportError::TooLarge {
                                    crm,
                                    url: url.to_string(),
                                    limit_bytes: self.opts.max_answer_bytes,
                                },
                                CappedError::Http(source) if source.is_timeout() => {
                                    ImportError::Timeout {
                                        crm,
                                        url: url.to_string(),
                                        timeout_secs: self.opts.timeout.as_secs().max(1),
                                    }
                                }
                                CappedError::Http(source) => {
                                    ImportError::Connect { crm, url: url.to_string(), source }
                                }
                            },
                        )?;
                        debug!(crm = crm.key(), url, bytes = bytes.len(), "answer");
                        return serde_json::from_slice(&bytes).map_err(|source| {
                            ImportError::Malformed { crm, url: url.to_string(), source }
                        });
                    }
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        return Err(ImportError::Rejected {
                            crm,
                            url: url.to_string(),
                            status: status.as_u16(),
                        });
                    }
                    let transient =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    if !transient || last {
                        let body = resp.text().await.unwrap_or_default();
                        let mut cause: String =
                            body.split_whitespace().collect::<Vec<_>>().join(" ");
                        if cause.chars().count() > 200 {
                            cause = cause.chars().take(200).collect::<String>() + "…";
                        }
                        if transient {
                            cause = format!("gave up after {attempt} attempts; {cause}");
                        }
                        return Err(ImportError::Status {
                            crm,
                            url: url.to_string(),
                            status: status.as_u16(),
                            cause,
                        });
                    }
                    warn!(
                        crm = crm.key(),
                        url,
                        attempt,
                        status = status.as_u16(),
                        "transient HTTP status, retrying"
                    );
                    retry_after.unwrap_or(backoff)
                }
            };
            tokio::time::sleep(retry_wait).await;
            backoff = backoff.saturating_mul(2);
        }
    }
}
