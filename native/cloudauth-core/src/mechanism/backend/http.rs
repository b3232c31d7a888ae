//! The HTTP client every backend shares: one keep-alive pool, TLS verified
//! against the system roots, every request bounded in time and size, never
//! following redirects, every failure classified for the log.

use std::error::Error as StdError;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::gate::{Limits, Meter};
use super::BackendError;
use crate::vocab::counters::BackendStats;
// The URL rules and the deadlines are vocabulary (settings parse them); the
// names stay reachable here, where callers have always found them.
pub use crate::vocab::timeouts::Timeouts;
pub use crate::vocab::url::{is_loopback, parse_url};

/// Largest reply body read from the cloud.
pub const MAX_BODY: usize = 1024 * 1024;

/// A reply as the backend sent it (status 2xx/4xx/5xx; redirects are errors).
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, lowercased, without parameters.
    pub content_type: String,
    /// The body, at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
    /// Time from sending to the last byte.
    pub elapsed: Duration,
    /// The `Date` header as Unix seconds, when the server sent a readable
    /// one (the doctor compares it with the local clock: tokens carry
    /// absolute times).
    pub date: Option<u64>,
}

impl HttpReply {
    /// The error for a status the API does not promise.
    pub fn unexpected(&self) -> BackendError {
        BackendError::HttpStatus {
            status: self.status,
            snippet: self.shape(),
        }
    }

    /// What of this reply may be logged: the body's shape and the content type.
    pub fn shape(&self) -> String {
        let content_type = match self.content_type.as_str() {
            "" => "no content type".to_string(),
            ct => super::printable_snippet(ct.as_bytes(), 60),
        };
        format!("{} ({content_type})", super::body_shape(&self.body))
    }
}

/// The client. The underlying HTTP client (and its TLS roots) is built on
/// first use, so that token-only work starts instantly.
pub struct HttpClient {
    timeouts: Timeouts,
    meter: Meter,
    http: OnceLock<Result<reqwest::Client, BackendError>>,
}

impl HttpClient {
    /// A client with the given deadlines and no limit on requests in flight.
    pub fn new(timeouts: Timeouts) -> Self {
        HttpClient::with_limits(timeouts, Arc::new(Limits::unlimited()))
    }

    /// A client whose requests to each host pass `limits` (shared with
    /// other clients that must count against the same limit).
    pub fn with_limits(timeouts: Timeouts, limits: Arc<Limits>) -> Self {
        HttpClient {
            timeouts,
            meter: Meter::new(limits),
            http: OnceLock::new(),
        }
    }

    /// What this client saw of the backends (latency, failures, throttling).
    pub fn stats(&self) -> &Arc<BackendStats> {
        &self.meter.stats
    }

    /// The gate and counters every request of this client passes (a
    /// backend that is not HTTP shares them through [`super::metered::Metered`]).
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The limits in force.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.meter.limits
    }

    /// The deadlines in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// A request to `url`, to be finished by the caller and passed to [`HttpClient::send`].
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, BackendError> {
        let http = self
            .http
            .get_or_init(|| build_http(self.timeouts))
            .as_ref()
            .map_err(Clone::clone)?;
        Ok(http.request(method, url.clone()))
    }

    /// Sends a request made by [`HttpClient::request`] for `url` and reads
    /// the whole reply within the deadline, which covers the wait for a
    /// place among the requests in flight to that host too.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &reqwest::Url,
    ) -> Result<HttpReply, BackendError> {
        let host = &host_of(url);
        self.meter
            .run(host, self.timeouts.total, |deadline| async move {
                let started = Instant::now();
                // reqwest's own timeout covers the body too; this outer deadline is
                // the guarantee that nothing waits longer, whatever the cause.
                let work = async {
                    let resp = request
                        .send()
                        .await
                        .map_err(|e| classify(&e, host, deadline))?;
                    let status = resp.status().as_u16();
                    if resp.status().is_redirection() {
                        let location = resp
                            .headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .map(|l| redirect_target(url, l))
                            .unwrap_or_default();
                        return Err(BackendError::Redirect { status, location });
                    }
                    let content_type = resp
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split(';').next())
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase();
                    let date = resp
                        .headers()
                        .get(reqwest::header::DATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(crate::timestamp::parse_http_date);
                    let body = read_capped(resp, host, deadline).await?;
                    Ok(HttpReply {
                        status,
                        content_type,
                        body,
                        elapsed: started.elapsed(),
                        date,
                    })
                };
                match tokio::time::timeout(deadline + Duration::from_millis(250), work).await {
                    Ok(r) => r,
                    Err(_) => Err(BackendError::Timeout(deadline)),
                }
            })
            .await
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

/// `host:port` of a URL, for log lines.
pub(crate) fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => url.as_str().to_string(),
    }
}

/// A redirect's target as it may be logged: scheme, host, port and path,
/// resolved against the request's URL — never its query or fragment (a
/// login page's redirect may carry a session or the request's
/// credentials) nor a `user:password@`.
pub(crate) fn redirect_target(request: &reqwest::Url, location: &str) -> String {
    match request.join(location) {
        Ok(mut target) => {
            target.set_query(None);
            target.set_fragment(None);
            let _ = target.set_username("");
            let _ = target.set_password(None);
            super::printable_snippet(target.as_str().as_bytes(), 200)
        }
        Err(_) => "(an unreadable Location)".to_string(),
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
