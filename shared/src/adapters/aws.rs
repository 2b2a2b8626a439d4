//! The AWS SDK configuration a Lambda loads once at init: one HTTPS client
//! shared by every SDK client built from it, so the TLS set-up (trust
//! anchors, connector, connection pool) is done once per process, not once
//! per client. By default it trusts only the Amazon Trust Services roots
//! that sign every AWS service endpoint, compiled in, instead of decoding
//! the system's whole CA bundle for the first connection; setting
//! `CHANGEHUB_TLS_ROOTS=system` uses the system trust store instead (a
//! TLS-inspecting proxy, a VPC endpoint behind a private CA).

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, Connector, HttpClientError};
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use crate::config::{self, ConfigError, SdkTimeouts};

/// The variable naming the trust store: `aws` (the default) or `system`.
pub const TLS_ROOTS_VAR: &str = "CHANGEHUB_TLS_ROOTS";

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, the roots of the
/// certificates AWS service endpoints present (Amazon Trust Services).
const AMAZON_TRUST_SERVICES: &str = include_str!("amazon_trust_services.pem");

/// The certificate authorities the SDK's HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// The Amazon Trust Services roots compiled into the binary.
    AmazonTrustServices,
    /// The system trust store (`SSL_CERT_FILE`, `SSL_CERT_DIR` or the OS default).
    System,
}

#[derive(Debug, thiserror::Error)]
pub enum SdkConfigError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the AWS SDK's TLS configuration is invalid")]
    Tls(#[source] HttpClientError),
}

impl TrustRoots {
    /// `CHANGEHUB_TLS_ROOTS`, read at init.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(config::optional(TLS_ROOTS_VAR).as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        match value {
            None | Some("aws") => Ok(Self::AmazonTrustServices),
            Some("system") => Ok(Self::System),
            Some(other) => Err(ConfigError::Invalid {
                name: TLS_ROOTS_VAR,
                message: format!("`{other}`: expected `aws` (Amazon Trust Services roots) or `system`"),
            }),
        }
    }

    fn trust_store(self) -> TrustStore {
        match self {
            Self::AmazonTrustServices => TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES),
            Self::System => TrustStore::default(),
        }
    }
}

/// The Lambdas' SDK configuration (region, credentials, endpoint from the
/// standard variables) with one HTTPS client trusting `CHANGEHUB_TLS_ROOTS`,
/// shared by every SDK client built from it (its connector, built for the
/// first request, is cached and reused by every client's requests), and the
/// operation and attempt timeouts of
/// [`SdkTimeouts`], so that a hung call fails inside the invocation.
pub async fn load_config() -> Result<SdkConfig, SdkConfigError> {
    Ok(with_timeouts(config_loader()?)?.load().await)
}

/// [`load_config`] for a Lambda function: the region (`AWS_REGION`) and the
/// execution role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`) are the ones Lambda puts in the environment, so the
/// SDK's default region and credentials chains (profile files, web identity
/// with its STS client, container and instance metadata) are not built at
/// init. A missing region fails the init with the variable's name.
pub async fn load_lambda_config() -> Result<SdkConfig, SdkConfigError> {
    let region = config::required("AWS_REGION")?;
    let loader = with_timeouts(config_loader()?)?
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    Ok(loader.load().await)
}

fn with_timeouts(loader: ConfigLoader) -> Result<ConfigLoader, SdkConfigError> {
    let timeouts = SdkTimeouts::from_env()?;
    let timeout_config = aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(timeouts.operation)
        .operation_attempt_timeout(timeouts.attempt)
        .build();
    Ok(loader.timeout_config(timeout_config))
}

/// [`load_config`]'s loader, for callers that set more (the tests' emulator endpoint).
pub fn config_loader() -> Result<ConfigLoader, SdkConfigError> {
    Ok(https_loader(tls_context(TrustRoots::from_env()?)?, || {}))
}

fn tls_context(roots: TrustRoots) -> Result<TlsContext, SdkConfigError> {
    TlsContext::builder().with_trust_store(roots.trust_store()).build().map_err(SdkConfigError::Tls)
}

