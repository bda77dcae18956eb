//! Blocking file I/O on the [thread pool](crate::threadpool), for the common cases: the
//! calling greenlet waits cooperatively while a pool thread does the system calls. (Regular
//! files are always "ready" to a poller, so they cannot be driven like sockets.)
//!
//! ```
//! let path = std::env::temp_dir().join(format!("grove-fs-doc-{}", std::process::id()));
//! grove::fs::write(&path, "hello").unwrap();
//! assert_eq!(grove::fs::read_to_string(&path).unwrap(), "hello");
//! grove::fs::remove_file(&path).unwrap();
//! ```

use crate::threadpool;
use std::io;
use std::path::{Path, PathBuf};

/// Runs a std file operation on the pool, naming the path in its error.
fn on_pool<T: Send + 'static>(
    path: &Path,
    what: &'static str,
    f: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let p: PathBuf = path.to_path_buf();
    let shown = path.display().to_string();
    match threadpool::run(move || f(&p)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(io::Error::new(
            e.kind(),
            format!("grove: {what} {shown}: {e}"),
        )),
        Err(e) => Err(io::Error::other(format!("grove: {what} {shown}: {e}"))),
    }
}

/// Reads a whole file (`std::fs::read` on the pool).
pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    on_pool(path.as_ref(), "read", |p| std::fs::read(p))
}

/// Reads a whole file as UTF-8 (`std::fs::read_to_string` on the pool).
pub fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    on_pool(path.as_ref(), "read", |p| std::fs::read_to_string(p))
}

/// Writes a whole file, creating or truncating it (`std::fs::write` on the pool).
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let data = contents.as_ref().to_vec();
    on_pool(path.as_ref(), "write", move |p| std::fs::write(p, data))
}

/// Appends to a file, creating it if needed.
pub fn append(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let data = contents.as_ref().to_vec();
    on_pool(path.as_ref(), "append to", move |p| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)?
            .write_all(&data)
    })
}

/// A file's metadata (`std::fs::metadata` on the pool).
pub fn metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    on_pool(path.as_ref(), "stat", |p| std::fs::metadata(p))
}

/// Removes a file (`std::fs::remove_file` on the pool).
pub fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool(path.as_ref(), "remove", |p| std::fs::remove_file(p))
}
