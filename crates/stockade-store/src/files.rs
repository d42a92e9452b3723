//! Files and directories Stockade creates, created private to the user that runs it: the
//! log, the read models and the secrets beside them hold every order and token, so a new
//! data directory is `0700` and a new file `0600` (on Unix; elsewhere the platform's
//! defaults). Existing directories and files keep the modes their operator gave them.

use std::io::Write;
use std::path::Path;

/// Creates `dir` and its missing parents; the directories created are owner-only.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates an empty owner-only file at `path` unless one exists, so that a database opened
/// there next (and the journal files SQLite gives the same mode) is private.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    match open_new(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to a new owner-only file at `path` and syncs it; fails with
/// `AlreadyExists` if there is one.
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = open_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn open_new(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The permission bits, or 0 for a path that does not exist.
    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    #[test]
    fn new_directories_and_files_are_owner_only_and_old_ones_are_left_alone() {
        let root = tempfile::tempdir().expect("dir");
        let dir = root.path().join("a/b");
        private_dir(&dir).expect("create");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let file = dir.join("db");
        private_file(&file).expect("create");
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        private_file(&file).expect("exists");
        assert_eq!(mode(&file), 0o640, "an existing file keeps its mode");
        assert!(create_private(&file, b"x").is_err());
    }
}
