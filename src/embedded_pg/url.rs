//! Connection URLs and the socket-directory setting for the private server.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::PORT;

/// The value for `unix_socket_directories`, a comma-separated list in which an element may
/// be double-quoted (with `""` for a quote) to protect commas and spaces in the path.
pub(super) fn socket_dirs_setting(dir: &Path) -> std::ffi::OsString {
    let mut quoted = Vec::with_capacity(dir.as_os_str().len() + 2);
    quoted.push(b'"');
    for &b in dir.as_os_str().as_bytes() {
        if b == b'"' {
            quoted.push(b'"');
        }
        quoted.push(b);
    }
    quoted.push(b'"');
    OsStr::from_bytes(&quoted).to_owned()
}

pub(super) fn socket_url(socket_dir: &Path, port: u16, dbname: &str) -> String {
    let mut url = format!(
        "postgres://postgres@/{}?host={}",
        percent_encode(dbname.as_bytes()),
        percent_encode(socket_dir.as_os_str().as_bytes())
    );
    if port != PORT {
        let _ = write!(url, "&port={port}");
    }
    url
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so that any path or
/// database name survives URL parsing (`/`, `?`, `&`, `%`, `#`, spaces, non-UTF-8 bytes).
pub(super) fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_percent_encoded() {
        assert_eq!(
            socket_url(Path::new("/tmp/a b/x&y"), PORT, "my db"),
            "postgres://postgres@/my%20db?host=%2Ftmp%2Fa%20b%2Fx%26y"
        );
        assert_eq!(
            socket_url(Path::new("/s"), 6543, "d"),
            "postgres://postgres@/d?host=%2Fs&port=6543"
        );
    }

    #[test]
    fn socket_dir_setting_is_quoted() {
        assert_eq!(
            socket_dirs_setting(Path::new("/a,b/\"c\"")),
            OsStr::new("\"/a,b/\"\"c\"\"\"")
        );
    }
}
