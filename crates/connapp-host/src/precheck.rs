//! The check a library passes before it is handed to the dynamic loader.
//!
//! `dlopen` maps every loadable segment of a file straight into memory. A
//! file that ends before one of its segments does (a half-finished copy, a
//! truncated download) is mapped anyway, and the first touch of a page past
//! the end kills the whole process with SIGBUS — no error, no message, every
//! command broken by one bad file. So before loading, connapp parses the ELF
//! header and program headers (with the `object` crate, reading only the
//! bytes it needs) and checks that this is a shared object for this machine
//! whose header, program header table and every `PT_LOAD` segment lie inside
//! the file.
//!
//! The check is about files that are *broken*, not files that are
//! *malicious*: a library that passes still runs its code when loaded.

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, ReadRef};

/// Why a file cannot be a plugin library here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotALibrary {
    /// No ELF header at all (or not one this platform reads).
    #[error("not an ELF file ({0})")]
    NotElf(String),
    /// ELF, but not a shared object (`ET_DYN`).
    #[error("an ELF file, but not a shared library (type {0})")]
    NotShared(u16),
    /// Built for another processor.
    #[error("built for another machine (ELF machine {found}, this connapp runs on {expected})")]
    WrongMachine {
        /// The file's `e_machine`.
        found: u16,
        /// This platform's.
        expected: u16,
    },
    /// The other byte order.
    #[error("built for the other byte order")]
    WrongEndian,
    /// The program header table does not lie inside the file.
    #[error("its program header table is cut off ({0})")]
    BadProgramHeaders(String),
    /// No loadable segment (nothing to map: not a usable library).
    #[error("it has no loadable segment")]
    NoLoadSegment,
    /// No dynamic segment (the loader could not find its symbols).
    #[error("it has no dynamic section")]
    NoDynamic,
    /// A loadable segment ends past the end of the file.
    #[error("it is truncated: loadable segment {index} needs bytes up to {end}, but the file has {len}")]
    Truncated {
        /// Which `PT_LOAD` (0-based among all program headers).
        index: usize,
        /// Where the segment's file bytes end.
        end: u64,
        /// The file's length.
        len: u64,
    },
}

#[cfg(target_arch = "x86_64")]
const MACHINE: Option<elf::Machine> = Some(elf::EM_X86_64);
#[cfg(target_arch = "aarch64")]
const MACHINE: Option<elf::Machine> = Some(elf::EM_AARCH64);
#[cfg(target_arch = "riscv64")]
const MACHINE: Option<elf::Machine> = Some(elf::EM_RISCV);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
const MACHINE: Option<elf::Machine> = None;

#[cfg(target_pointer_width = "64")]
type Header = elf::FileHeader64<Endianness>;
#[cfg(target_pointer_width = "32")]
type Header = elf::FileHeader32<Endianness>;

/// Checks that `data` (the whole file, `len` bytes, read lazily) is a
/// complete shared object for this platform.
pub fn check<'data, R: ReadRef<'data>>(data: R, len: u64) -> Result<(), NotALibrary> {
    let header = Header::parse(data).map_err(|e| NotALibrary::NotElf(e.to_string()))?;
    let endian = header.endian().map_err(|e| NotALibrary::NotElf(e.to_string()))?;
    if endian != Endianness::default() {
        return Err(NotALibrary::WrongEndian);
    }
    let kind = header.e_type(endian);
    if kind != elf::ET_DYN {
        return Err(NotALibrary::NotShared(kind.0));
    }
    if let Some(expected) = MACHINE {
        let found = header.e_machine(endian);
        if found != expected {
            return Err(NotALibrary::WrongMachine {
                found: found.0,
                expected: expected.0,
            });
        }
    }
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| NotALibrary::BadProgramHeaders(e.to_string()))?;
    let (mut loads, mut dynamic) = (0usize, false);
    for (index, ph) in phdrs.iter().enumerate() {
        match ph.p_type(endian) {
            elf::PT_LOAD => {
                loads += 1;
                // u32 in 32-bit ELF, u64 in 64-bit: the conversion is real on one of them.
                #[allow(clippy::useless_conversion)]
                let (offset, size): (u64, u64) = (ph.p_offset(endian).into(), ph.p_filesz(endian).into());
                let end = offset.saturating_add(size);
                if end > len {
                    return Err(NotALibrary::Truncated { index, end, len });
                }
            }
            elf::PT_DYNAMIC => dynamic = true,
            _ => {}
        }
    }
    if loads == 0 {
        return Err(NotALibrary::NoLoadSegment);
    }
    if !dynamic {
        return Err(NotALibrary::NoDynamic);
    }
    Ok(())
}

/// [`check`] on a file, reading only the header and program headers.
pub fn check_file(path: &std::path::Path) -> Result<(), std::io::Error> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let cache = object::ReadCache::new(file);
    check(&cache, len).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared library this test process has mapped (libc, at least).
    fn a_loaded_library() -> std::path::PathBuf {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.starts_with('/') && p.contains(".so"))
            .map(std::path::PathBuf::from)
            .expect("a mapped .so")
    }

    #[test]
    fn a_complete_library_passes_and_a_truncated_one_is_refused() {
        let path = a_loaded_library();
        check_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let bytes = std::fs::read(&path).expect("read");
        let cut = &bytes[..3000];
        let e = check(cut, cut.len() as u64).expect_err("truncated");
        assert!(matches!(e, NotALibrary::Truncated { len: 3000, .. }), "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn other_files_are_refused_for_what_they_are() {
        assert!(matches!(
            check(b"not a library at all".as_slice(), 20),
            Err(NotALibrary::NotElf(_))
        ));
        assert!(matches!(
            check(&[0x7f, b'E', b'L', b'F'][..], 4),
            Err(NotALibrary::NotElf(_))
        ));
        // The test binary: complete, but an executable or a PIE; never an error but these.
        let exe = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
        match check(exe.as_slice(), exe.len() as u64) {
            Ok(()) | Err(NotALibrary::NotShared(_)) => {}
            Err(e) => panic!("the test binary: {e}"),
        }
    }
}
