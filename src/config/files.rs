//! Secrets from files: `DATABASE_URL_FILE`, `REDIS_URL_FILE` and `RAMPART_MASTER_KEY_FILE`.
//!
//! When a `*_FILE` variable is set, its variable's value is the content of that file, its
//! trailing line ends removed (the form Docker and compose secrets and systemd credentials
//! take). Setting both forms is an error, so a stale value can never silently win; so is an
//! unreadable or empty file. Errors name the variable and the path, never the content.

use std::collections::{HashMap, HashSet};

use super::ConfigError;

/// The variables that may come from a file, each with its `*_FILE` variant.
pub const FROM_FILES: [(&str, &str); 3] = [
    ("DATABASE_URL", "DATABASE_URL_FILE"),
    ("REDIS_URL", "REDIS_URL_FILE"),
    ("RAMPART_MASTER_KEY", "RAMPART_MASTER_KEY_FILE"),
];

/// Replaces each set `*_FILE` variable by its variable with the file's content. Returns the
/// variables and the names of those that were read from a file.
pub fn resolve(
    mut vars: HashMap<String, String>,
) -> Result<(HashMap<String, String>, HashSet<&'static str>), ConfigError> {
    let mut from_file = HashSet::new();
    for (var, file_var) in FROM_FILES {
        let Some(path) = set(&vars, file_var) else {
            continue;
        };
        if set(&vars, var).is_some() {
            return Err(ConfigError {
                var: file_var,
                reason: format!("{var} is set too; set only one of {var} and {file_var}"),
            });
        }
        let path = path.to_string();
        let content = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            var: file_var,
            reason: format!("cannot read {path}: {e}"),
        })?;
        let value = content.trim_end_matches(['\n', '\r']);
        if value.trim().is_empty() {
            return Err(ConfigError {
                var: file_var,
                reason: format!("{path} is empty"),
            });
        }
        vars.insert(var.to_string(), value.to_string());
        from_file.insert(var);
    }
    Ok((vars, from_file))
}

/// The variable's value when it is set to something other than blanks.
fn set<'a>(vars: &'a HashMap<String, String>, var: &str) -> Option<&'a str> {
    vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The name to blame for a bad value of `var`: its `*_FILE` variant when it came from a file.
pub fn source_of(var: &'static str, from_file: &HashSet<&'static str>) -> &'static str {
    match FROM_FILES.iter().find(|(v, _)| *v == var) {
        Some((_, file_var)) if from_file.contains(var) => file_var,
        _ => var,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::PathBuf;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    /// A private directory for one test, removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Dir {
            let dir = std::env::temp_dir().join(format!("rampart-cfg-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn file(&self, name: &str, content: &str) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, content).unwrap();
            path.to_str().unwrap().to_string()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_read_from_files_without_their_line_end() {
        let dir = Dir::new();
        let db = dir.file("db", "postgres://rampart:s3cret@db/rampart\n");
        let redis = dir.file("redis", "redis://:pw@redis:6379/0\r\n");
        let key = dir.file("key", &format!("{KEY}\n"));
        let c = Config::from_map(vars(&[
            ("DATABASE_URL_FILE", &db),
            ("REDIS_URL_FILE", &redis),
            ("RAMPART_MASTER_KEY_FILE", &key),
        ]))
        .unwrap();
        assert_eq!(
            c.database_url.as_deref(),
            Some("postgres://rampart:s3cret@db/rampart")
        );
        assert_eq!(c.redis_url.as_deref(), Some("redis://:pw@redis:6379/0"));
        assert_eq!(c.master_key.as_deref(), Some(KEY));
    }

    #[test]
    fn setting_a_variable_and_its_file_is_refused() {
        let dir = Dir::new();
        let db = dir.file("db", "postgres://from-file@db/rampart");
        for (var, file_var, value) in [
            (
                "DATABASE_URL",
                "DATABASE_URL_FILE",
                "postgres://inline-secret@db/x",
            ),
            ("REDIS_URL", "REDIS_URL_FILE", "redis://:inline-secret@r/0"),
            ("RAMPART_MASTER_KEY", "RAMPART_MASTER_KEY_FILE", KEY),
        ] {
            let err = Config::from_map(vars(&[(var, value), (file_var, &db)])).unwrap_err();
            assert_eq!(err.var, file_var);
            let text = err.to_string();
            assert!(text.contains(var) && text.contains("only one"), "{text}");
            assert!(
                !text.contains(value) && !text.contains("from-file"),
                "{text}"
            );
        }
    }

    #[test]
    fn an_unreadable_file_names_its_variable() {
        let dir = Dir::new();
        let missing = dir.0.join("missing").to_str().unwrap().to_string();
        let a_directory = dir.0.to_str().unwrap().to_string();
        for (file_var, path) in [
            ("DATABASE_URL_FILE", &missing),
            ("REDIS_URL_FILE", &a_directory),
            ("RAMPART_MASTER_KEY_FILE", &missing),
        ] {
            let err = Config::from_map(vars(&[(file_var, path)])).unwrap_err();
            assert_eq!(err.var, file_var);
            assert!(err.to_string().contains("cannot read"), "{err}");
        }
        let empty = dir.file("empty", "\n");
        let err = Config::from_map(vars(&[("DATABASE_URL_FILE", &empty)])).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL_FILE");
    }

    #[test]
    fn a_bad_key_in_a_file_blames_the_file_variable_without_printing_it() {
        let dir = Dir::new();
        let short = "c2hvcnQgYnV0IHNlY3JldA==";
        let key = dir.file("key", &format!("{short}\n"));
        let err = Config::from_map(vars(&[("RAMPART_MASTER_KEY_FILE", &key)])).unwrap_err();
        assert_eq!(err.var, "RAMPART_MASTER_KEY_FILE");
        assert!(!err.to_string().contains(short), "{err}");
    }

    #[test]
    fn unset_or_blank_file_variables_change_nothing() {
        let c = Config::from_map(vars(&[
            ("DATABASE_URL", "postgres://u@h/d"),
            ("DATABASE_URL_FILE", "  "),
        ]))
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://u@h/d"));
        assert!(c.redis_url.is_none() && c.master_key.is_none());
    }
}
