//! [`HttpError`]: an [`ApiError`] as an HTTP response, `{"error": code, "message": text}`
//! with the kind's one status, and `Retry-After` on the kinds worth retrying.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use stockade_wire::{ApiError, Code, ErrorKind};

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
        if self.0.kind == ErrorKind::Unauthorized {
            // RFC 6750: say which scheme would be accepted.
            response.insert_header(("WWW-Authenticate", "Bearer realm=\"stockade\""));
        }
        response.json(self.0.body())
    }
}

/// Longest piece of a request (a path, a value) quoted back in an error message: enough
/// to recognise it, never the whole of a large input.
pub const MAX_ECHO_CHARS: usize = 80;

/// `text`, cut to [`MAX_ECHO_CHARS`] characters (with `…` when cut), control characters
/// escaped, for quoting a client's input in a message.
pub fn echo(text: &str) -> String {
    echo_up_to(text, MAX_ECHO_CHARS)
}

/// As [`echo`], cut at `max` characters.
pub fn echo_up_to(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

pub type Result<T, E = HttpError> = std::result::Result<T, E>;

/// A JSON 404 for paths that name nothing.
pub async fn no_route(req: actix_web::HttpRequest) -> HttpResponse {
    HttpError(ApiError::new(
        ErrorKind::NotFound,
        Code::NoRoute,
        format!("no endpoint at {} (see docs/api.md)", echo(req.path())),
    ))
    .error_response()
}

/// A JSON 405 for a known path called with the wrong method; `allow` lists those it takes.
pub async fn wrong_method(req: actix_web::HttpRequest, allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header(("Allow", allow))
        .json(
            ApiError::new(
                ErrorKind::BadRequest,
                Code::MethodNotAllowed,
                format!(
                    "{} takes {allow}, not {}",
                    echo(req.path()),
                    echo(req.method().as_str())
                ),
            )
            .body(),
        )
}
