//! HTTP client for the JSXC external API: signed POSTs over one keep-alive
//! pool, bounded in time and size, never following redirects.

use std::error::Error as StdError;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use thiserror::Error;

use crate::api::{self, DecodeError, Envelope, Operation, SharedRoster};
use crate::settings::DomainSettings;
use crate::signature::{sign, SIGNATURE_HEADER};

/// Largest reply body read from the cloud.
pub const MAX_BODY: usize = 1024 * 1024;

/// Connect and total deadlines for one request (xcauth's `--timeout C,T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Deadline for the TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// Deadline for the whole request, connection included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(5),
        }
    }
}

/// Why the cloud could not give a yes or a no. Each variant is a distinct
/// cause for the log; none of them carries a password or a secret.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum BackendError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("HTTP client set-up failed: {0}")]
    Setup(String),
    /// The URL is not usable.
    #[error("invalid API URL: {0}")]
    BadUrl(String),
    /// Nothing listens at the URL's host and port.
    #[error("connection refused by {host} (is the URL right and the cloud up?)")]
    ConnectionRefused {
        /// Host and port of the URL.
        host: String,
    },
    /// The host name did not resolve.
    #[error("DNS lookup failed for {host} (check the API URL)")]
    Dns {
        /// Host of the URL.
        host: String,
    },
    /// TLS failed (certificate not trusted, name mismatch, protocol error).
    #[error("TLS failure with {host}: {detail}")]
    Tls {
        /// Host of the URL.
        host: String,
        /// What rustls reported.
        detail: String,
    },
    /// Other connection failures (reset, unreachable network, …).
    #[error("connection to {host} failed: {detail}")]
    Connect {
        /// Host of the URL.
        host: String,
        /// The underlying error.
        detail: String,
    },
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A redirect, which is never followed.
    #[error("HTTP {status} redirect to {location:?} not followed (use the final URL in the configuration)")]
    Redirect {
        /// 3xx status code.
        status: u16,
        /// The `Location` header, if any.
        location: String,
    },
    /// The cloud refused the request signature.
    #[error("the cloud rejected the request signature (HTTP {status}: {msg}); is the API secret the one on the JSXC admin page?")]
    SignatureRejected {
        /// HTTP status (500 from ojsxc).
        status: u16,
        /// The cloud's message.
        msg: String,
    },
    /// Any other status than 200.
    #[error("HTTP status {status}: {snippet:?}")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// Start of the body, printable.
        snippet: String,
    },
    /// The body exceeded [`MAX_BODY`].
    #[error("reply larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body is not the JSON the API promises.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The cloud answered `result: error`.
    #[error("the cloud answered an error: {0}")]
    Api(String),
    /// The connection broke while the reply was being read.
    #[error("reading the reply failed: {0}")]
    Body(String),
}

/// Client for the external API. The underlying HTTP client (and its TLS
/// roots) is built on first use, so that token-only work starts instantly.
pub struct BackendClient {
    timeouts: Timeouts,
    http: OnceLock<Result<reqwest::Client, BackendError>>,
}

impl BackendClient {
    /// A client with the given deadlines.
    pub fn new(timeouts: Timeouts) -> Self {
        BackendClient {
            timeouts,
            http: OnceLock::new(),
        }
    }

