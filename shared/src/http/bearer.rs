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
use std::collections::BTreeSet;
use std::sync::Arc;

use super::error::ApiError;
use crate::config::{self, ConfigError};
use crate::domain::TenantId;
use crate::domain::access::{BOOTSTRAP_ADMIN_GROUP, Caller};
use crate::domain::catalog::{Role, valid_group};

/// Claims already verified by whoever checked the token's signature.
#[derive(Debug, Clone, Default)]
pub struct VerifiedClaims(pub Map<String, Value>);

/// How a token's claims describe a caller: which claims carry the user, the
/// groups and the tenant, and which group is always admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub user: String,
    pub groups: String,
    pub tenant: String,
    /// The tenant of tokens without a tenant claim (single-tenant deployments); none by default.
    pub default_tenant: Option<TenantId>,
    /// Members of this group are admins whatever the catalog says (so a tenant can import
    /// its first catalog); `None` once the catalog's `roles.admin` names the admins.
    pub bootstrap_admin_group: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            user: "sub".into(),
            groups: "groups".into(),
            tenant: TENANT_CLAIM.into(),
            default_tenant: None,
            bootstrap_admin_group: Some(BOOTSTRAP_ADMIN_GROUP.into()),
        }
    }
}

/// The tenant claim of tokens `changehub token` mints, and the default claim name.
pub const TENANT_CLAIM: &str = "changehub_tenant";

/// The bootstrap admin group as configured: unset gives the default
/// ([`BOOTSTRAP_ADMIN_GROUP`]), empty gives none, anything else must be a valid group name.
pub fn bootstrap_admin_group(configured: Option<&str>) -> Result<Option<String>, String> {
    match configured {
        None => Ok(Some(BOOTSTRAP_ADMIN_GROUP.to_owned())),
        Some("") => Ok(None),
        Some(g) if valid_group(g) => Ok(Some(g.to_owned())),
        Some(g) => Err(format!(
            "{g:?} is not a group name (1 to 256 characters, no control characters or surrounding spaces); \
             leave it empty for no bootstrap admin group"
        )),
    }
}

impl ClaimNames {
    /// `CHANGEHUB_USER_CLAIM` (default `sub`), `CHANGEHUB_GROUPS_CLAIM` (default
    /// `groups`; Cognito: `cognito:groups`), `CHANGEHUB_TENANT_CLAIM` (default
    /// `changehub_tenant`), `CHANGEHUB_DEFAULT_TENANT` (unset: tokens must name their tenant),
    /// `CHANGEHUB_BOOTSTRAP_ADMIN_GROUP` (unset: `changehub-admins`; empty: none).
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &'static str, default: &str| config::optional(name).unwrap_or_else(|| default.to_owned());
        let default_tenant = config::optional("CHANGEHUB_DEFAULT_TENANT")
            .map(|t| {
                TenantId::parse(&t)
                    .map_err(|e| ConfigError::Invalid { name: "CHANGEHUB_DEFAULT_TENANT", message: e.message })
            })
            .transpose()?;
        let bootstrap = std::env::var("CHANGEHUB_BOOTSTRAP_ADMIN_GROUP").ok().map(|v| v.trim().to_owned());
        let bootstrap_admin_group = bootstrap_admin_group(bootstrap.as_deref())
            .map_err(|message| ConfigError::Invalid { name: "CHANGEHUB_BOOTSTRAP_ADMIN_GROUP", message })?;
        Ok(Self {
            user: var("CHANGEHUB_USER_CLAIM", "sub"),
            groups: var("CHANGEHUB_GROUPS_CLAIM", "groups"),
            tenant: var("CHANGEHUB_TENANT_CLAIM", TENANT_CLAIM),
            default_tenant,
            bootstrap_admin_group,
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
        let groups = self.groups(claims.get(&self.groups))?;
        if let Some(bad) = groups.iter().find(|g| !valid_group(g)) {
            return Err(format!("the token's {} claim holds an invalid group name {bad:?}", self.groups));
        }
        let mut granted = BTreeSet::new();
        if self.bootstrap_admin_group.as_ref().is_some_and(|admins| groups.contains(admins)) {
            granted.insert(Role::Admin);
        }
        Ok(Caller { tenant, user, groups, granted })
    }

    /// The group names of the groups claim, each whole: a JSON array, a string
    /// holding a JSON array, or one group's name. A name is never split, so a
    /// group called `Payments Leads` stays one group.
    fn groups(&self, claim: Option<&Value>) -> Result<Vec<String>, String> {
        let names = |items: &[Value]| -> Result<Vec<String>, String> {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("the token's {} claim must list group names as strings", self.groups))
        };
        match claim {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(items)) => names(items),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(vec![]),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(items)) => names(&items),
                _ => Err(format!(
                    "the token's {} claim {s:?} is a list flattened into a string, which cannot be split \
                     without breaking group names that hold spaces; send the token itself in the \
                     Authorization header, or the groups as a JSON array",
                    self.groups
                )),
            },
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(_) => Err(format!("the token's {} claim must be a list of group names", self.groups)),
        }
    }
}

