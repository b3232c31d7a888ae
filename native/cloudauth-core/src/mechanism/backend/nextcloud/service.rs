//! The service account: its credentials, and their back-off once Nextcloud refused them.

use super::*;

/// Why a service account cannot be used (never shows the password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAccountError {
    /// The user name is empty or contains ':' or a control character.
    User,
    /// The password is empty or contains a control character.
    Password,
}

/// The account `isuser` and the shared roster ask as.
#[derive(Clone)]
pub struct ServiceAccount {
    pub(super) user: String,
    /// Whether the password has the form of a Nextcloud app password.
    pub(super) app_password_like: bool,
    /// `Basic …`, marked sensitive so that reqwest never prints it.
    pub(super) authorization: HeaderValue,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written: the header holds the password.
        write!(f, "ServiceAccount({})", self.user)
    }
}

impl ServiceAccount {
    /// The account `user` with `password` (an app password is best: it can
    /// be revoked alone and skips the password hash's cost).
    pub fn new(user: &str, password: Secret) -> Result<Self, ServiceAccountError> {
        if !basic_auth_user_ok(user) {
            return Err(ServiceAccountError::User);
        }
        let p = password.expose();
        if p.is_empty() || p.iter().any(|b| b.is_ascii_control()) {
            return Err(ServiceAccountError::Password);
        }
        Ok(ServiceAccount {
            user: user.to_string(),
            app_password_like: looks_like_app_password(p),
            authorization: basic_authorization(user, p),
        })
    }

    /// The account's name.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// Whether `password` has the form of the app passwords Nextcloud mints
/// (Personal settings → Security, login flow v2): 72 ASCII letters and
/// digits. Only the form: whether it is one only Nextcloud knows.
pub(crate) fn looks_like_app_password(password: &[u8]) -> bool {
    password.len() == 72 && password.iter().all(u8::is_ascii_alphanumeric)
}

/// Whether HTTP basic auth can carry `user` as the login: not empty, no
/// ':' (the separator, so the login would be cut there), no control
/// characters (which no Nextcloud login contains and headers mangle).
pub(crate) fn basic_auth_user_ok(user: &str) -> bool {
    !user.is_empty() && !user.contains(':') && !user.chars().any(char::is_control)
}

/// Whether HTTP basic auth can carry `password`: not empty, no control
/// characters (':' is fine: the login ends at the first one).
pub(crate) fn basic_auth_password_ok(password: &str) -> bool {
    !password.is_empty() && !password.chars().any(char::is_control)
}

/// The `Authorization` value for `user`:`password`, marked sensitive.
pub(super) fn basic_authorization(user: &str, password: &[u8]) -> HeaderValue {
    let mut raw = Vec::with_capacity(user.len() + 1 + password.len());
    raw.extend_from_slice(user.as_bytes());
    raw.push(b':');
    raw.extend_from_slice(password);
    let encoded = format!("Basic {}", STANDARD.encode(&raw));
    // Base64 and "Basic " are visible ASCII, always a valid header value;
    // the fallback only keeps this function total.
    let mut value =
        HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// When the service account's credentials were refused, and what its
/// password file looked like then.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal {
    pub(super) at: Instant,
    pub(super) file: Option<FileStamp>,
}

/// A file's modification time and length: a change means the admin wrote it.
pub(super) type FileStamp = (Option<SystemTime>, u64);

pub(super) fn file_stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len()))
}

/// The service account as used: its credentials (replaced when the
/// password file changes after a refusal) and the last refusal.
pub(super) struct Service {
    pub(super) user: String,
    pub(super) password_file: Option<PathBuf>,
    pub(super) account: RwLock<ServiceAccount>,
    pub(super) refused: Mutex<Option<Refusal>>,
    pub(super) backoff: Duration,
}

impl Service {
    pub(super) fn new(account: ServiceAccount) -> Self {
        Service {
            user: account.user.clone(),
            password_file: None,
            account: RwLock::new(account),
            refused: Mutex::new(None),
            backoff: SERVICE_BACKOFF,
        }
    }

    pub(super) fn refused(&self) -> MutexGuard<'_, Option<Refusal>> {
        // Poisoned only by a panic elsewhere; the value stays usable.
        self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn current(&self) -> ServiceAccount {
        self.account
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The credentials to send, or [`BackendError::ServicePaused`] while a
    /// refusal stands: neither has the password file changed (then its new
    /// content is used at once) nor has the back-off passed (then one
    /// request tries the old credentials again).
    pub(super) fn credentials(&self) -> Result<ServiceAccount, BackendError> {
        let mut refused = self.refused();
        let Some(r) = *refused else {
            return Ok(self.current());
        };
        if let Some(path) = &self.password_file {
            let now = file_stamp(path);
            if now != r.file {
                match self.reload(path) {
                    Some(true) => {
                        info!(
                            "{}: changed; sending service-user {}'s new password to Nextcloud",
                            path.display(),
                            self.user
                        );
                        *refused = None;
                        return Ok(self.current());
                    }
                    // Touched, same password: still the refused one.
                    // Unreadable (logged): not re-read until it changes again.
                    Some(false) | None => {
                        *refused = Some(Refusal { file: now, ..r });
                    }
                }
            }
        }
        let ago = r.at.elapsed();
        if ago >= self.backoff {
            // One more try; a refusal starts the back-off again.
            *refused = None;
            return Ok(self.current());
        }
        Err(BackendError::ServicePaused {
            user: self.user.clone(),
            ago_s: ago.as_secs(),
            retry_s: (self.backoff - ago).as_secs().max(1),
        })
    }

    /// Re-reads the password file: `Some(true)` when it now holds another
    /// usable password (taken), `Some(false)` when the same, `None` when
    /// unreadable or unusable (logged; the old credentials stay).
    pub(super) fn reload(&self, path: &Path) -> Option<bool> {
        let read = match crate::secret::read_file(path) {
            Ok(r) => r,
            Err(e) => {
                warn!("service-password-file: {e}");
                return None;
            }
        };
        let new = match ServiceAccount::new(&self.user, read.secret) {
            Ok(a) => a,
            Err(_) => {
                warn!(
                    "{}: the password contains a control character, which HTTP basic auth cannot carry; not used",
                    path.display()
                );
                return None;
            }
        };
        let mut account = self.account.write().unwrap_or_else(|p| p.into_inner());
        let same: bool = account
            .authorization
            .as_bytes()
            .ct_eq(new.authorization.as_bytes())
            .into();
        if same {
            return Some(false);
        }
        *account = new;
        Some(true)
    }

    /// After a request as the service account: a refusal of its
    /// credentials starts the back-off, logged once.
    pub(super) fn note(&self, e: &BackendError) {
        if !matches!(e, BackendError::ServiceRefused { .. }) {
            return;
        }
        let mut refused = self.refused();
        if refused.is_some() {
            return;
        }
        *refused = Some(Refusal {
            at: Instant::now(),
            file: self.password_file.as_deref().and_then(file_stamp),
        });
        warn!(
            "{e}; not sent again until service-password-file changes, or for {} min \
             (each refused login is a failure Nextcloud's brute-force protection records against this \
             server's address, and 11 in 30 minutes block every login from it); meanwhile isuser and \
             shared rosters cannot tell",
            self.backoff.as_secs() / 60
        );
    }
}
