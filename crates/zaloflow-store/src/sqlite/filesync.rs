//! Syncing the database file to disk beside the writer, through SQLite's own file descriptor.
//!
//! The checkpointer syncs the file after each PASSIVE checkpoint so that the RESTART, which
//! every commit waits for, has little left to flush (`checkpointer` in `store::sqlite`). That
//! sync must not go through a descriptor of our own: POSIX record locks belong to the process
//! and the file, and closing *any* descriptor of the file drops every lock the process holds
//! on it, SQLite's included. Without its SHARED lock, another process on the same file
//! (`zaloflow tick`, a second `serve`, a test reading the database) takes the EXCLUSIVE lock
//! when its last connection closes, concludes it was the last user, checkpoints and deletes
//! the WAL under the writer's feet: "database disk image is malformed" (found by
//! `tests/fault_sigkill.rs`, whose checker reads the database while the service runs). So the
//! sync goes through the `xSync` method of a connection SQLite keeps open, which SQLite's VFS
//! closes with its locks in mind.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::ffi;

/// A connection kept open on the database file, only to sync the file through it.
#[derive(Clone)]
pub(crate) struct FileSync {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl FileSync {
    pub(crate) fn open(path: &Path) -> rusqlite::Result<FileSync> {
        // Opening the connection opens the main database file; it never runs a statement.
        let conn = rusqlite::Connection::open(path)?;
        Ok(FileSync {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Flushes the database file's written pages to the disk (blocking: call it from a
    /// blocking thread).
    pub(crate) fn sync(&self) -> rusqlite::Result<()> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let fail = |rc| rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None);
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: `conn.handle()` is an open connection, used by no other thread while the
        // lock above is held. SQLITE_FCNTL_FILE_POINTER writes the `sqlite3_file*` of its
        // main database into `file`; that file stays open as long as the connection does,
        // and `xSync` on it is what SQLite itself calls to sync the file (on Unix, an
        // fsync of the descriptor), with no other state touched.
        unsafe {
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&mut file as *mut *mut ffi::sqlite3_file).cast(),
            );
            if rc != ffi::SQLITE_OK {
                return Err(fail(rc));
            }
            if file.is_null() || (*file).pMethods.is_null() {
                return Ok(());
            }
            let Some(x_sync) = (*(*file).pMethods).xSync else {
                return Ok(());
            };
            let rc = x_sync(file, ffi::SQLITE_SYNC_NORMAL);
            if rc != ffi::SQLITE_OK {
                return Err(fail(rc));
            }
        }
        Ok(())
    }
}