/// Middleware for the api Lambda: hands the claims API Gateway's JWT
/// authorizer verified (`requestContext.authorizer.jwt.claims`) to [`authenticate`].
///
/// API Gateway passes every claim as a string, an array as `[a b]`, which
/// cannot be split back when a group's name holds a space. The token itself
/// is in the `Authorization` header API Gateway verified, so each flattened
/// array is taken from the token's payload instead, when the payload's array
/// renders to exactly what the authorizer passed (see [`restore_arrays`]).
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
        let payload = bearer_payload(req.headers());
        req.extensions_mut().insert(VerifiedClaims(restore_arrays(claims, payload.as_ref())));
    }
    next.run(req).await
}

/// The payload of the bearer token in `headers`, decoded but not verified
/// (only for a token someone upstream has verified). Exactly one
/// `Authorization` header holding `Bearer` and one three-part token, or none.
#[cfg(any(feature = "apigw", test))]
fn bearer_payload(headers: &axum::http::HeaderMap) -> Option<Map<String, Value>> {
    use base64::Engine;
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let segments: Vec<&str> = token.split('.').collect();
    let base64url =
        |seg: &&str| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !scheme.eq_ignore_ascii_case("bearer") || segments.len() != 3 || !segments.iter().all(base64url) {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segments[1]).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a claim of the token's payload is the one API Gateway's JWT
/// authorizer handed over (`verified`, always text): strings as they are,
/// booleans as text, numbers by value (however API Gateway wrote them),
/// arrays of strings as `[a b]`. `None` for what API Gateway's rendering is
/// not known for (an object, such as Keycloak's `realm_access`, or an array
/// of anything else): such a claim is neither compared nor ever taken.
#[cfg(any(feature = "apigw", test))]
fn same_claim(payload: &Value, verified: &str) -> Option<bool> {
    Some(match payload {
        Value::String(s) => s == verified,
        Value::Bool(b) => b.to_string() == verified,
        Value::Number(n) => verified.parse::<f64>().ok().zip(n.as_f64()).is_some_and(|(v, n)| v == n),
        Value::Array(items) => {
            let names = items.iter().map(Value::as_str).collect::<Option<Vec<_>>>()?;
            format!("[{}]", names.join(" ")) == verified
        }
        Value::Null | Value::Object(_) => return None,
    })
}

/// The authorizer's claims, with each string that is API Gateway's rendering
/// (`[a b]`) of an array of strings in the token's payload replaced by that
/// array. The payload is used only when it is the verified token's: every
/// claim the authorizer passed (subject, issue and expiry times, token id,
/// tenant...) must be in it and, where its rendering is known
/// ([`same_claim`]), render to exactly what the authorizer verified, at
/// least one of them; nothing the authorizer did not pass is taken from it.
/// Otherwise the claims stay as verified (a flattened group list is then
/// refused, never split).
#[cfg(any(feature = "apigw", test))]
fn restore_arrays(mut claims: Map<String, Value>, payload: Option<&Map<String, Value>>) -> Map<String, Value> {
    let Some(payload) = payload else { return claims };
    let mut compared = 0;
    for (name, verified) in &claims {
        let same = match (payload.get(name), verified.as_str()) {
            (Some(claim), Some(verified)) => same_claim(claim, verified),
            _ => Some(false),
        };
        match same {
            Some(false) => return claims,
            Some(true) => compared += 1,
            None => {}
        }
    }
    if compared == 0 {
        return claims;
    }
    for (name, value) in claims.iter_mut() {
        if let Some(Value::Array(items)) = payload.get(name)
            && items.iter().all(Value::is_string)
        {
            *value = Value::Array(items.clone());
        }
    }
    claims
}

/// How a served router authenticates API calls.
#[derive(Clone)]
pub enum Authenticator {
    /// Claims were verified upstream (API Gateway's JWT authorizer) and arrive as [`VerifiedClaims`].
    Upstream(ClaimNames),
    /// Tokens signed with the local hub's key, read with the default claim
    /// names and the hub's bootstrap admin group.
    #[cfg(feature = "jwt")]
    Local(Arc<LocalKey>, ClaimNames),
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
        Authenticator::Local(key, names) => match bearer(&req) {
            Err(message) => Err(message),
            Ok(token) => key.verify(token).and_then(|claims| local::caller(names, &claims)),
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

    use super::{ClaimNames, TENANT_CLAIM};
    use crate::domain::TenantId;
    use crate::domain::access::Caller;
    use crate::domain::catalog::Role;

    /// The issuer of locally minted tokens.
    pub const ISSUER: &str = "changehub-local";
    /// A claim only locally minted tokens may carry: roles the token grants by
    /// itself. Only `ingest` may be granted so (`changehub replay`'s tokens).
    pub const ROLES_CLAIM: &str = "changehub_roles";
    /// What a token that cannot be decoded is told.
    pub const NOT_A_JWT: &str = "the token is not a JWT (three base64url parts separated by dots); \
                                 locally, `changehub token --user NAME --groups GROUP,...` prints one";

    /// The caller a local token describes, with the roles its [`ROLES_CLAIM`] grants.
    pub(super) fn caller(names: &ClaimNames, claims: &Map<String, Value>) -> Result<Caller, String> {
        let mut caller = names.caller(claims)?;
        match claims.get(ROLES_CLAIM) {
            None => {}
            Some(Value::Array(roles)) if roles.iter().all(|r| r.as_str() == Some(Role::Ingest.as_str())) => {
                caller.granted.extend(roles.first().map(|_| Role::Ingest));
            }
            Some(_) => return Err(format!("the token's {ROLES_CLAIM} claim may grant only the ingest role")),
        }
        Ok(caller)
    }
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
        /// `changehub token` and `replay` sign only with a key the hub holds.
        #[error("no signing key at {path}: the hub creates it beside its database when it first starts")]
        Missing { path: PathBuf },
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
        /// Reads the key the hub created beside `db`; never creates one (a token
        /// signed with a key the hub does not hold would be refused).
        pub fn existing(db: &Path) -> Result<Self, LocalKeyError> {
            let path = key_path(db);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let secret =
                        hex::decode(text.trim()).map_err(|_| LocalKeyError::Malformed { path: path.clone() })?;
                    if secret.len() != KEY_BYTES {
                        return Err(LocalKeyError::Malformed { path });
                    }
                    Ok(Self { secret })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LocalKeyError::Missing { path }),
                Err(source) => Err(LocalKeyError::Io { path, source }),
            }
        }

        /// Reads the key beside `db`, creating it (readable by its owner only) on first use.
        pub fn for_database(db: &Path) -> Result<Self, LocalKeyError> {
            match Self::existing(db) {
                Err(LocalKeyError::Missing { path }) => {
                    let io = |source| LocalKeyError::Io { path: path.clone(), source };
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
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::existing(db),
                        Err(e) => Err(io(e)),
                    }
                }
                other => other,
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
            self.sign(user, tenant, now, ttl, ("groups", json!(groups)))
        }

        /// A token of `user` in `tenant` that grants the ingest role and nothing
        /// else: what `changehub replay` sends to `POST /events`.
        pub fn mint_ingest(
            &self,
            user: &str,
            tenant: &TenantId,
            now: DateTime<Utc>,
            ttl: chrono::Duration,
        ) -> Result<String, LocalKeyError> {
            self.sign(user, tenant, now, ttl, (ROLES_CLAIM, json!([Role::Ingest.as_str()])))
        }

        /// A token for `user` in `tenant`, valid for `ttl` from `now`, with one more claim.
        fn sign(
            &self,
            user: &str,
            tenant: &TenantId,
            now: DateTime<Utc>,
            ttl: chrono::Duration,
            (name, value): (&str, Value),
        ) -> Result<String, LocalKeyError> {
            let mut claims = json!({
                "iss": ISSUER,
                "sub": user,
                TENANT_CLAIM: tenant.as_str(),
                "iat": now.timestamp(),
                "exp": (now + ttl).timestamp(),
            });
            claims[name] = value;
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
                    ErrorKind::InvalidClaimFormat(c) => format!("the token's {c} claim has the wrong type"),
                    ErrorKind::ImmatureSignature => {
                        "the token is not valid yet (its nbf claim is in the future)".into()
                    }
                    // The decoder's own words name a byte, line or column of an encoding nobody wrote by hand.
                    _ => NOT_A_JWT.to_owned(),
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

    fn groups_of(names: &ClaimNames, groups: Value) -> Result<Caller, String> {
        names.caller(&claims(json!({"sub": "alice", "changehub_tenant": "acme", "groups": groups})))
    }

    #[test]
    fn claims_give_user_tenant_and_groups_as_a_json_array_or_a_json_array_string() {
        let names = ClaimNames::default();
        for groups in [json!(["cab", "dba"]), json!("[\"cab\",\"dba\"]"), json!(" [\"cab\", \"dba\"] ")] {
            let c = groups_of(&names, groups.clone()).expect("caller");
            assert_eq!((c.user.as_str(), c.tenant.as_str()), ("alice", "acme"));
            assert_eq!(c.groups, ["cab", "dba"], "{groups}");
        }
        assert_eq!(groups_of(&names, json!("cab")).expect("one group").groups, ["cab"]);
        assert!(groups_of(&names, json!(null)).expect("none").groups.is_empty());
    }

    #[test]
    fn a_group_name_with_a_space_or_comma_stays_one_group() {
        let names = ClaimNames::default();
        let c = groups_of(&names, json!(["Payments Leads", "cab"])).expect("caller");
        assert_eq!(c.groups, ["Payments Leads", "cab"]);
        assert_eq!(groups_of(&names, json!("Payments Leads")).expect("caller").groups, ["Payments Leads"]);
        assert_eq!(groups_of(&names, json!("cab,dba")).expect("caller").groups, ["cab,dba"]);
    }

    #[test]
    fn a_group_whose_name_contains_the_bootstrap_group_grants_nothing() {
        let names = ClaimNames::default();
        for groups in
            [json!(["eng changehub-admins"]), json!("eng changehub-admins"), json!("[\"eng changehub-admins\"]")]
        {
            let c = groups_of(&names, groups.clone()).expect("caller");
            assert_eq!(c.groups, ["eng changehub-admins"], "{groups}");
            assert!(c.granted.is_empty(), "{groups} must not make an admin");
        }
        let c = groups_of(&names, json!(["eng", "changehub-admins"])).expect("caller");
        assert_eq!(c.granted, BTreeSet::from([Role::Admin]));
    }

    #[test]
    fn a_list_flattened_into_a_string_is_refused_not_split() {
        let err = groups_of(&ClaimNames::default(), json!("[eng changehub-admins]")).expect_err("flattened");
        assert!(err.contains("flattened into a string"), "{err}");
        let err = groups_of(&ClaimNames::default(), json!(["cab", 7])).expect_err("not strings");
        assert!(err.contains("group names as strings"), "{err}");
    }

    #[test]
    fn the_bootstrap_admin_group_is_configuration_and_may_be_none() {
        assert_eq!(bootstrap_admin_group(None), Ok(Some(BOOTSTRAP_ADMIN_GROUP.to_owned())));
        assert_eq!(bootstrap_admin_group(Some("")), Ok(None));
        assert_eq!(bootstrap_admin_group(Some("Platform Admins")), Ok(Some("Platform Admins".to_owned())));
        assert!(bootstrap_admin_group(Some("bad\tname")).is_err());
        let renamed = ClaimNames { bootstrap_admin_group: Some("Platform Admins".into()), ..ClaimNames::default() };
        assert_eq!(
            groups_of(&renamed, json!(["Platform Admins"])).expect("caller").granted,
            BTreeSet::from([Role::Admin])
        );
        assert!(groups_of(&renamed, json!(["changehub-admins"])).expect("caller").granted.is_empty());
        let retired = ClaimNames { bootstrap_admin_group: None, ..ClaimNames::default() };
        assert!(groups_of(&retired, json!(["changehub-admins"])).expect("caller").granted.is_empty());
    }

    fn bearer_with(payload: Value) -> axum::http::HeaderMap {
        use base64::Engine;
        let encode = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!("{}.{}.c2ln", encode(&json!({"alg": "RS256"})), encode(&payload));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
        headers
    }

    #[test]
    fn api_gateway_flattened_arrays_are_taken_whole_from_the_verified_token() {
        let authorizer =
            claims(json!({"sub": "alice", "changehub_tenant": "acme", "groups": "[eng changehub-admins]"}));
        let token =
            bearer_with(json!({"sub": "alice", "changehub_tenant": "acme", "groups": ["eng changehub-admins"]}));
        let restored = restore_arrays(authorizer.clone(), bearer_payload(&token).as_ref());
        let c = ClaimNames::default().caller(&restored).expect("caller");
        assert_eq!(c.groups, ["eng changehub-admins"]);
        assert!(c.granted.is_empty(), "one group whose name holds a space is not the bootstrap group");

        // Another token's payload is not used, even one that renders the
        // groups to the same string: every verified claim must match.
        let two = bearer_with(json!({"sub": "alice", "groups": ["eng", "changehub-admins"]}));
        let kept = restore_arrays(authorizer.clone(), bearer_payload(&two).as_ref());
        assert_eq!(kept["groups"], json!("[eng changehub-admins]"));
        assert!(ClaimNames::default().caller(&kept).is_err(), "a flattened list is refused, never split");
        let timed = claims(
            json!({"sub": "alice", "changehub_tenant": "acme", "iat": "1700000000", "groups": "[eng changehub-admins]"}),
        );
        let reissued = bearer_with(
            json!({"sub": "alice", "changehub_tenant": "acme", "iat": 1700000001, "groups": ["eng", "changehub-admins"]}),
        );
        assert_eq!(
            restore_arrays(timed.clone(), bearer_payload(&reissued).as_ref())["groups"],
            json!("[eng changehub-admins]")
        );
        let same = bearer_with(
            json!({"sub": "alice", "changehub_tenant": "acme", "iat": 1700000000, "groups": ["eng changehub-admins"], "extra": {"a": 1}}),
        );
        assert_eq!(restore_arrays(timed, bearer_payload(&same).as_ref())["groups"], json!(["eng changehub-admins"]));
        // An object claim (Keycloak's `realm_access`), whose rendering is not
        // known, is skipped; numbers compare by value however they are written.
        let keycloak = claims(json!({"sub": "alice", "changehub_tenant": "acme", "exp": "1.7000036E9",
            "realm_access": "map[roles:[offline_access]]", "groups": "[Payments Leads]"}));
        let token = bearer_with(json!({"sub": "alice", "changehub_tenant": "acme", "exp": 1700003600,
            "realm_access": {"roles": ["offline_access"]}, "groups": ["Payments Leads"]}));
        assert_eq!(
            restore_arrays(keycloak.clone(), bearer_payload(&token).as_ref())["groups"],
            json!(["Payments Leads"])
        );
        let later = bearer_with(json!({"sub": "alice", "changehub_tenant": "acme", "exp": 1700003601,
            "realm_access": {"roles": ["offline_access"]}, "groups": ["Payments", "Leads"]}));
        assert_eq!(restore_arrays(keycloak, bearer_payload(&later).as_ref())["groups"], json!("[Payments Leads]"));
        // Nothing comparable: not taken.
        let opaque = claims(json!({"realm_access": "map[]", "groups": "[a b]"}));
        let token = bearer_with(json!({"realm_access": {}, "groups": [1, 2]}));
        assert_eq!(restore_arrays(opaque.clone(), bearer_payload(&token).as_ref()), opaque);
        // Two Authorization headers, or anything but one three-part token: no payload.
        let mut twice = bearer_with(json!({"sub": "alice"}));
        twice.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a.b.c"));
        assert_eq!(bearer_payload(&twice), None);
        let mut joined = axum::http::HeaderMap::new();
        joined.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a.eyJ9.c, Bearer x.eyJ9.z"));
        assert_eq!(bearer_payload(&joined), None);

        // A payload that does not render to what the authorizer verified is not used.
        let other = bearer_with(json!({"groups": ["changehub-admins"]}));
        let kept = restore_arrays(authorizer.clone(), bearer_payload(&other).as_ref());
        assert_eq!(kept["groups"], json!("[eng changehub-admins]"));
        assert!(ClaimNames::default().caller(&kept).is_err(), "a flattened list is refused, never split");
        assert_eq!(restore_arrays(authorizer.clone(), None), authorizer);
        let mut garbage = axum::http::HeaderMap::new();
        garbage.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a.%%%.c"));
        assert_eq!(bearer_payload(&garbage), None);
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
        let c = local::caller(&ClaimNames::default(), &key.verify(&token).expect("verify")).expect("caller");
        assert!(c.granted.is_empty());
        let ingest = key.mint_ingest("replay", &tenant, now, chrono::Duration::hours(1)).expect("mint");
        let replay = local::caller(&ClaimNames::default(), &key.verify(&ingest).expect("verify")).expect("caller");
        assert_eq!(replay.granted, BTreeSet::from([Role::Ingest]));
        let mut forged = key.verify(&token).expect("verify");
        forged.insert(local::ROLES_CLAIM.into(), json!(["admin"]));
        assert!(local::caller(&ClaimNames::default(), &forged).expect_err("admin").contains("only the ingest role"));
        assert_eq!(
            (c.user.as_str(), c.tenant.as_str(), c.groups.as_slice()),
            ("alice", "acme", &["cab".to_owned()][..])
        );
        let other = LocalKey::from_secret(vec![8; 32]);
        assert!(other.verify(&token).expect_err("wrong key").contains("signature does not verify"));
        let old = key.mint("alice", &[], &tenant, now - chrono::Duration::hours(3), chrono::Duration::hours(1));
        assert!(key.verify(&old.expect("mint")).expect_err("expired").contains("expired"));
        for garbage in ["not-a-jwt", "a.b.c", "eyJhbGciOi.e30.c2ln", &token[token.len() / 2..]] {
            assert_eq!(key.verify(garbage).expect_err(garbage), local::NOT_A_JWT, "{garbage}");
        }
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

    #[cfg(feature = "jwt")]
    #[test]
    fn an_existing_key_is_only_read_never_created() {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("hub.db");
        match LocalKey::existing(&db) {
            Err(LocalKeyError::Missing { path }) => assert_eq!(path, dir.path().join("hub.db.key")),
            other => panic!("expected Missing, got {:?}", other.map(|k| k.secret.len())),
        }
        assert!(!dir.path().join("hub.db.key").exists(), "no key was created");
        let created = LocalKey::for_database(&db).expect("create");
        assert_eq!(LocalKey::existing(&db).expect("read").secret, created.secret);
    }
}
