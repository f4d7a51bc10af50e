//! `POST /auth` (`docker login`): the credentials checked against the
//! registry's `/v2/`, nothing stored (the client keeps them, as with
//! dockerd). Docker's answers: `{"Status":"Login Succeeded"}`, or a 401
//! whose message the docker CLI prints.

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Resp};
use crate::server::Shared;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::sync::Arc;

/// Docker's AuthConfig (the fields `/auth` uses).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
    pub serveraddress: String,
    pub identitytoken: String,
    pub registrytoken: String,
}

/// The registry of a login's server address (Docker Hub when none), and
/// whether it is reached over plain HTTP (loopback, as dockerd's default
/// insecure range).
pub fn target(server: &str) -> ApiResult<(String, bool)> {
    let server = if server.trim().is_empty() {
        "https://index.docker.io/v1/"
    } else {
        server.trim()
    };
    let name = berth_engine::images::registry_name(server)
        .map_err(|e| ApiError::bad_request(format!("auth: server address {server:?}: {e}")))?;
    let plain = crate::images::loopback_registry(&format!("{name}/x"));
    Ok((name, plain))
}

pub async fn auth(_s: &Arc<Shared>, req: Request<Incoming>) -> ApiResult<Resp> {
    let a: AuthConfig = http::read_json(req.into_body()).await?;
    if !a.identitytoken.is_empty() || !a.registrytoken.is_empty() {
        return Err(ApiError::bad_request(
            "auth: identity and registry tokens are not supported by berth's API; log in with a username and password",
        ));
    }
    if a.username.is_empty() {
        return Err(ApiError::bad_request("auth: a username is required"));
    }
    let (registry, plain) = target(&a.serveraddress)?;
    let url = format!("{}://{registry}/v2/", if plain { "http" } else { "https" });
    Shared::blocking(move || {
        berth_engine::images::check_login(&registry, &a.username, &a.password, !plain).map_err(
            |e| match e {
                berth_engine::images::StoreError::Unauthorized { .. } => ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    format!("login attempt to {url} failed with status: 401 Unauthorized"),
                ),
                e => ApiError::internal(format!("login to {registry}: {e}")),
            },
        )
    })
    .await?;
    Ok(http::json(
        &serde_json::json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_name_their_registry() {
        assert_eq!(target("").unwrap(), ("docker.io".to_string(), false));
        assert_eq!(
            target("https://index.docker.io/v1/").unwrap(),
            ("docker.io".to_string(), false)
        );
        assert_eq!(
            target("127.0.0.1:5000").unwrap(),
            ("127.0.0.1:5000".to_string(), true)
        );
        assert_eq!(
            target("http://localhost:5000").unwrap(),
            ("localhost:5000".to_string(), true)
        );
        assert_eq!(target("quay.io").unwrap(), ("quay.io".to_string(), false));
    }
}
