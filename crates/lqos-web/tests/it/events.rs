//! The SSE stream ends when its session does (logout, user deleted), not only at open.

use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use futures_util::StreamExt;
use lqos_web::router;
use lqos_web::users::UserStore;
use serde_json::json;
use tower::ServiceExt;

use super::{App, Client, app, login, send};

type Frames = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Send>,
>;

/// Opens `/api/v1/events` for `c` and returns its body as a stream of chunks.
async fn open(app: &App, c: &Client) -> Frames {
    let resp =
        router(app.state.clone()).oneshot(c.get("/api/v1/events")).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers()[header::CONTENT_TYPE].to_str().expect("ascii").to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    Box::pin(resp.into_body().into_data_stream())
}

/// Reads chunks until one holds a `tick` event (bounded).
async fn next_tick(frames: &mut Frames) -> String {
    let wait = async {
        loop {
            let chunk = frames.next().await.expect("stream still open").expect("chunk");
            let text = String::from_utf8_lossy(&chunk).into_owned();
            if text.contains("event: tick") {
                return text;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait).await.expect("a tick within 5 s")
}

/// Reads until the stream ends (bounded); returns how many ticks came before the end.
async fn ticks_until_end(frames: &mut Frames, limit: Duration) -> usize {
    let wait = async {
        let mut ticks = 0;
        while let Some(chunk) = frames.next().await {
            let chunk = chunk.expect("chunk");
            ticks += String::from_utf8_lossy(&chunk).matches("event: tick").count();
        }
        ticks
    };
    tokio::time::timeout(limit, wait).await.expect("the stream ends once the session is gone")
}

#[tokio::test]
async fn event_stream_ends_after_logout() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    let mut frames = open(&app, &c).await;
    let first = next_tick(&mut frames).await;
    assert!(first.contains("\"top\""), "{first}");
    next_tick(&mut frames).await;
    let r = send(&app, c.write("POST", "/api/v1/logout", &json!({}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let after = ticks_until_end(&mut frames, Duration::from_secs(4)).await;
    assert!(after <= 1, "{after} ticks after logout");
    // The logged-out cookie is dead everywhere, not only for the stream.
    assert_eq!(send(&app, c.get("/api/v1/session")).await.status, StatusCode::UNAUTHORIZED);
    // A fresh login of the same user still works and streams.
    let c2 = login(&app, "viewer", "viewer-password").await;
    let mut frames2 = open(&app, &c2).await;
    next_tick(&mut frames2).await;
}

#[tokio::test]
async fn event_stream_ends_when_the_user_is_deleted() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    let other = login(&app, "admin", "admin-password").await;
    let mut frames = open(&app, &c).await;
    let mut others = open(&app, &other).await;
    next_tick(&mut frames).await;
    let path = app.dir.path().join("lqusers.toml");
    let mut store = UserStore::load(&path).expect("users");
    store.remove("viewer").expect("remove");
    store.save().expect("save");
    // The users file is re-read at most once a second: a few ticks at most.
    let after = ticks_until_end(&mut frames, Duration::from_secs(6)).await;
    assert!(after <= 3, "{after} ticks after deletion");
    // Another user's stream is unaffected.
    next_tick(&mut others).await;
}

#[tokio::test]
async fn event_stream_ends_at_the_next_tick_when_an_admin_changes_the_users_role() {
    let app = app();
    let c = login(&app, "viewer", "viewer-password").await;
    let admin = login(&app, "admin", "admin-password").await;
    let mut frames = open(&app, &c).await;
    next_tick(&mut frames).await;
    let r = send(&app, admin.write("PUT", "/api/v1/users/viewer/role", &json!({"role": "admin"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The GUI's own write replaces the cached users: no one-second re-read delay.
    let after = ticks_until_end(&mut frames, Duration::from_secs(3)).await;
    assert!(after <= 1, "{after} ticks after the role change");
}

#[tokio::test]
async fn event_stream_needs_a_session() {
    let app = app();
    let r = send(&app, super::req("GET", "/api/v1/events").body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Opens `/api/v1/events` and returns the status (and the body stream when 200).
async fn try_open(app: &App, c: &Client) -> (StatusCode, Option<Frames>) {
    let resp =
        router(app.state.clone()).oneshot(c.get("/api/v1/events")).await.expect("infallible");
    let status = resp.status();
    let frames: Option<Frames> =
        (status == StatusCode::OK).then(|| Box::pin(resp.into_body().into_data_stream()) as Frames);
    (status, frames)
}

#[tokio::test]
async fn one_session_holds_at_most_n_streams_and_closing_one_frees_a_place() {
    let app = super::app_with(50, &[("viewer", "viewer-password", super::Role::ReadOnly)], |o| {
        o.max_streams_per_session = 3
    });
    let c = login(&app, "viewer", "viewer-password").await;
    let mut open_streams = Vec::new();
    for _ in 0..3 {
        let (status, frames) = try_open(&app, &c).await;
        assert_eq!(status, StatusCode::OK);
        open_streams.push(frames.expect("stream"));
    }
    let (status, _) = try_open(&app, &c).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "a 4th stream for the same session");
    // Another session of the same user has its own quota.
    let other = login(&app, "viewer", "viewer-password").await;
    let (status, _) = try_open(&app, &other).await;
    assert_eq!(status, StatusCode::OK);
    // A client that goes away gives its place back.
    drop(open_streams.pop());
    let (status, frames) = try_open(&app, &c).await;
    assert_eq!(status, StatusCode::OK, "place freed by the closed stream");
    next_tick(&mut frames.expect("stream")).await;
}

#[tokio::test]
async fn many_streams_share_one_tick_computed_once_a_second() {
    let app = super::app_with(50, &[("viewer", "viewer-password", super::Role::ReadOnly)], |_| {});
    let mut streams = Vec::new();
    for _ in 0..10 {
        let c = login(&app, "viewer", "viewer-password").await;
        for _ in 0..3 {
            streams.push(open(&app, &c).await);
        }
    }
    let start = tokio::time::Instant::now();
    let before = app.state.live_ticks_computed();
    // Every one of the 30 streams gets three ticks.
    for _ in 0..3 {
        for s in &mut streams {
            next_tick(s).await;
        }
    }
    let computed = app.state.live_ticks_computed() - before;
    let secs = start.elapsed().as_secs_f64();
    // One shared computation per second, not one per stream (30 streams × 3 ticks = 90).
    assert!(computed as f64 <= secs + 2.0, "{computed} ticks computed in {secs:.1} s");
    assert!(computed >= 2, "{computed}");
    // Once every stream is gone the ticking stops.
    drop(streams);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle = app.state.live_ticks_computed();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(app.state.live_ticks_computed() - idle <= 1, "ticking goes on without streams");
}
