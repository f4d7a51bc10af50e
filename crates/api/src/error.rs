//! The API's errors: an HTTP status and Docker's body, `{"message": "..."}`.

use hyper::StatusCode;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// Docker's error body.
    pub fn body(&self) -> String {
        serde_json::json!({ "message": self.message }).to_string()
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(e: berth_engine::Error) -> ApiError {
        use berth_engine::{Error, ErrorKind};
        // Docker's wording, which clients match on.
        if let Error::NoSuchContainer(c) = &e {
            return ApiError::not_found(format!("No such container: {c}"));
        }
        if let Error::Store(s) = e {
            return s.into();
        }
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::InvalidArgument | ErrorKind::InvalidImage => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<berth_engine::images::StoreError> for ApiError {
    fn from(e: berth_engine::images::StoreError) -> ApiError {
        use berth_engine::images::StoreError as S;
        let status = match &e {
            S::InUse(_) => StatusCode::CONFLICT,
            S::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            _ => match e.exit_code() {
                2 => StatusCode::BAD_REQUEST,
                3 => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        };
        ApiError::new(status, e.to_string())
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_dockers_statuses_and_words() {
        let e: ApiError = berth_engine::Error::NoSuchContainer("web".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.body(), r#"{"message":"No such container: web"}"#);
        let e: ApiError = berth_engine::Error::NameInUse("web".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        let e: ApiError = berth_engine::Error::Option {
            option: "--memory".into(),
            msg: "bad".into(),
        }
        .into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e: ApiError =
            berth_engine::images::StoreError::UnknownImage("nosuch:latest".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }
}
