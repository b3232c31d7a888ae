//! A shared API secret that never shows up in logs or debug output, and
//! reading it from a file (so that it need not be on a command line).

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The JSXC API secret shared between the XMPP side and the cloud.
///
/// `Debug` and `Display` print a placeholder, so a secret cannot leak
/// through a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the raw secret bytes (as configured, UTF-8 for JSXC).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The raw bytes, for keying a MAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// True when no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret file that cannot be used.
#[derive(Debug, Error)]
pub(crate) enum SecretFileError {
    /// The file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The first line is empty.
    #[error("secret file {0} is empty")]
    Empty(PathBuf),
}

/// A secret read from a file, and whether other users can read that file.
#[derive(Debug)]
pub struct SecretFile {
    /// The secret: the file's first line, without its line ending.
    pub secret: Secret,
    /// True when the file is readable by other users (worth a warning).
    pub world_readable: bool,
}

/// True when `path` is readable by users other than its owner and group.
pub fn world_readable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o004 != 0)
        .unwrap_or(false)
}

/// Reads a secret file: its first line, without the line ending.
pub(crate) fn read_file(path: &Path) -> Result<SecretFile, SecretFileError> {
    let text = fs::read_to_string(path).map_err(|source| SecretFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(SecretFileError::Empty(path.to_path_buf()));
    }
    Ok(SecretFile {
        secret: Secret::new(first.as_bytes()),
        world_readable: world_readable(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files() {
        let dir = std::env::temp_dir().join(format!("cloudauth-secret-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s");
        fs::write(&f, "top:secret\r\nsecond line\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let read = read_file(&f).unwrap();
        assert_eq!(read.secret.expose(), b"top:secret");
        assert!(!read.world_readable);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_file(&f).unwrap().world_readable);
        fs::write(&f, "\nx\n").unwrap();
        assert!(matches!(read_file(&f), Err(SecretFileError::Empty(_))));
        assert!(matches!(
            read_file(&dir.join("missing")),
            Err(SecretFileError::Read { .. })
        ));
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), b"hunter2");
    }
}
