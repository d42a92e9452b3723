//! [`HttpError`]: an [`ApiError`] as an HTTP response, `{"error": code, "message": text}`
//! with the kind's one status, and `Retry-After` on the kinds worth retrying.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use stockade_wire::{ApiError, ErrorKind};

#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<ApiError>> From<E> for HttpError {
    fn from(e: E) -> Self {
        HttpError(e.into())
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.kind.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.0.kind.retryable() {
            response.insert_header(("Retry-After", "1"));
        }
        response.json(self.0.body())
    }
}

pub type Result<T, E = HttpError> = std::result::Result<T, E>;

/// A JSON 404 for paths that name nothing.
pub async fn no_route(req: actix_web::HttpRequest) -> HttpResponse {
    HttpError(ApiError::new(
        ErrorKind::NotFound,
        "no_route",
        format!("no endpoint at {} (see docs/api.md)", req.path()),
    ))
    .error_response()
}

/// A JSON 405 for a known path called with the wrong method.
pub async fn wrong_method(req: actix_web::HttpRequest) -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(
        ApiError::new(
            ErrorKind::BadRequest,
            "method_not_allowed",
            format!("{} does not take {}", req.path(), req.method()),
        )
        .body(),
    )
}
