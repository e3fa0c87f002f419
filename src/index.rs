//! The host-wide fingerprint index: an SQLite file that maps certificate
//! fingerprints to accounts and keeps usage counters.
//!
//! Prosody storage is the source of truth. Everything here except the usage
//! columns can be rebuilt from it, so the index is recreated empty when the
//! file is missing, corrupt or of another schema version, and the caller
//! refills it. Callers confirm every row they read against storage before acting on
//! it, so a stale row can only cause a refusal, never a login.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use once_cell::sync::Lazy;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Error;

/// Schema version stored in SQLite's `user_version`; a file with another
/// value is recreated.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE certs (
    host TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    not_after INTEGER NOT NULL,
    last_login INTEGER,
    login_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (host, fingerprint)
);
CREATE INDEX certs_by_user ON certs (host, username);
CREATE INDEX certs_by_expiry ON certs (host, not_after);
CREATE TABLE hosts (
    host TEXT PRIMARY KEY,
    built_at INTEGER NOT NULL
);
";

/// One index row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Account name (the JID's localpart).
    pub username: String,
    /// Certificate name within the account.
    pub name: String,
    /// SHA-256 fingerprint, lowercase hexadecimal.
    pub fingerprint: String,
    /// notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
    /// Time of the last certificate login, in seconds since the Unix epoch.
    pub last_login: Option<i64>,
    /// Number of certificate logins recorded since the row was written.
    pub login_count: i64,
}

/// The state in which [`Index::open`] found the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenState {
    /// The file existed with the current schema.
    Existing,
    /// The file did not exist and was created empty.
    Created,
    /// The file was corrupt or of another schema version and was recreated
    /// empty.
    Recreated,
}

/// An open index file.
#[derive(Debug)]
pub struct Index {
    conn: Connection,
}

fn index_error(action: &str, err: impl std::fmt::Display) -> Error {
    Error::Index {
        reason: format!("{action}: {err}"),
    }
}

impl Index {
    /// Opens the index at `path`, creating it when it is missing and
    /// recreating it when it is corrupt or of another schema version.
    pub fn open(path: &Path) -> Result<(Index, OpenState), Error> {
        let existed = path.exists();
        if existed {
            match Self::open_checked(path) {
                Ok(index) => return Ok((index, OpenState::Existing)),
                Err(_) => remove_database_files(path)?,
            }
        }
        let index = Self::create(path)?;
        let state = if existed {
            OpenState::Recreated
        } else {
            OpenState::Created
        };
        Ok((index, state))
    }

    /// Opens an existing file and checks its integrity and schema version.
    fn open_checked(path: &Path) -> Result<Index, Error> {
        let conn = Connection::open(path).map_err(|e| index_error("open", e))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(|e| index_error("integrity check", e))?;
        if check != "ok" {
            return Err(index_error("integrity check", check));
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| index_error("read schema version", e))?;
        if version != SCHEMA_VERSION {
            return Err(index_error(
                "schema version",
                format!("found {version}, expected {SCHEMA_VERSION}"),
            ));
        }
        Self::configure(&conn)?;
        Ok(Index { conn })
    }

