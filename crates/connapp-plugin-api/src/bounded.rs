//! Reading what a user names — a file, a device, a pipe — with a limit.
//!
//! Anything connapp reads from a path or stream it did not write itself goes
//! through here, so `--body /dev/zero` or a 10 GB declaration costs at most
//! the limit in memory and fails with a message naming the path, its true
//! size (when it has one) and the limit. Plugins use it for the files their
//! settings name (a token file, a CA certificate).

use std::fmt;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadError {
    /// Larger than the limit.
    TooLarge {
        /// What the file is for ("the declaration", "the webhook body").
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Its size, when it is a regular file (a device or pipe has none).
        size: Option<u64>,
        /// The limit, in bytes.
        limit: u64,
    },
    /// Cannot be read at all (missing, a directory, no permission, not UTF-8).
    Io {
        /// What the file is for.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

impl ReadError {
    /// The underlying error kind, for callers that treat "not found" specially.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            ReadError::Io { source, .. } => Some(source.kind()),
            ReadError::TooLarge { .. } => None,
        }
    }
}

/// `262144` as `256 KiB`, `10485760` as `10 MiB`, small numbers as bytes.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::TooLarge {
                what,
                path,
                size: Some(size),
                limit,
            } => write!(
                f,
                "{what} {} is {} ({size} bytes); the limit is {} ({limit} bytes)",
                path.display(),
                human_size(*size),
                human_size(*limit)
            ),
            ReadError::TooLarge {
                what,
                path,
                size: None,
                limit,
            } => write!(
                f,
                "{what} {} holds more than the limit of {} ({limit} bytes); it is not a regular file, so it was read only up to the limit",
                path.display(),
                human_size(*limit)
            ),
            ReadError::Io { what, path, source } => {
                write!(f, "cannot read {what} {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { source, .. } => Some(source),
            ReadError::TooLarge { .. } => None,
        }
    }
}

/// Reads the file at `path`, at most `limit` bytes. A regular file larger
/// than the limit is refused before a byte is read; anything else (a
/// device, a pipe, a file that grows) is read up to the limit and refused
/// if there is more.
pub fn read_file(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(io(io::Error::new(io::ErrorKind::IsADirectory, "it is a directory")));
    }
    let regular = meta.is_file();
    if regular && meta.len() > limit {
        return Err(ReadError::TooLarge {
            what,
            path: path.to_path_buf(),
            size: Some(meta.len()),
            limit,
        });
    }
    let mut buf = Vec::with_capacity(if regular { meta.len() as usize } else { 8192 });
    file.take(limit.saturating_add(1)).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            what,
            path: path.to_path_buf(),
            size: None,
            limit,
        });
    }
    Ok(buf)
}

/// [`read_file`], as UTF-8 text.
pub fn read_text(what: &'static str, path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read_file(what, path, limit)?;
    String::from_utf8(bytes).map_err(|e| ReadError::Io {
        what,
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
        ),
    })
}

/// Reads one line of at most `limit` bytes (an answer at a prompt, a pasted URL).
/// A longer line is an error, not a truncated answer.
pub fn read_line(input: &mut impl BufRead, limit: u64) -> io::Result<String> {
    let mut line = String::new();
    input.take(limit.saturating_add(1)).read_line(&mut line)?;
    if line.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the line is longer than {}", human_size(limit)),
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("connapp-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn a_large_file_is_refused_with_its_true_size() {
        let p = dir().join("big");
        std::fs::write(&p, vec![b'x'; 10 * 1024 * 1024]).expect("write");
        let e = read_file("the declaration", &p, 256 * 1024).expect_err("too large");
        let m = e.to_string();
        assert!(m.contains("is 10 MiB (10485760 bytes)"), "{m}");
        assert!(m.contains("the limit is 256 KiB (262144 bytes)"), "{m}");
        assert!(m.contains(&p.display().to_string()), "{m}");
        std::fs::write(&p, b"small").expect("write");
        assert_eq!(read_file("x", &p, 5).expect("fits"), b"small");
    }

    #[test]
    fn a_device_is_read_only_up_to_the_limit() {
        let e = read_file("the webhook body", Path::new("/dev/zero"), 1024).expect_err("endless");
        assert!(
            matches!(
                e,
                ReadError::TooLarge {
                    size: None,
                    limit: 1024,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("/dev/zero"), "{e}");
    }

    #[test]
    fn directories_and_missing_files_are_io_errors() {
        let e = read_file("the declaration", Path::new("/"), 10).expect_err("dir");
        assert_eq!(e.io_kind(), Some(io::ErrorKind::IsADirectory));
        let e = read_file("the declaration", &dir().join("missing"), 10).expect_err("missing");
        assert_eq!(e.io_kind(), Some(io::ErrorKind::NotFound));
    }

    #[test]
    fn lines_are_bounded() {
        let mut ok = io::Cursor::new(b"yes\nmore".to_vec());
        assert_eq!(read_line(&mut ok, 10).expect("line"), "yes\n");
        let mut long = io::Cursor::new(vec![b'a'; 100]);
        assert!(read_line(&mut long, 10).is_err());
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(12), "12 bytes");
    }
}
