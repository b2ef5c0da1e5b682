//! The OpenAPI document is generated from the handlers and matches the router exactly.

use std::collections::BTreeSet;

use super::*;

async fn document(app: &App) -> Value {
    let r = send(app, req("GET", "/api/v1/openapi.json").body(Body::empty()).expect("req")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    r.body
}

/// `/users/{username}` → `/users/probe`.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') && seg.ends_with('}') { "probe" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every (path, method) of the router: each path from the one route list is asked with a
/// method no route has (TRACE) by a logged-in admin, and axum's 405 answer lists the
/// methods the path does have in `Allow`. No handler runs.
async fn router_operations(app: &App, admin: &Client) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for path in lqos_web::api_paths() {
        let probe = req("TRACE", &format!("/api/v1{}", concrete(path)))
            .header(header::COOKIE, &admin.cookie)
            .header("x-csrf-token", &admin.csrf)
            .body(Body::empty())
            .expect("req");
        let r = send(app, probe).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "TRACE {path}: {}", r.text);
        let allow = r.headers[header::ALLOW].to_str().expect("ascii").to_ascii_lowercase();
        for m in allow.split(',').map(str::trim).filter(|m| *m != "head" && !m.is_empty()) {
            ops.insert((path.to_owned(), m.to_owned()));
        }
    }
    ops
}

fn document_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in ["get", "put", "post", "delete", "patch", "options", "head", "trace"] {
            if item.get(m).is_some() {
                ops.insert((path.clone(), m.to_owned()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_route_and_method_is_in_the_document_and_the_document_has_no_other() {
    let app = app();
    let admin = login(&app, "admin", "admin-password").await;
    let doc = document(&app).await;
    let routes = router_operations(&app, &admin).await;
    let documented = document_operations(&doc);
    assert!(routes.len() >= 30, "the probe found the routes: {routes:?}");
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes without a document entry (annotate the handler with #[utoipa::path] and add \
         it to paths(...) in crates/lqos-web/src/openapi.rs): {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    for op in
        [("/users", "post"), ("/users/{username}/role", "put"), ("/circuits/{id}/history", "get")]
    {
        assert!(routes.contains(&(op.0.to_owned(), op.1.to_owned())), "{op:?}");
    }
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().expect("ref").to_owned());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_complete_and_self_contained() {
    let app = app();
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let name = r.strip_prefix("#/components/schemas/").expect("schema ref");
        assert!(schemas.contains_key(name), "dangling {r}");
    }
    // The bus types come with their doc comments as descriptions.
    let circuit = &schemas["CircuitStat"];
    assert_eq!(
        circuit["properties"]["download_bps"]["description"],
        "Current download rate, bits/s."
    );
    assert!(schemas["Role"]["enum"].as_array().expect("enum").contains(&json!("read_only")));
    assert!(schemas["HistoryRange"]["enum"].as_array().expect("enum").contains(&json!("90d")));
    // Every operation has a tag, a summary, a default error answer and the right security.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let name = format!("{method} {path}");
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{name} has no tag");
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{name}: no summary");
            assert!(op["responses"].get("default").is_some(), "{name}: no default answer");
            let security = op["security"].as_array().expect("security");
            let public = ["/login", "/setup", "/setup/status", "/health", "/openapi.json"]
                .contains(&path.as_str());
            if public {
                assert_eq!(security, &vec![json!({})], "{name} is public");
            } else {
                assert!(security[0].get("session").is_some(), "{name} needs the session");
                assert!(op["responses"].get("401").is_some(), "{name}: 401");
                let write = method != "get";
                assert_eq!(security[0].get("csrf").is_some(), write, "{name}: CSRF on writes");
            }
        }
    }
    let create = &doc["paths"]["/users"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewUser"
    );
    assert!(create["responses"].get("201").is_some());
    assert!(!serde_json::to_string(&doc).expect("json").contains("password_hash"));
}

#[tokio::test]
async fn the_api_browser_page_is_served_without_a_session_and_uses_no_cdn() {
    let app = app();
    for path in ["/api-docs", "/static/api-docs.js"] {
        let r = send(&app, req("GET", path).body(Body::empty()).expect("req")).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            !r.text.contains("http://") && !r.text.contains("https://"),
            "{path} loads nothing from elsewhere"
        );
    }
    let page = send(&app, req("GET", "/api-docs").body(Body::empty()).expect("req")).await;
    assert!(page.text.contains("/static/api-docs.js"));
    assert!(
        page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp")
            .contains("script-src 'self'")
    );
}

/// String literals after `.route(` in `text` (the path of each route added there).
fn route_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let trimmed = rest.trim_start();
        if let Some(lit) = trimmed.strip_prefix('"')
            && let Some(end) = lit.find('"')
        {
            out.push(lit[..end].to_owned());
        }
    }
    out
}

/// A module that builds its routes as a bare axum `Router` (instead of `ApiRoutes`) would
/// escape the route list, and so the probe above. Every `.route("…")` in the crate's source,
/// outside the page (`assets.rs`) and `/metrics` routers, must therefore be in the list.
#[test]
fn every_route_in_the_source_goes_through_the_route_list() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let listed = lqos_web::api_paths();
    let mut seen = 0;
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".rs") || name == "assets.rs" || name == "metrics.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        if name != "lib.rs" {
            assert!(!text.contains(".nest("), "{name}: add routes through ApiRoutes, not nest");
        }
        for lit in route_literals(&text) {
            seen += 1;
            assert!(
                listed.contains(&lit.as_str()),
                "{name}: route {lit:?} is not in the /api/v1 route list: build it with \
                 openapi::ApiRoutes and merge it in api::routes()"
            );
        }
    }
    assert!(seen >= 25, "found {seen} routes in the source");
}
