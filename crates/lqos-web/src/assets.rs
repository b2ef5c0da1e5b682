//! The GUI: plain HTML/CSS/JS from the workspace's `web/` directory, embedded in the binary
//! (no CDN, no build step). Pages need no session themselves; the data they load does.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::WebState;

macro_rules! asset {
    ($file:literal, $mime:literal) => {
        get(|| async {
            (
                [(header::CONTENT_TYPE, $mime), (header::CACHE_CONTROL, "no-cache")],
                include_str!(concat!("../../../web/", $file)),
            )
        })
    };
}

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/app") }))
        .route("/app", asset!("index.html", "text/html; charset=utf-8"))
        .route("/login", asset!("login.html", "text/html; charset=utf-8"))
        .route("/setup", asset!("setup.html", "text/html; charset=utf-8"))
        .route("/static/dom.js", asset!("dom.js", "text/javascript; charset=utf-8"))
        .route("/static/app.js", asset!("app.js", "text/javascript; charset=utf-8"))
        .route("/static/login.js", asset!("login.js", "text/javascript; charset=utf-8"))
        .route("/static/chart.js", asset!("chart.js", "text/javascript; charset=utf-8"))
        .route("/static/history.js", asset!("history.js", "text/javascript; charset=utf-8"))
        .route("/static/insight.js", asset!("insight.js", "text/javascript; charset=utf-8"))
        .route("/static/circuit.js", asset!("circuit.js", "text/javascript; charset=utf-8"))
        .route("/static/style.css", asset!("style.css", "text/css; charset=utf-8"))
        .route("/favicon.svg", asset!("favicon.svg", "image/svg+xml"))
        .route("/favicon.ico", get(|| async { Redirect::permanent("/favicon.svg") }))
        .route("/static/users.js", asset!("users.js", "text/javascript; charset=utf-8"))
        .route("/api-docs", asset!("api-docs.html", "text/html; charset=utf-8"))
        .route("/static/api-docs.js", asset!("api-docs.js", "text/javascript; charset=utf-8"))
}

/// Content-Security-Policy and friends on every answer; `no-store` on API answers.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
