//! Bearer-token authentication for the change API.
//!
//! Two sources of verified claims, one way from claims to a [`Caller`]:
//! - on AWS, API Gateway's JWT authorizer (any OIDC provider) verifies the
//!   token and the api Lambda hands its claims over as [`VerifiedClaims`];
//! - locally, `changehub serve` verifies tokens signed with its own key
//!   ([`LocalKey`], feature `jwt`), which `changehub token` mints.
//!
//! Webhooks do not pass through here: they carry their senders' signatures.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use std::sync::Arc;

use super::error::ApiError;
use crate::config::{self, ConfigError};
use crate::domain::TenantId;
use crate::domain::access::Caller;
use crate::domain::catalog::valid_group;

/// Claims already verified by whoever checked the token's signature.
#[derive(Debug, Clone, Default)]
pub struct VerifiedClaims(pub Map<String, Value>);

/// Which claims carry the user, the groups and the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub user: String,
    pub groups: String,
    pub tenant: String,
    /// The tenant of tokens without a tenant claim (single-tenant deployments); none by default.
    pub default_tenant: Option<TenantId>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self { user: "sub".into(), groups: "groups".into(), tenant: TENANT_CLAIM.into(), default_tenant: None }
    }
}

/// The tenant claim of tokens `changehub token` mints, and the default claim name.
pub const TENANT_CLAIM: &str = "changehub_tenant";

impl ClaimNames {
    /// `CHANGEHUB_USER_CLAIM` (default `sub`), `CHANGEHUB_GROUPS_CLAIM` (default
    /// `groups`; Cognito: `cognito:groups`), `CHANGEHUB_TENANT_CLAIM` (default
    /// `changehub_tenant`), `CHANGEHUB_DEFAULT_TENANT` (unset: tokens must name their tenant).
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &'static str, default: &str| config::optional(name).unwrap_or_else(|| default.to_owned());
        let default_tenant = config::optional("CHANGEHUB_DEFAULT_TENANT")
            .map(|t| {
                TenantId::parse(&t)
                    .map_err(|e| ConfigError::Invalid { name: "CHANGEHUB_DEFAULT_TENANT", message: e.message })
            })
            .transpose()?;
        Ok(Self {
            user: var("CHANGEHUB_USER_CLAIM", "sub"),
            groups: var("CHANGEHUB_GROUPS_CLAIM", "groups"),
            tenant: var("CHANGEHUB_TENANT_CLAIM", TENANT_CLAIM),
            default_tenant,
        })
    }

    /// The caller the claims describe, or why they do not describe one.
    pub fn caller(&self, claims: &Map<String, Value>) -> Result<Caller, String> {
        let user = match claims.get(&self.user) {
            Some(Value::String(u)) if !u.trim().is_empty() && u.len() <= 256 => u.trim().to_owned(),
            Some(_) => return Err(format!("the token's {} claim must be a string of 1 to 256 characters", self.user)),
            None => return Err(format!("the token has no {} claim naming the user", self.user)),
        };
        let tenant = match claims.get(&self.tenant) {
            Some(Value::String(t)) => {
                TenantId::parse(t).map_err(|e| format!("the token's {} claim: {}", self.tenant, e.message))?
            }
            Some(_) => return Err(format!("the token's {} claim must be a string", self.tenant)),
            None => self.default_tenant.clone().ok_or_else(|| format!("the token has no {} claim", self.tenant))?,
        };
        let groups = match claims.get(&self.groups) {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            Some(Value::String(s)) => split_groups(s),
            Some(_) => return Err(format!("the token's {} claim must be a list of group names", self.groups)),
        };
        if let Some(bad) = groups.iter().find(|g| !valid_group(g)) {
            return Err(format!("the token's {} claim holds an invalid group name {bad:?}", self.groups));
        }
        Ok(Caller { tenant, user, groups })
    }
}

/// Middleware for the api Lambda: hands the claims API Gateway's JWT
/// authorizer verified (`requestContext.authorizer.jwt.claims`) to [`authenticate`].
/// API Gateway passes every claim as a string; array claims arrive as `[a b]`.
#[cfg(feature = "apigw")]
pub async fn apigw_claims(mut req: Request, next: Next) -> Response {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let claims: Option<Map<String, Value>> = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| jwt.claims.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
        _ => None,
    };
    if let Some(claims) = claims {
        req.extensions_mut().insert(VerifiedClaims(claims));
    }
    next.run(req).await
}

/// Group lists as API Gateway passes array claims to a function: `[a b]`,
/// or as some providers send them: `a,b` or `a b`. A JSON array string is read as such.
fn split_groups(raw: &str) -> Vec<String> {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(raw) {
        return items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
    }
    let inner = raw.trim().strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(raw);
    inner.split([',', ' ']).map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect()
}

