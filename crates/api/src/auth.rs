//! `POST /auth` (`docker login`): the credentials checked against the
//! registry's `/v2/`, nothing stored (the client keeps them, as with
//! dockerd). Docker's answers: `{"Status":"Login Succeeded"}`, or a 401
//! whose message the docker CLI prints.
//!
//! And the credentials clients send with a request: one AuthConfig in
//! `X-Registry-Auth` (pull, push), a map of registry to AuthConfig in
//! `X-Registry-Config` (build: every login the client has, for the base
//! images' pulls). They live for the request only: never stored, never
//! logged ([`Login`] and [`RegistryConfig`] print no secret).

use crate::error::{ApiError, ApiResult};
use crate::http::{self, Resp};
use crate::server::Shared;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use std::sync::Arc;

/// Docker's AuthConfig (the fields `/auth` uses). Its `Debug` shows no
/// secret: neither the password nor the tokens.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
    pub serveraddress: String,
    pub identitytoken: String,
    pub registrytoken: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "<hidden>" };
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("serveraddress", &self.serveraddress)
            .field("identitytoken", &hidden(&self.identitytoken))
            .field("registrytoken", &hidden(&self.registrytoken))
            .finish()
    }
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

/// A username and password a client sent, as the engine's
/// `USER:PASSWORD`. Its `Debug` shows the user only.
#[derive(Clone, PartialEq)]
pub struct Login(String);

impl Login {
    /// `USER:PASSWORD`, for [`berth_engine::images::PullRequest::creds`].
    pub fn creds(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.0.split_once(':').map_or("", |(u, _)| u);
        write!(f, "Login({user:?}, <password>)")
    }
}

/// What one of Docker's AuthConfig objects gives: a login, a token
/// (which berth's registry client cannot use), or nothing.
#[derive(Debug, PartialEq)]
pub enum Given {
    Login(Login),
    Token,
    Nothing,
}

/// Reads an AuthConfig object as Go's JSON decoder does (field names in
/// any case: the Python SDK sends `Username` for a credential helper's
/// logins): `username` and `password`, else `auth` (base64 of
/// `USER:PASSWORD`, as in a client's config.json), else a token.
pub fn given(v: &serde_json::Value) -> Given {
    let Some(obj) = v.as_object() else {
        return Given::Nothing;
    };
    let field = |k: &str| {
        obj.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .and_then(|(_, x)| x.as_str())
            .unwrap_or("")
    };
    let (user, pass) = (field("username"), field("password"));
    if !user.is_empty() || !pass.is_empty() {
        return Given::Login(Login(format!("{user}:{pass}")));
    }
    let basic = crate::images::base64_decode(field("auth"))
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|b| b.contains(':'));
    if let Some(b) = basic {
        return Given::Login(Login(b));
    }
    if !field("identitytoken").is_empty() || !field("registrytoken").is_empty() {
        return Given::Token;
    }
    Given::Nothing
}