    /// The deadlines in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn http(&self) -> Result<&reqwest::Client, BackendError> {
        self.http
            .get_or_init(|| build_http(self.timeouts))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Sends `op`, signed with the domain's secret, and decodes the envelope.
    pub async fn call(
        &self,
        settings: &DomainSettings,
        op: Operation<'_>,
    ) -> Result<Envelope, BackendError> {
        let http = self.http()?;
        let url = settings.parsed_url.clone().map_err(BackendError::BadUrl)?;
        let host = host_of(&url);
        let body = op.body();
        let signature = sign(&settings.secret, body.as_bytes());
        let send = http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send();
        // reqwest's own timeout covers the body too; this outer deadline is
        // the guarantee that nothing waits longer, whatever the cause.
        let deadline = self.timeouts.total;
        let work = async {
            let resp = send.await.map_err(|e| classify(&e, &host, deadline))?;
            let status = resp.status().as_u16();
            if resp.status().is_redirection() {
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                return Err(BackendError::Redirect { status, location });
            }
            let bytes = read_capped(resp, &host, deadline).await?;
            if status != 200 {
                return Err(status_error(status, &bytes));
            }
            let envelope = api::decode_envelope(&bytes)?;
            match envelope {
                Envelope::Error(msg) => Err(BackendError::Api(msg)),
                other => Ok(other),
            }
        };
        match tokio::time::timeout(deadline + Duration::from_millis(250), work).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout(deadline)),
        }
    }

    /// `auth`: `Ok(true)` for success, `Ok(false)` for noauth.
    pub async fn auth(
        &self,
        settings: &DomainSettings,
        username: &str,
        domain: &str,
        password: &str,
    ) -> Result<bool, BackendError> {
        let op = Operation::Auth {
            username,
            domain,
            password,
        };
        match self.call(settings, op).await? {
            Envelope::Success(_) => Ok(true),
            Envelope::NoAuth => Ok(false),
            Envelope::Error(msg) => Err(BackendError::Api(msg)),
        }
    }

    /// `isuser`: whether the user exists.
    pub async fn is_user(
        &self,
        settings: &DomainSettings,
        username: &str,
        domain: &str,
    ) -> Result<bool, BackendError> {
        let op = Operation::IsUser { username, domain };
        match self.call(settings, op).await? {
            Envelope::Success(data) => Ok(api::decode_is_user(&data)?),
            Envelope::NoAuth => Err(DecodeError::Shape("isuser answered noauth".into()).into()),
            Envelope::Error(msg) => Err(BackendError::Api(msg)),
        }
    }

    /// `sharedroster`: the users sharing a group with `username`.
    pub async fn shared_roster(
        &self,
        settings: &DomainSettings,
        username: &str,
        domain: &str,
    ) -> Result<SharedRoster, BackendError> {
        let op = Operation::SharedRoster { username, domain };
        match self.call(settings, op).await? {
            Envelope::Success(data) => Ok(api::decode_shared_roster(&data)?),
            Envelope::NoAuth => {
                Err(DecodeError::Shape("sharedroster answered noauth".into()).into())
            }
            Envelope::Error(msg) => Err(BackendError::Api(msg)),
        }
    }
}

fn build_http(timeouts: Timeouts) -> Result<reqwest::Client, BackendError> {
    let tls = crate::tls::client_config().map_err(|e| BackendError::Setup(e.to_string()))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cloudauth/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| BackendError::Setup(chain(&e)))
}

async fn read_capped(
    mut resp: reqwest::Response,
    host: &str,
    deadline: Duration,
) -> Result<Vec<u8>, BackendError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BackendError::BodyTooLarge(MAX_BODY));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        if e.is_timeout() {
            BackendError::Timeout(deadline)
        } else {
            BackendError::Body(format!("{host}: {}", chain(&e)))
        }
    })? {
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(BackendError::BodyTooLarge(MAX_BODY));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn status_error(status: u16, body: &[u8]) -> BackendError {
    if let Ok(Envelope::Error(msg)) = api::decode_envelope(body) {
        if msg.to_ascii_lowercase().contains("signature") {
            return BackendError::SignatureRejected { status, msg };
        }
    }
    BackendError::HttpStatus {
        status,
        snippet: api::printable_snippet(body, 120),
    }
}

fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => url.as_str().to_string(),
    }
}

/// The error and all its sources, joined.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

fn find_source<'e, T: StdError + 'static>(e: &'e (dyn StdError + 'static)) -> Option<&'e T> {
    let mut cur: Option<&'e (dyn StdError + 'static)> = Some(e);
    while let Some(s) = cur {
        if let Some(t) = s.downcast_ref::<T>() {
            return Some(t);
        }
        // io::Error::source() skips the wrapped error itself; look inside.
        if let Some(inner) = s.downcast_ref::<io::Error>().and_then(|i| i.get_ref()) {
            if let Some(t) = inner.downcast_ref::<T>() {
                return Some(t);
            }
            if let Some(t) = find_source::<T>(inner) {
                return Some(t);
            }
        }
        cur = s.source();
    }
    None
}

fn classify(e: &reqwest::Error, host: &str, deadline: Duration) -> BackendError {
    let host = host.to_string();
    if e.is_timeout() {
        return BackendError::Timeout(deadline);
    }
    if let Some(tls) = find_source::<rustls::Error>(e) {
        return BackendError::Tls {
            host,
            detail: tls.to_string(),
        };
    }
    if e.is_dns() {
        return BackendError::Dns { host };
    }
    if let Some(ioe) = find_source::<io::Error>(e) {
        if ioe.kind() == io::ErrorKind::ConnectionRefused {
            return BackendError::ConnectionRefused { host };
        }
        if ioe.kind() == io::ErrorKind::TimedOut {
            return BackendError::Timeout(deadline);
        }
        if let Some(tls) = ioe
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return BackendError::Tls {
                host,
                detail: tls.to_string(),
            };
        }
    }
    let detail = chain(e);
    if detail.contains("certificate") || detail.contains("tls") || detail.contains("TLS") {
        return BackendError::Tls { host, detail };
    }
    BackendError::Connect { host, detail }
}
