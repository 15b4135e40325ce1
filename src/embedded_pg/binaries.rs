//! Where the PostgreSQL server programs are.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::EmbeddedPgError;

/// Directory holding the PostgreSQL server programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bindir: PathBuf,
}

impl PgBinaries {
    pub(super) fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }

    pub(super) fn postgres(&self) -> PathBuf {
        self.bindir.join("postgres")
    }
}

/// Looks for `initdb` and `postgres` in one directory: on PATH, then `pg_config --bindir`,
/// then `/usr/lib/postgresql/*/bin` (highest version first).
///
/// The last place matters on Debian and Ubuntu, whose server package does not put the
/// server programs on PATH.
pub fn find_binaries() -> Result<PgBinaries, EmbeddedPgError> {
    let path_dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    // Later sources are only consulted (and pg_config only run) if earlier ones fail.
    path_dirs
        .into_iter()
        .chain(std::iter::once_with(pg_config_bindir).flatten())
        .chain(std::iter::once_with(debian_bindirs).flatten())
        .find(|dir| is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres")))
        .map(|bindir| PgBinaries { bindir })
        .ok_or(EmbeddedPgError::BinariesNotFound)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let dir = std::str::from_utf8(&out.stdout).ok()?.trim();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn debian_bindirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

pub(super) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_binaries_finds_server_programs() {
        let bins = find_binaries().expect("PostgreSQL server binaries should be installed");
        assert!(is_executable(&bins.initdb()), "{bins:?}");
        assert!(is_executable(&bins.postgres()), "{bins:?}");
    }
}