/// `X-Registry-Config`: the client's logins by registry (keys as the
/// client's config.json has them, `https://index.docker.io/v1/` or
/// `127.0.0.1:5000`, named here as berth names registries).
#[derive(Default, PartialEq)]
pub struct RegistryConfig(std::collections::BTreeMap<String, Given>);

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl RegistryConfig {
    /// Decodes the header (base64, URL-safe as the docker CLI and the
    /// Python SDK send it, or standard): a JSON object of AuthConfig
    /// objects. dockerd ignores a header it cannot decode; berth answers
    /// 400, naming the header but none of its content.
    pub fn parse(h: Option<&str>) -> ApiResult<RegistryConfig> {
        let Some(h) = h.filter(|h| !h.trim().is_empty()) else {
            return Ok(RegistryConfig::default());
        };
        let bad = |why: &str| {
            ApiError::bad_request(format!(
                "X-Registry-Config: {why}; it must be base64 of a JSON object of registry to auth config"
            ))
        };
        let raw = crate::images::base64_decode(h).ok_or_else(|| bad("not base64"))?;
        let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad("not JSON"))?;
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let mut out = std::collections::BTreeMap::new();
        for (server, conf) in obj {
            if !conf.is_object() && !conf.is_null() {
                return Err(bad("a registry's entry is not an object"));
            }
            let Ok(name) = berth_engine::images::registry_name(server.trim()) else {
                continue;
            };
            match given(conf) {
                Given::Nothing => {}
                g => {
                    // A login wins over a token for the same registry
                    // (keys that name it in two spellings).
                    if !matches!(out.get(&name), Some(Given::Login(_))) {
                        out.insert(name, g);
                    }
                }
            }
        }
        Ok(RegistryConfig(out))
    }

    /// The login the client gave for `registry` (as a reference names
    /// it: `docker.io`, `127.0.0.1:5000`); None when it gave none (the
    /// store's own login files apply then, as for any pull); an error
    /// when it gave a token only.
    pub fn login_for(&self, registry: &str) -> Result<Option<&Login>, String> {
        match self.0.get(registry) {
            Some(Given::Login(l)) => Ok(Some(l)),
            Some(Given::Token) => Err(format!(
                "the client's credentials for {registry} are an identity token, which berth's registry client does not support; log in with a username and password"
            )),
            Some(Given::Nothing) | None => Ok(None),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    /// Neither a password nor a token shows in a log line of the config.
    #[test]
    fn auth_config_debug_hides_the_secrets() {
        let c = super::AuthConfig {
            username: "u".into(),
            password: "s3cret-pw".into(),
            identitytoken: "s3cret-id".into(),
            registrytoken: "s3cret-reg".into(),
            serveraddress: "r.example".into(),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(d.contains("r.example") && d.contains("\"u\""), "{d}");
    }

    use super::*;

    fn b64url(s: &str) -> String {
        // URL-safe, padded: Go's URLEncoding.
        crate::archive::base64(s.as_bytes())
            .replace('+', "-")
            .replace('/', "_")
    }

    #[test]
    fn registry_configs_as_clients_send_them() {
        // docker 20.10's `build`: every login of its config.json.
        let h = b64url(
            r#"{"127.0.0.1:5001":{"username":"testuser","password":"p:w?>","serveraddress":"127.0.0.1:5001"},"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},"quay.io":{"identitytoken":"tok"},"empty.io":{}}"#,
        );
        let c = RegistryConfig::parse(Some(&h)).unwrap();
        assert_eq!(
            c.login_for("127.0.0.1:5001").unwrap().unwrap().creds(),
            "testuser:p:w?>"
        );
        assert_eq!(
            c.login_for("docker.io").unwrap().unwrap().creds(),
            "hub:secret"
        );
        assert!(c
            .login_for("quay.io")
            .unwrap_err()
            .contains("identity token"));
        assert_eq!(c.login_for("empty.io").unwrap(), None);
        assert_eq!(c.login_for("127.0.0.1:5000").unwrap(), None);
        // The Python SDK with a credential helper: Go's case-blind fields.
        let h = b64url(r#"{"http://localhost:5000":{"Username":"u","Password":"s3cr3t"}}"#);
        let c = RegistryConfig::parse(Some(&h)).unwrap();
        let login = c.login_for("localhost:5000").unwrap().unwrap();
        assert_eq!(login.creds(), "u:s3cr3t");
        // What is printed names the registry and the user, never the password.
        let shown = format!("{c:?} {login:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("localhost:5000") && shown.contains("\"u\""),
            "{shown}"
        );
        // None, empty: nothing given.
        assert!(RegistryConfig::parse(None).unwrap().is_empty());
        assert!(RegistryConfig::parse(Some("e30=")).unwrap().is_empty());
        assert!(RegistryConfig::parse(Some(&b64url("null"))).is_err());
        // Malformed: a 400 that repeats none of it.
        for bad in [
            "!!secret!!",
            &b64url("[1]"),
            &b64url(r#"{"r":"pw"}"#),
            &b64url("{"),
        ] {
            let e = RegistryConfig::parse(Some(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.message.starts_with("X-Registry-Config: "),
                "{}",
                e.message
            );
            assert!(
                !e.message.contains("secret") && !e.message.contains("pw"),
                "{}",
                e.message
            );
        }
    }

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