    fn create(path: &Path) -> Result<Index, Error> {
        let conn = Connection::open(path).map_err(|e| index_error("create", e))?;
        Self::configure(&conn)?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| index_error("create schema", e))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| index_error("write schema version", e))?;
        Ok(Index { conn })
    }

    fn configure(conn: &Connection) -> Result<(), Error> {
        // Each Prosody process is single-threaded, but several processes may
        // share a data folder during a restart; wait for their locks.
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(|e| index_error("set busy timeout", e))?;
        // A rollback journal, not WAL: every committed write is in the main
        // file, so the integrity check on open reads the file as it is even
        // when Prosody was killed, and no side file outlives a deleted index.
        conn.pragma_update(None, "journal_mode", "DELETE")
            .map_err(|e| index_error("set journal mode", e))?;
        // The index can be rebuilt from storage, so it trades durability of
        // the last write on power loss for fewer fsyncs.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| index_error("set synchronous", e))?;
        Ok(())
    }

    /// Returns whether `host`'s rows were rebuilt since the file was created.
    pub fn is_built(&self, host: &str) -> Result<bool, Error> {
        self.conn
            .query_row("SELECT 1 FROM hosts WHERE host = ?1", [host], |_| Ok(()))
            .optional()
            .map(|row| row.is_some())
            .map_err(|e| index_error("read host state", e))
    }

    /// Replaces every row of `host` with `entries` in one transaction and
    /// marks the host as built at `now`.
    pub fn rebuild(&mut self, host: &str, entries: &[Entry], now: i64) -> Result<(), Error> {
        self.begin_rebuild(host)?;
        let filled = self
            .add_rows(host, entries)
            .and_then(|()| self.finish_rebuild(host, now));
        if filled.is_err() {
            self.abort_rebuild();
        }
        filled
    }

    /// Starts a rebuild of `host`: opens a transaction and deletes the
    /// host's rows. The caller adds rows with [`Index::add_rows`] in batches,
    /// so that it never keeps every row in memory, and ends with
    /// [`Index::finish_rebuild`] or [`Index::abort_rebuild`].
    pub fn begin_rebuild(&self, host: &str) -> Result<(), Error> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| index_error("begin rebuild", e))?;
        let cleared = self
            .conn
            .execute("DELETE FROM certs WHERE host = ?1", [host])
            .map_err(|e| index_error("clear host", e));
        if let Err(err) = cleared {
            self.abort_rebuild();
            return Err(err);
        }
        Ok(())
    }

    /// Adds rows to the rebuild that [`Index::begin_rebuild`] started.
    pub fn add_rows(&self, host: &str, entries: &[Entry]) -> Result<(), Error> {
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO certs (host, fingerprint, username, name, not_after)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(|e| index_error("prepare insert", e))?;
        for entry in entries {
            insert
                .execute(params![
                    host,
                    entry.fingerprint,
                    entry.username,
                    entry.name,
                    entry.not_after
                ])
                .map_err(|e| index_error("insert", e))?;
        }
        Ok(())
    }

    /// Marks `host` as built at `now` and commits the rebuild.
    pub fn finish_rebuild(&self, host: &str, now: i64) -> Result<(), Error> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO hosts (host, built_at) VALUES (?1, ?2)",
                params![host, now],
            )
            .map_err(|e| index_error("mark host built", e))?;
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| index_error("commit rebuild", e))
    }

    /// Rolls back a rebuild that failed, leaving the host unbuilt so that the
    /// next load tries again. Does nothing when no rebuild is open.
    pub fn abort_rebuild(&self) {
        if !self.conn.is_autocommit() {
            // A failed rollback leaves nothing more to undo here.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Inserts or replaces the row of one certificate, keeping its usage
    /// counters when the same account already held it.
    pub fn put(&self, host: &str, entry: &Entry) -> Result<(), Error> {
        self.conn
            .execute(
                "INSERT INTO certs (host, fingerprint, username, name, not_after)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (host, fingerprint) DO UPDATE SET
                     name = excluded.name,
                     not_after = excluded.not_after,
                     last_login = CASE WHEN username = excluded.username THEN last_login END,
                     login_count = CASE WHEN username = excluded.username THEN login_count ELSE 0 END,
                     username = excluded.username",
                params![host, entry.fingerprint, entry.username, entry.name, entry.not_after],
            )
            .map(|_| ())
            .map_err(|e| index_error("write row", e))
    }

    /// Deletes the row of one certificate.
    pub fn remove(&self, host: &str, fingerprint: &str) -> Result<(), Error> {
        self.conn
            .execute(
                "DELETE FROM certs WHERE host = ?1 AND fingerprint = ?2",
                params![host, fingerprint],
            )
            .map(|_| ())
            .map_err(|e| index_error("delete row", e))
    }

    /// Deletes every row of one account.
    pub fn remove_user(&self, host: &str, username: &str) -> Result<usize, Error> {
        self.conn
            .execute(
                "DELETE FROM certs WHERE host = ?1 AND username = ?2",
                params![host, username],
            )
            .map_err(|e| index_error("delete account rows", e))
    }

    /// Returns the row of a fingerprint on `host`.
    pub fn lookup(&self, host: &str, fingerprint: &str) -> Result<Option<Entry>, Error> {
        self.conn
            .query_row(
                "SELECT username, name, fingerprint, not_after, last_login, login_count
                 FROM certs WHERE host = ?1 AND fingerprint = ?2",
                params![host, fingerprint],
                row_to_entry,
            )
            .optional()
            .map_err(|e| index_error("look up fingerprint", e))
    }

    /// Records a certificate login at `now`.
    pub fn record_login(&self, host: &str, fingerprint: &str, now: i64) -> Result<(), Error> {
        self.conn
            .execute(
                "UPDATE certs SET last_login = ?3, login_count = login_count + 1
                 WHERE host = ?1 AND fingerprint = ?2",
                params![host, fingerprint, now],
            )
            .map(|_| ())
            .map_err(|e| index_error("record login", e))
    }

    /// Returns the rows of `host` whose notAfter is before `before`, at most
    /// `limit` of them, oldest first.
    pub fn expired(&self, host: &str, before: i64, limit: usize) -> Result<Vec<Entry>, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut query = self
            .conn
            .prepare(
                "SELECT username, name, fingerprint, not_after, last_login, login_count
                 FROM certs WHERE host = ?1 AND not_after < ?2
                 ORDER BY not_after LIMIT ?3",
            )
            .map_err(|e| index_error("prepare expiry query", e))?;
        let rows = query
            .query_map(params![host, before, limit], row_to_entry)
            .map_err(|e| index_error("query expired rows", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| index_error("read expired rows", e))
    }

    /// Returns the number of rows of `host`.
    pub fn count(&self, host: &str) -> Result<i64, Error> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM certs WHERE host = ?1",
                [host],
                |row| row.get(0),
            )
            .map_err(|e| index_error("count rows", e))
    }
}

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        username: row.get(0)?,
        name: row.get(1)?,
        fingerprint: row.get(2)?,
        not_after: row.get(3)?,
        last_login: row.get(4)?,
        login_count: row.get(5)?,
    })
}