/// How a served router authenticates API calls.
#[derive(Clone)]
pub enum Authenticator {
    /// Claims were verified upstream (API Gateway's JWT authorizer) and arrive as [`VerifiedClaims`].
    Upstream(ClaimNames),
    /// Tokens signed with the local hub's key.
    #[cfg(feature = "jwt")]
    Local(Arc<LocalKey>),
}

fn unauthorized(message: impl Into<String>) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Middleware: turns the request's credentials into a [`Caller`] extension, or answers 401.
pub async fn authenticate(State(auth): State<Arc<Authenticator>>, mut req: Request, next: Next) -> Response {
    let result = match auth.as_ref() {
        Authenticator::Upstream(names) => match req.extensions().get::<VerifiedClaims>() {
            Some(claims) => names.caller(&claims.0),
            None => {
                Err("no verified token claims reached the function; it must sit behind the API's JWT authorizer"
                    .to_owned())
            }
        },
        #[cfg(feature = "jwt")]
        Authenticator::Local(key) => match bearer(&req) {
            Err(message) => Err(message),
            Ok(token) => key.verify(token).and_then(|claims| ClaimNames::default().caller(&claims)),
        },
    };
    match result {
        Ok(caller) => {
            tracing::Span::current().record("user", caller.user.as_str());
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(message) => unauthorized(message),
    }
}

#[cfg(feature = "jwt")]
fn bearer(req: &Request) -> Result<&str, String> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err("this API needs a bearer token: send Authorization: Bearer <token> \
                    (locally, `changehub token --user NAME --groups GROUP,...` prints one)"
            .into());
    };
    let value = value.to_str().map_err(|_| "the Authorization header is not visible ASCII".to_owned())?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err("the Authorization header must be `Bearer <token>`".into()),
    }
}

/// The caller, as [`authenticate`] established it.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| unauthorized("this route needs a bearer token"))
    }
}

#[cfg(feature = "jwt")]
pub use local::{LocalKey, LocalKeyError, key_path};

#[cfg(feature = "jwt")]
mod local {
    use chrono::{DateTime, Utc};
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
    use serde_json::{Map, Value, json};
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::TENANT_CLAIM;
    use crate::domain::TenantId;

    /// The issuer of locally minted tokens.
    pub const ISSUER: &str = "changehub-local";
    const KEY_BYTES: usize = 32;

    /// The local hub's token signing key (HMAC-SHA256), kept in a file beside its database.
    pub struct LocalKey {
        pub(super) secret: Vec<u8>,
    }

