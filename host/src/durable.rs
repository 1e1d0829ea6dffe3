//! Small files that must survive a crash: the node's state checkpoint, the merchant
//! API's shops, tokens and settlements, the wallet's cards and kept transactions, key
//! files. Each is written whole beside its place, made its owner's alone, synced, and
//! only then put in place, and the folder is synced so that the new name is on disk too:
//! after a crash the file is the old version or the new one, never a part of one, and
//! once the call returns the new one stays.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The mode of every file written here: read and written by its owner alone.
pub const FILE_MODE: u32 = 0o600;

/// Writes `bytes` to `path`, replacing the file there, durably (see above). The folder
/// must exist. Two writers of one file at once each leave a whole version; the last
/// rename wins.
pub fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    put(path, bytes, true)
}

/// Writes `bytes` to a new file at `path`, durably; a file already there is never
/// replaced (`AlreadyExists`), even by a writer racing this one. For keys and cards.
pub fn create_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    put(path, bytes, false)
}

fn put(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    let aside = aside(path)?;
    let written = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&aside)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let placed =
        written.and_then(|()| if replace { fs::rename(&aside, path) } else { fs::hard_link(&aside, path) });
    if placed.is_err() || !replace {
        // Gone already where the rename happened; otherwise nothing is left beside the file.
        let _ = fs::remove_file(&aside);
    }
    placed?;
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    fs::File::open(folder)?.sync_all()
}

/// A name beside `path` that no other writer uses: `NAME.tmp-` and 16 random hex digits.
fn aside(path: &Path) -> io::Result<PathBuf> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display())));
    };
    let mut aside = name.to_os_string();
    aside.push(format!(".tmp-{:016x}", rand::random::<u64>()));
    Ok(path.with_file_name(aside))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_write_replaces_the_file_whole_private_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.json");
        fs::write(&path, b"the old version, longer than the new one").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_durable(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new", "the new bytes and nothing of the old file");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(dir.path()), ["shop.json"], "no file written aside is left");
        write_durable(&dir.path().join("fresh.bin"), b"").unwrap();
        assert_eq!(mode(&dir.path().join("fresh.bin")), 0o600, "a new file is private too");
        assert_eq!(names(dir.path()), ["fresh.bin", "shop.json"]);
    }

    #[test]
    fn a_create_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("town.key");
        create_durable(&path, b"first").unwrap();
        assert_eq!(mode(&path), 0o600);
        let error = create_durable(&path, b"second").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(names(dir.path()), ["town.key"], "the refused write leaves nothing beside it");
    }

    #[test]
    fn a_write_into_a_missing_folder_fails_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("shop.json");
        assert_eq!(write_durable(&path, b"x").unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn concurrent_writers_of_one_file_each_leave_a_whole_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-tokens");
        let versions: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 4096]).collect();
        std::thread::scope(|scope| {
            for version in &versions {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..20 {
                        write_durable(path, version).unwrap();
                    }
                });
            }
        });
        assert!(versions.contains(&fs::read(&path).unwrap()), "one writer's whole version");
        assert_eq!(names(dir.path()), ["admin-tokens"]);
    }
}
