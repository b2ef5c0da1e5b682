//! The `/api/v1` route list and the OpenAPI document generated from the handlers.
//!
//! * [`ApiRoutes`] is the one list of `/api/v1` routes: `api::routes()` builds the router from
//!   it, and [`crate::api_paths`] hands its paths to the coverage test, which checks every path
//!   and method against the document and the document against the list.
//! * [`ApiDoc`] is the document: `utoipa` reads each handler's `#[utoipa::path]` (method,
//!   path, parameters, body and answers) and the `ToSchema` derives of the types — the bus
//!   types carry theirs behind lqos-bus's `openapi` feature, so their doc comments are the
//!   schema descriptions and nothing is copied by hand. **A new handler is added to the
//!   document by adding it to the `paths(...)` list below**; the coverage test fails until it
//!   is.
//! * [`Conventions`] adds what every operation shares: the session and CSRF security
//!   schemes (public paths are taken from [`crate::auth::is_public_api`]), a 401 answer on
//!   every non-public operation and the common error body as the default answer.
//! * `GET /api/v1/openapi.json` serves the document; `/api-docs` is the embedded browser
//!   (`web/api-docs.html` + `web/api-docs.js`, no CDN).

use axum::Json;
use axum::Router;
use axum::routing::MethodRouter;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder, Server};
use utoipa::{Modify, OpenApi};

use super::WebState;

/// The `/api/v1` routes as one list: the router is built from it and the coverage test
/// reads its paths. Modules return one of these instead of a bare `Router`.
pub(crate) struct ApiRoutes {
    router: Router<WebState>,
    paths: Vec<&'static str>,
}

impl ApiRoutes {
    pub(crate) fn new() -> Self {
        ApiRoutes { router: Router::new(), paths: Vec::new() }
    }

    /// Adds `path` (relative to `/api/v1`) served by `methods`.
    pub(crate) fn route(mut self, path: &'static str, methods: MethodRouter<WebState>) -> Self {
        self.router = self.router.route(path, methods);
        if !self.paths.contains(&path) {
            self.paths.push(path);
        }
        self
    }

    /// Adds every route of `other`. A bare `Router` is accepted so that a module written
    /// against plain axum still serves, but its paths are not in the list: the coverage tests
    /// (`tests/it/openapi.rs`) then name them until the module returns `ApiRoutes`.
    pub(crate) fn merge(mut self, other: impl Into<ApiRoutes>) -> Self {
        let other = other.into();
        self.router = self.router.merge(other.router);
        for p in other.paths {
            if !self.paths.contains(&p) {
                self.paths.push(p);
            }
        }
        self
    }

    /// The paths, in the order they were added.
    pub(crate) fn paths(&self) -> &[&'static str] {
        &self.paths
    }

    pub(crate) fn into_router(self) -> Router<WebState> {
        self.router
    }
}

impl From<Router<WebState>> for ApiRoutes {
    /// Routes whose paths are unknown (see [`ApiRoutes::merge`]).
    fn from(router: Router<WebState>) -> Self {
        ApiRoutes { router, paths: Vec::new() }
    }
}

/// The OpenAPI document of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "lqos web API",
        version = "1",
        description = "lqos_web's REST API. Log in with `POST /login` (session cookie); every \
            POST/PUT/DELETE except login and setup also needs the header `X-CSRF-Token` (from \
            `GET /session`) and, when the browser sends one, a same-origin `Origin`. Errors \
            are `{error, message, errors?: [{field, message}], diagnostics?}`. Live updates: \
            `GET /events` (Server-Sent Events, event `tick` every second with `{status, top, \
            error}`). Prometheus metrics are at `/metrics`, outside `/api/v1`. Browse this \
            document at `/api-docs`."
    ),
    servers((url = "/api/v1")),
    modifiers(&Conventions),
    // Schemas only reached through query parameters (utoipa collects the others itself).
    components(schemas(super::api::SortKey, super::api::Order, lqos_bus::HistoryRange,
        lqos_bus::WorstBy, lqos_bus::WorstKind, lqos_bus::QoeWindow)),
    paths(
        super::api::health,
        super::api::openapi_json,
        super::api::session,
        super::api::login,
        super::api::logout,
        super::api::setup_status,
        super::api::setup,
        super::api::status,
        super::api::circuits,
        super::api::circuit,
        super::api::circuit_flows,
        super::api::top,
        super::api::nodes,
        super::api::node,
        super::api::scheduler,
        super::api::reload,
        super::api::dry_run,
        super::api::events,
        super::editor::list,
        super::editor::one,
        super::editor::create,
        super::editor::update,
        super::editor::remove,
        super::editor::config_view,
        super::editor::config_update,
        super::history::circuit_history,
        super::history::node_history,
        super::circuit::circuit_queue,
        super::insight::worst,
        super::insight::distribution,
        super::insight::unknown,
        super::useradmin::list,
        super::useradmin::create,
        super::useradmin::remove,
        super::useradmin::set_role,
        super::useradmin::set_password,
    ),
    tags(
        (name = "meta", description = "Health and this document"),
        (name = "session", description = "Login, logout, first-run setup"),
        (name = "live", description = "Current numbers from lqosd"),
        (name = "history", description = "Stored history (lqosd's history store)"),
        (name = "insight", description = "Who is suffering: worst-first rankings, latency distribution, unknown addresses"),
        (name = "reload", description = "Scheduler state, reload and dry run (admin)"),
        (name = "editor", description = "ShapedDevices.csv editor and lqos.conf view (writes: admin)"),
        (name = "users", description = "Web users (admin)"),
    )
)]
pub struct ApiDoc;

/// What every operation shares (see the module doc).
pub struct Conventions;

/// Name of the session cookie security scheme.
const SESSION: &str = "session";
/// Name of the CSRF header security scheme.
const CSRF: &str = "csrf";

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SECURE_COOKIE_NAME,
                "Session cookie from POST /login (`lqos_session` over plain HTTP)",
            ))),
        );
        components.add_security_scheme(
            CSRF,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The `csrf` of GET /session; required on every write",
            ))),
        );
        let error = RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"));
        let default = ResponseBuilder::new()
            .description("Any other error: 400 bad input, 5xx lqosd unreachable or failing")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new().schema(Some(error.clone())).build(),
            )
            .build();
        let unauthorized = ResponseBuilder::new()
            .description("No valid session")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new().schema(Some(error)).build(),
            )
            .build();
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = crate::auth::is_public_api(&format!("/api/v1{path}"));
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.delete, true),
                (&mut item.patch, true),
            ];
            for (op, write) in ops {
                let Some(op) = op.as_mut() else { continue };
                op.responses.responses.entry("default".into()).or_insert(default.clone().into());
                if public {
                    op.security = Some(vec![SecurityRequirement::default()]);
                    continue;
                }
                op.responses.responses.entry("401".into()).or_insert(unauthorized.clone().into());
                let mut req = SecurityRequirement::new(SESSION, Vec::<String>::new());
                if write {
                    req = req.add(CSRF, Vec::<String>::new());
                }
                op.security = Some(vec![req]);
            }
        }
        doc.servers = Some(vec![Server::new("/api/v1")]);
    }
}

/// The document as JSON (built once).
pub(crate) fn document() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or(serde_json::Value::Null))
}

/// `GET /openapi.json` body.
pub(crate) fn json() -> Json<&'static serde_json::Value> {
    Json(document())
}