    #[derive(Debug, thiserror::Error)]
    pub enum LocalKeyError {
        #[error("cannot read or create the signing key {path}")]
        Io {
            path: PathBuf,
            #[source]
            source: std::io::Error,
        },
        #[error(
            "the signing key {path} is not {KEY_BYTES} bytes of hex; delete it to make a new one (tokens signed with it stop working)"
        )]
        Malformed { path: PathBuf },
        #[error("no randomness available for a new key")]
        Random,
        #[error("cannot sign the token: {0}")]
        Sign(String),
    }

    /// The key file of a database: `<db>.key`.
    pub fn key_path(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".key");
        PathBuf::from(name)
    }

    impl LocalKey {
        /// Reads the key beside `db`, creating it (readable by its owner only) on first use.
        pub fn for_database(db: &Path) -> Result<Self, LocalKeyError> {
            let path = key_path(db);
            let io = |source| LocalKeyError::Io { path: path.clone(), source };
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let secret =
                        hex::decode(text.trim()).map_err(|_| LocalKeyError::Malformed { path: path.clone() })?;
                    if secret.len() != KEY_BYTES {
                        return Err(LocalKeyError::Malformed { path });
                    }
                    Ok(Self { secret })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let mut secret = vec![0u8; KEY_BYTES];
                    getrandom::fill(&mut secret).map_err(|_| LocalKeyError::Random)?;
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    match options.open(&path) {
                        Ok(mut file) => {
                            file.write_all(hex::encode(&secret).as_bytes()).map_err(io)?;
                            file.sync_all().map_err(io)?;
                            Ok(Self { secret })
                        }
                        // Another process created it first: use theirs.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::for_database(db),
                        Err(e) => Err(io(e)),
                    }
                }
                Err(e) => Err(io(e)),
            }
        }

        pub fn from_secret(secret: Vec<u8>) -> Self {
            Self { secret }
        }

        /// The local hub's audit key, derived from this key (HMAC under a
        /// fixed label), so one key file serves both and neither key is the other.
        pub fn audit_key(&self) -> Result<crate::domain::audit::AuditKey, crate::domain::audit::AuditKeyError> {
            crate::domain::audit::AuditKey::derive(&self.secret, "changehub local audit key")
        }

        /// A token for `user` in `tenant` with `groups`, valid for `ttl` from `now`.
        pub fn mint(
            &self,
            user: &str,
            groups: &[String],
            tenant: &TenantId,
            now: DateTime<Utc>,
            ttl: chrono::Duration,
        ) -> Result<String, LocalKeyError> {
            let claims = json!({
                "iss": ISSUER,
                "sub": user,
                "groups": groups,
                TENANT_CLAIM: tenant.as_str(),
                "iat": now.timestamp(),
                "exp": (now + ttl).timestamp(),
            });
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&self.secret))
                .map_err(|e| LocalKeyError::Sign(e.to_string()))
        }

        /// The token's claims if its signature, issuer and expiry hold; otherwise what failed.
        pub fn verify(&self, token: &str) -> Result<Map<String, Value>, String> {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_issuer(&[ISSUER]);
            validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            validation.leeway = 30;
            jsonwebtoken::decode::<Map<String, Value>>(token, &DecodingKey::from_secret(&self.secret), &validation)
                .map(|data| data.claims)
                .map_err(|e| match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired; mint a new one".to_owned(),
                    ErrorKind::InvalidSignature => {
                        "the token's signature does not verify: it was not signed by this hub's key".to_owned()
                    }
                    ErrorKind::InvalidIssuer => format!("the token was not issued by {ISSUER}"),
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256".to_owned(),
                    ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
                    _ => format!("the token is not a valid JWT: {e}"),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn claims_give_user_tenant_and_groups_in_every_shape_providers_send() {
        let names = ClaimNames::default();
        for groups in [json!(["cab", "dba"]), json!("[cab dba]"), json!("cab,dba"), json!("[\"cab\",\"dba\"]")] {
            let c = names
                .caller(&claims(json!({"sub": "alice", "changehub_tenant": "acme", "groups": groups})))
                .expect("caller");
            assert_eq!(c.user, "alice");
            assert_eq!(c.tenant.as_str(), "acme");
            assert_eq!(c.groups, ["cab", "dba"], "{groups}");
        }
    }

    #[test]
    fn claims_without_user_or_tenant_say_which_claim_is_missing() {
        let names = ClaimNames::default();
        let err = names.caller(&claims(json!({"changehub_tenant": "acme"}))).expect_err("no user");
        assert_eq!(err, "the token has no sub claim naming the user");
        let err = names.caller(&claims(json!({"sub": "alice"}))).expect_err("no tenant");
        assert_eq!(err, "the token has no changehub_tenant claim");
        let single = ClaimNames { default_tenant: TenantId::parse("default").ok(), ..ClaimNames::default() };
        assert_eq!(single.caller(&claims(json!({"sub": "alice"}))).expect("caller").tenant.as_str(), "default");
        let err = names.caller(&claims(json!({"sub": "a", "changehub_tenant": "Not Ok"}))).expect_err("bad tenant");
        assert!(err.starts_with("the token's changehub_tenant claim: "), "{err}");
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn local_tokens_verify_and_failures_are_named() {
        let key = LocalKey::from_secret(vec![7; 32]);
        let now = chrono::Utc::now();
        let tenant = TenantId::parse("acme").expect("tenant");
        let token = key.mint("alice", &["cab".into()], &tenant, now, chrono::Duration::hours(1)).expect("mint");
        let c = ClaimNames::default().caller(&key.verify(&token).expect("verify")).expect("caller");
        assert_eq!(
            (c.user.as_str(), c.tenant.as_str(), c.groups.as_slice()),
            ("alice", "acme", &["cab".to_owned()][..])
        );
        let other = LocalKey::from_secret(vec![8; 32]);
        assert!(other.verify(&token).expect_err("wrong key").contains("signature does not verify"));
        let old = key.mint("alice", &[], &tenant, now - chrono::Duration::hours(3), chrono::Duration::hours(1));
        assert!(key.verify(&old.expect("mint")).expect_err("expired").contains("expired"));
        assert!(key.verify("not-a-jwt").expect_err("garbage").contains("not a valid JWT"));
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn the_key_is_created_once_beside_the_database_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("hub.db");
        let a = LocalKey::for_database(&db).expect("create");
        let b = LocalKey::for_database(&db).expect("reuse");
        assert_eq!(a.secret, b.secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("hub.db.key")).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join("hub.db.key"), "zz").expect("write");
        assert!(matches!(LocalKey::for_database(&db), Err(LocalKeyError::Malformed { .. })));
    }
}
