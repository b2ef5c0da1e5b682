//! User management for admins (`/api/v1/users`): list, create, delete, change role, reset
//! password — what `lqusers` does, from the GUI. Rules:
//!
//! * Admins only: a viewer gets 403, no session 401 (the guard), every write needs the CSRF
//!   token and a same-origin `Origin` like the rest of the API ([`crate::auth`]).
//! * The users file is re-read, changed and written under its lock in one step
//!   ([`crate::users::UserStore::update`]), so an `lqusers` edit made meanwhile is kept; the
//!   file keeps its owner and mode 0600.
//! * No change may leave the file without an admin (deleting or demoting the last one is
//!   409).
//! * Deleting a user, resetting their password or changing their role ends every session of
//!   that user with this answer (sessions are bound to the password hash and role).
//! * Username and password rules are the store's, the same as `lqusers`.
//! * Writes are counted per client and per acting admin ([`crate::auth::ADMIN_WRITE_LIMITS`],
//!   429 beyond) and Argon2 runs on the login's bounded hashing pool.
//! * No answer and no log line carries a password or a hash: answers are [`UserView`]s.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use super::auth::{Admin, ClientAddr};
use super::openapi::ApiRoutes;
use super::users::{Role, UsersError};
use super::{ApiError, FieldError, WebState};

/// Largest request body of these routes (a username, a role and a password fit easily).
const MAX_BODY: usize = 16 * 1024;

pub(crate) fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route("/users", get(list).post(create).layer(DefaultBodyLimit::max(MAX_BODY)))
        .route("/users/{username}", axum::routing::delete(remove))
        .route("/users/{username}/role", put(set_role).layer(DefaultBodyLimit::max(MAX_BODY)))
        .route(
            "/users/{username}/password",
            put(set_password).layer(DefaultBodyLimit::max(MAX_BODY)),
        )
}

/// One user as the API shows it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
}

/// A new user.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    /// Login name: 1-64 letters, digits, `.`, `_`, `-` or `@`.
    pub username: String,
    /// `admin` or `read_only` (`read-only` is accepted too).
    #[schema(value_type = Role)]
    pub role: String,
    /// Initial password, at least 8 characters.
    #[schema(format = Password)]
    pub password: String,
}

/// A role change.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RoleChange {
    /// `admin` or `read_only`.
    #[schema(value_type = Role)]
    pub role: String,
}

/// A password reset.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PasswordReset {
    /// The new password, at least 8 characters.
    #[schema(format = Password)]
    pub password: String,
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    Role::parse(role).ok_or_else(|| ApiError::Validation {
        errors: vec![FieldError::new("role", "must be admin or read_only")],
        diagnostics: vec![],
    })
}

fn view(store: &super::users::UserStore, username: &str) -> Result<UserView, UsersError> {
    store
        .get(username)
        .map(|u| UserView { username: u.username.clone(), role: u.role })
        .ok_or_else(|| UsersError::NoSuchUser { username: username.into() })
}

/// Every user with their role, in file order.
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, description = "Users and roles (never passwords or hashes)", body = [UserView]),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody)))]
async fn list(State(state): State<WebState>, Admin(_): Admin) -> Json<Vec<UserView>> {
    let users = state.auth().with_users(|s| {
        s.users().iter().map(|u| UserView { username: u.username.clone(), role: u.role }).collect()
    });
    Json(users)
}

/// Creates a user with an initial password.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, description = "Created", body = UserView),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 409, description = "The user exists already", body = super::error::ErrorBody),
        (status = 422, description = "Username or password breaks the rules (field errors)", body = super::error::ErrorBody),
        (status = 429, description = "Too many changes, or the hashing pool is busy", body = super::error::ErrorBody)))]
async fn create(
    State(state): State<WebState>,
    Admin(who): Admin,
    ClientAddr(client): ClientAddr,
    b: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let b = super::api::body(b)?;
    let role = parse_role(&b.role)?;
    let (name, password) = (b.username, b.password);
    let created = state
        .auth()
        .change_users(&client, &who.username, move |store| {
            store.add(&name, &password, role)?;
            view(store, &name)
        })
        .await?;
    tracing::info!(admin = %who.username, user = ?created.username, role = role.as_str(), "web user created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// Deletes a user and ends their sessions. The last admin cannot be deleted.
#[utoipa::path(delete, path = "/users/{username}", tag = "users",
    params(("username" = String, Path, description = "Login name")),
    responses((status = 200, description = "Deleted: the user as it was", body = UserView),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 404, description = "No such user", body = super::error::ErrorBody),
        (status = 409, description = "The last admin", body = super::error::ErrorBody),
        (status = 429, description = "Too many changes", body = super::error::ErrorBody)))]
async fn remove(
    State(state): State<WebState>,
    Admin(who): Admin,
    ClientAddr(client): ClientAddr,
    Path(username): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let name = username.clone();
    let removed = state
        .auth()
        .change_users(&client, &who.username, move |store| {
            let before = view(store, &name)?;
            store.remove(&name)?;
            store.require_admin(&name)?;
            Ok(before)
        })
        .await?;
    tracing::info!(admin = %who.username, user = ?username, "web user deleted; their sessions ended");
    Ok(Json(removed))
}

/// Changes a user's role and ends their sessions. The last admin cannot be demoted.
#[utoipa::path(put, path = "/users/{username}/role", tag = "users", request_body = RoleChange,
    params(("username" = String, Path, description = "Login name")),
    responses((status = 200, description = "Changed (unchanged when it was that role already)", body = UserView),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 404, description = "No such user", body = super::error::ErrorBody),
        (status = 409, description = "The last admin", body = super::error::ErrorBody),
        (status = 422, description = "Unknown role", body = super::error::ErrorBody),
        (status = 429, description = "Too many changes", body = super::error::ErrorBody)))]
async fn set_role(
    State(state): State<WebState>,
    Admin(who): Admin,
    ClientAddr(client): ClientAddr,
    Path(username): Path<String>,
    b: Result<Json<RoleChange>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    let role = parse_role(&super::api::body(b)?.role)?;
    let name = username.clone();
    let changed = state
        .auth()
        .change_users(&client, &who.username, move |store| {
            store.set_role(&name, role)?;
            store.require_admin(&name)?;
            view(store, &name)
        })
        .await?;
    tracing::info!(admin = %who.username, user = ?username, role = role.as_str(), "web user role changed; their sessions ended");
    Ok(Json(changed))
}

/// Sets a new password and ends the user's sessions.
#[utoipa::path(put, path = "/users/{username}/password", tag = "users", request_body = PasswordReset,
    params(("username" = String, Path, description = "Login name")),
    responses((status = 200, description = "Password replaced", body = UserView),
        (status = 403, description = "Not an admin", body = super::error::ErrorBody),
        (status = 404, description = "No such user", body = super::error::ErrorBody),
        (status = 422, description = "Password too short (field error)", body = super::error::ErrorBody),
        (status = 429, description = "Too many changes, or the hashing pool is busy", body = super::error::ErrorBody)))]
async fn set_password(
    State(state): State<WebState>,
    Admin(who): Admin,
    ClientAddr(client): ClientAddr,
    Path(username): Path<String>,
    b: Result<Json<PasswordReset>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    let password = super::api::body(b)?.password;
    let name = username.clone();
    let changed = state
        .auth()
        .change_users(&client, &who.username, move |store| {
            store.set_password(&name, &password)?;
            view(store, &name)
        })
        .await?;
    tracing::info!(admin = %who.username, user = ?username, "web user password reset; their sessions ended");
    Ok(Json(changed))
}
