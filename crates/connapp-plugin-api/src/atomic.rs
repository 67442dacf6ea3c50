//! Writing a file so that readers see the old contents or the new ones,
//! never a part: a temp file in the same directory (created exclusively,
//! with the final mode from the start), written, fsync'd, renamed over the
//! target, and the directory fsync'd. The one implementation the host and
//! the plugins share.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The temp file's name for `path`: `.NAME.tmp.PID.N` beside it, unique
/// within the process and across processes.
fn temp_for(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes `contents` to `path` atomically, the file created with `mode`
/// (on Unix; the umask applies, so 0o600 for secrets, 0o666 for the rest).
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_file_with(path, contents, mode, || {})
}

/// [`write_file`], calling `before_rename` between the durable temp file and
/// the rename (a test's fault point).
pub fn write_file_with(path: &Path, contents: &[u8], mode: u32, before_rename: impl FnOnce()) -> io::Result<()> {
    let tmp = temp_for(path);
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        let _ = mode;
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        before_rename();
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_with_the_mode_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("connapp-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("f");
        write_file(&p, b"one", 0o600).expect("write");
        write_file(&p, b"two", 0o600).expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(m, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(&dir).expect("ls").flatten().collect();
        assert_eq!(left.len(), 1, "a temp file was left behind");
        // A failure (the target is a directory) leaves no temp file either.
        std::fs::create_dir_all(dir.join("d")).expect("dir");
        assert!(write_file(&dir.join("d"), b"x", 0o600).is_err());
        assert_eq!(std::fs::read_dir(&dir).expect("ls").count(), 2);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
