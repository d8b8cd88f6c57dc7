//! `/admin/...`: the operator's API, behind `Authorization: Bearer $ZALOFLOW_ADMIN_TOKEN`
//! (compared in constant time; the API answers 403 to everything while no token is set).
//! Errors are JSON with a stable shape: `{"error": {"code": "...", "message": "..."}}`.
//!
//! The OpenAPI description is served, without a token, at `GET /admin/openapi.json` (it
//! describes the routes and holds no data). It is assembled from the handlers themselves:
//! each handler carries a `#[utoipa::path(...)]` attribute and is registered in
//! [`protected_routes`] with `routes!(...)`, which adds the route to the router and its
//! description to the document in one line. [`openapi`] then adds what every protected route
//! shares (the `bearer` security requirement and the 400/401/403/503 answers), so a new route
//! cannot be served undocumented or documented without its token check.
//!
//! Conventions a new route follows (`tests/openapi.rs` holds every route to them):
//! - extract with [`ApiPath`], [`ApiQuery`] and [`ApiJson`], so rejections have the error shape;
//! - request bodies refuse unknown members (`#[serde(deny_unknown_fields)]`, answered 422) and
//!   carry an `example`, as do path parameters: the test calls each route with the examples of
//!   the document on a seeded database (extend its `seed` with what a new example names);
//! - document the one success status and every error the handler itself returns (400 for a
//!   bad path/query/body, 401, 403 and 503 are added to every route here).

use std::sync::OnceLock;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub mod agents;
pub mod campaigns;
pub mod contacts;
pub mod contacts_sync;
pub mod forecast;
pub mod forecast_page;
pub mod forecast_runs;
pub mod handoffs;
pub mod lists;
pub mod outbox;
pub mod report_page;
pub mod rules;

pub use outbox::job_json;

/// Where the OpenAPI document is served (no token needed).
pub const OPENAPI_PATH: &str = "/admin/openapi.json";
/// The name of the security scheme in the document.
pub const SECURITY_SCHEME: &str = "bearer";

/// An admin API error with a stable JSON shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    /// English, for programs (the JSON body's `message`).
    pub message: String,
    /// The same in the staff's language, where a page shows it (not in the JSON body).
    pub words: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            words: None,
        }
    }
    /// With what a page shows staff instead of the English message.
    pub fn with_words(mut self, words: String) -> Self {
        self.words = Some(words);
        self
    }
    /// What a page shows staff: their words where there are some, else the message.
    pub fn for_staff(&self) -> &str {
        self.words.as_deref().unwrap_or(&self.message)
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// Well-formed JSON whose values are not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if let crate::store::StoreError::Invalid(m) = &e {
            return ApiError::invalid(m.clone());
        }
        tracing::error!(error = %e, "admin API storage error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the database is unavailable",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                diagnostics: None,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::invalid(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("bad_json", e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
                "bad_content_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            other => ApiError::new(other.status(), "bad_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("bad_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("bad_query", r.body_text())
    }
}

/// `axum::Json` whose rejections answer in the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` whose rejections answer in the API's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` whose rejections answer in the API's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unauthorized`, `not_found`, `invalid`, `bad_query`…
    #[schema(example = "not_found")]
    pub code: String,
    /// For a person to read.
    #[schema(example = "no contact 8012345678901234567")]
    pub message: String,
    /// Only on `rules_invalid`: every problem of the rule files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<rules::DiagnosticView>>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "zaloflow admin API",
        description = "Operate a zaloflow service: contacts (search, timeline, edit, erase), \
contact lists, the outbox and its dead letters, the running rules, and handoffs to people. Every route but this \
document needs `Authorization: Bearer $ZALOFLOW_ADMIN_TOKEN`; the API answers 403 while no \
token is configured. Times are milliseconds since the Unix epoch. Errors are \
`{\"error\": {\"code\", \"message\"}}`.",
        license(name = "MIT")
    ),
    tags(
        (name = "contacts", description = "People the OA knows: search, timeline, edit, erase"),
        (name = "lists", description = "Contact lists and their members"),
        (name = "outbox", description = "Outbound jobs and dead letters"),
        (name = "rules", description = "The running rules: list, check a draft, reload"),
        (name = "handoffs", description = "VIP handoffs to people: list with deadlines met or missed, claim, resolve"),
        (name = "report", description = "Effectiveness per rule, campaign step and A/B variant"),
        (name = "campaigns", description = "Campaigns' members per step: see, take out, move"),
        (name = "agents", description = "Agents' accounts: create, list, disable, enable, new password, end their sessions"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// Every protected admin route, each with its description. To add one: give the handler a
/// `#[utoipa::path(...)]` attribute and add a `.routes(routes!(module::handler))` line here
/// (handlers of one path, e.g. GET and PATCH, go in the same `routes!`).
pub fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(contacts::search))
        .routes(routes!(contacts_sync::state, contacts_sync::start))
        .routes(routes!(contacts::show, contacts::edit, contacts::erase))
        .routes(routes!(lists::all))
        .routes(routes!(lists::members, lists::add_members))
        .routes(routes!(lists::remove_member))
        .routes(routes!(outbox::list))
        .routes(routes!(outbox::show))
        .routes(routes!(outbox::retry))
        .routes(routes!(rules::list))
        .routes(routes!(rules::check))
        .routes(routes!(rules::reload))
        .routes(routes!(forecast::forecast))
        .routes(routes!(forecast_runs::start))
        .routes(routes!(forecast_runs::show))
        .routes(routes!(handoffs::list))
        .routes(routes!(handoffs::show))
        .routes(routes!(handoffs::claim))
        .routes(routes!(handoffs::resolve))
        .routes(routes!(report_page::report))
        .routes(routes!(campaigns::all))
        .routes(routes!(campaigns::members))
        .routes(routes!(campaigns::leave))
        .routes(routes!(campaigns::move_to))
        .routes(routes!(agents::list, agents::create))
        .routes(routes!(agents::disable))
        .routes(routes!(agents::revoke))
        .routes(routes!(agents::enable))
        .routes(routes!(agents::password))
}

pub fn router(state: AppState) -> Router<AppState> {
    let (protected, _) = protected_routes().split_for_parts();
    protected
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
        .route(OPENAPI_PATH, get(openapi_json))
        // The page signs in by cookie as well as by bearer token (it checks access itself).
        .route(report_page::PAGE_PATH, get(report_page::report_page))
        .route(
            forecast_page::PAGE_PATH,
            get(forecast_page::page).post(forecast_page::run),
        )
}

/// The whole OpenAPI document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = protected_routes().split_for_parts();
    add_shared_answers(&mut api);
    let (_, public) = OpenApiRouter::<AppState>::new()
        .routes(routes!(openapi_json))
        .split_for_parts();
    api.merge(public);
    api
}