/// Deletes an index file together with its WAL and shared-memory files.
fn remove_database_files(path: &Path) -> Result<(), Error> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(index_error(
                    &format!("remove unusable file {}", Path::new(&name).display()),
                    err,
                ))
            }
        }
    }
    Ok(())
}

/// An index shared by every virtual host of the process that opens the same
/// path.
pub type SharedIndex = Arc<Mutex<Index>>;

static OPEN_INDEXES: Lazy<Mutex<HashMap<String, SharedIndex>>> =
    Lazy::new(|| Mutex::new(HashMap::new()));

/// Returns the process-wide index for `path`, opening it on first use.
///
/// The [`OpenState`] is that of this call: `Existing` when another host had
/// already opened it.
pub fn open_shared(path: &str) -> Result<(SharedIndex, OpenState), Error> {
    let mut open = OPEN_INDEXES
        .lock()
        .map_err(|_| index_error("open", "the registry of open indexes is poisoned"))?;
    if let Some(index) = open.get(path) {
        return Ok((Arc::clone(index), OpenState::Existing));
    }
    let (index, state) = Index::open(Path::new(path))?;
    let shared = Arc::new(Mutex::new(index));
    open.insert(path.to_string(), Arc::clone(&shared));
    Ok((shared, state))
}

/// Locks a shared index, turning a poisoned lock into an error.
pub fn lock(index: &SharedIndex) -> Result<MutexGuard<'_, Index>, Error> {
    index
        .lock()
        .map_err(|_| index_error("lock", "a previous operation panicked"))
}