/// The SDK's defaults with one HTTPS client: the connector the SDK's
/// default client builds (rustls on aws-lc, the client's timeouts and
/// sleep, HTTP(S)_PROXY/NO_PROXY), with `tls`'s roots; `on_tls_connector`
/// is called each time one is built (the tests count them).
/// `build_with_connector_fn` is the hook that default client is built with;
/// `Builder::build_https` would leave the proxy variables unread.
fn https_loader(tls: TlsContext, on_tls_connector: impl Fn() + Send + Sync + 'static) -> ConfigLoader {
    let http = Builder::new().build_with_connector_fn(move |settings, components| {
        // Without settings the hook is called only to validate the
        // configuration, once per SDK client constructed, and the connector
        // is dropped: a plain HTTP one does for that. The TLS connector
        // (decoding the roots, ~0.25M instructions) is built for the
        // first request, once per process, and cached by the client.
        let Some(settings) = settings else {
            return Connector::builder().build_http();
        };
        on_tls_connector();
        let mut connector = Connector::builder()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls.clone())
            .proxy_config(ProxyConfig::from_env());
        connector.set_connector_settings(Some(settings.clone()));
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.build()
    });
    aws_config::defaults(BehaviorVersion::latest()).http_client(http)
}

/// An SDK client built at its first use and shared by clones. Building a
/// client builds its crate's partition table (~0.35M instructions), which a
/// function whose invocations seldom reach that service (an api read, an
/// escalation tick with nothing due, a drift event that raises nothing)
/// should not pay at every cold start. Each adapter gives it a
/// `Lazy::new(&SdkConfig)` taking the configuration the function's other
/// clients are built from at init; a client already built converts with
/// `From`.
pub struct Lazy<C>(Arc<LazyLock<C, Build<C>>>);

/// How a [`Lazy`] client is built.
type Build<C> = Box<dyn FnOnce() -> C + Send>;

impl<C> Lazy<C> {
    /// A client `build` makes at the first use.
    pub fn with(build: impl FnOnce() -> C + Send + 'static) -> Self {
        Self(Arc::new(LazyLock::new(Box::new(build))))
    }

    /// A client `build` makes from `aws` at the first use.
    pub fn from_config(aws: &SdkConfig, build: fn(&SdkConfig) -> C) -> Self
    where
        C: 'static,
    {
        let aws = aws.clone();
        Self::with(move || build(&aws))
    }
}

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<C: Send + 'static> From<C> for Lazy<C> {
    fn from(client: C) -> Self {
        Self::with(move || client)
    }
}

impl<C> Deref for Lazy<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use sha2::{Digest, Sha256};

    /// SHA-256 fingerprints as Amazon Trust Services publishes them
    /// (https://www.amazontrust.com/repository/).
    const PUBLISHED: [&str; 5] = [
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services Root CA G2
    ];

    fn fingerprints(pem: &str) -> Vec<String> {
        pem.split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|block| {
                let b64: String = block
                    .split("-----END CERTIFICATE-----")
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let der = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64 certificate");
                hex::encode(Sha256::digest(der))
            })
            .collect()
    }

    #[test]
    fn compiled_in_roots_are_exactly_the_amazon_trust_services_roots() {
        assert_eq!(fingerprints(AMAZON_TRUST_SERVICES), PUBLISHED);
    }

    #[test]
    fn trust_roots_default_to_amazon_and_accept_system_as_the_escape_hatch() {
        assert_eq!(TrustRoots::parse(None).expect("default"), TrustRoots::AmazonTrustServices);
        assert_eq!(TrustRoots::parse(Some("aws")).expect("aws"), TrustRoots::AmazonTrustServices);
        assert_eq!(TrustRoots::parse(Some("system")).expect("system"), TrustRoots::System);
    }

    /// Each SDK client's construction asks the HTTP client for a connector
    /// only to validate it; before, that built (and dropped) the TLS
    /// connector once per client at init.
    #[cfg(feature = "dynamodb")]
    #[tokio::test]
    async fn clients_are_built_without_a_tls_connector_and_the_first_request_builds_one() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let built = Arc::new(AtomicUsize::new(0));
        let counter = built.clone();
        let loader = https_loader(tls_context(TrustRoots::AmazonTrustServices).expect("tls"), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        // A port nothing listens on: the request is attempted and fails to connect.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let config = loader
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("AKID", "secret", None, None, "test"))
            .endpoint_url(format!("http://{closed}"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let first = crate::adapters::dynamodb::Client::new(&config);
        let _second = crate::adapters::dynamodb::Client::new(&config);
        assert_eq!(built.load(Ordering::SeqCst), 0, "a TLS connector built at client construction");
        first.list_tables().send().await.expect_err("nothing listens");
        first.list_tables().send().await.expect_err("nothing listens");
        assert_eq!(built.load(Ordering::SeqCst), 1, "one TLS connector for the requests, cached");
    }

    #[test]
    fn an_unknown_trust_store_fails_naming_the_variable() {
        let err = TrustRoots::parse(Some("mozilla")).expect_err("rejected");
        assert!(err.to_string().contains(TLS_ROOTS_VAR), "{err}");
    }
}