/// The security requirement and the answers every protected route shares.
fn add_shared_answers(api: &mut utoipa::openapi::OpenApi) {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build()
    };
    let components = api
        .components
        .get_or_insert_with(utoipa::openapi::Components::new);
    components.security_schemes.insert(
        SECURITY_SCHEME.into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("the value of ZALOFLOW_ADMIN_TOKEN"))
                .build(),
        ),
    );
    let shared = [
        ("400", "BadRequest", "Malformed request: a path, query or body that does not parse (`bad_path`, `bad_query`, `bad_json`, `bad_content_type`)"),
        ("401", "Unauthorized", "Missing or wrong bearer token (`unauthorized`)"),
        ("403", "AdminDisabled", "The admin API is disabled: ZALOFLOW_ADMIN_TOKEN is not set (`admin_disabled`); or the request came with an agent's board session, which reaches only the board (`agent_forbidden`)"),
        ("503", "StorageUnavailable", "The database is unavailable (`storage_unavailable`)"),
    ];
    for (_, name, description) in shared {
        components
            .responses
            .insert(name.into(), RefOr::T(error(description)));
    }
    for item in api.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(vec![SecurityRequirement::new(
                SECURITY_SCHEME,
                Vec::<String>::new(),
            )]);
            let takes_input =
                op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some();
            for (status, name, _) in shared {
                if status == "400" && !takes_input {
                    continue;
                }
                op.responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| {
                        RefOr::Ref(utoipa::openapi::Ref::new(format!(
                            "#/components/responses/{name}"
                        )))
                    });
            }
        }
    }
}

/// The OpenAPI 3.1 description of this API (no token needed).
#[utoipa::path(
    get,
    path = "/admin/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], doc.clone()).into_response()
}

/// Refuses requests without the right bearer token; the API is off when no token is set.
/// The comparison takes the same time whatever the given token shares with the right one.
pub async fn require_token(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = st.config.admin_token.as_ref() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is disabled: set ZALOFLOW_ADMIN_TOKEN",
        )
        .into_response();
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token_matches(given, expected.expose()) {
        next.run(req).await
    } else {
        tracing::info!(
            path = %req.uri().path(),
            "admin API refused: missing or wrong bearer token"
        );
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
        .into_response()
    }
}

/// Constant-time comparison of digests, so neither the content nor the length of the right
/// token shows in how long a refusal takes.
fn token_matches(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.ct_eq(&b)) && !expected.is_empty()
}

/// A page size from the query: `default` when absent, refused outside 1..=`max`.
pub(crate) fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be between 1 and {max} (got {n})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret ", "s3cret"));
        assert!(!token_matches("", "s3cret"));
        assert!(!token_matches("", ""));
    }

    #[test]
    fn every_protected_route_is_documented_with_its_token() {
        let api = openapi();
        for (path, item) in &api.paths.paths {
            for op in [&item.get, &item.post, &item.patch, &item.put, &item.delete]
                .into_iter()
                .flatten()
            {
                let public = path == OPENAPI_PATH;
                assert_eq!(
                    op.responses.responses.contains_key("401"),
                    !public,
                    "{path}"
                );
            }
        }
    }
}
