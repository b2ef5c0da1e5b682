//! Shaped devices editor and configuration view (pending lqos-config's parsers).

use axum::Router;

use super::WebState;

pub(crate) fn routes() -> Router<WebState> {
    Router::new()
}
