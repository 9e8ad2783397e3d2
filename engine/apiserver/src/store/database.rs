//! SQLite persistence: one row per object plus the latest resourceVersion, written
//! in one transaction per store write. The in-memory state is loaded from here on
//! open and is the source of truth afterwards.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

/// One object as persisted.
pub(crate) struct Row {
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub body: String,
}

/// A change to persist.
pub(crate) enum RowChange<'a> {
    Put {
        key: &'a str,
        namespace: &'a str,
        name: &'a str,
        resource_version: u64,
        body: &'a str,
    },
    Delete {
        key: &'a str,
        namespace: &'a str,
        name: &'a str,
    },
}

/// Make the database's directory 0700 and the database and its companions 0600,
/// creating the database file with that mode so SQLite (which gives `-wal` and
/// `-shm` the database's mode) never makes a readable one.
fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |action: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let tighten = |file: &Path, mode: u32| -> Result<()> {
        match std::fs::metadata(file) {
            Ok(meta) if meta.permissions().mode() & 0o777 & !mode != 0 => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
                    .map_err(io("restricting the permissions of", file))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("reading the permissions of", file)(e)),
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        tighten(dir, 0o700)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating", path))?;
    tighten(path, 0o600)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        tighten(Path::new(&companion), 0o600)?;
    }
    Ok(())
}

pub(crate) struct Database {
    conn: Connection,
    path: String,
}

/// The store's error for what SQLite said about `path`: a full disk named
/// as one (SQLite says "database or disk is full", or only "disk I/O
/// error" when the WAL cannot grow).
pub(crate) fn storage_error(path: &str, source: rusqlite::Error) -> Error {
    let full = match &source {
        rusqlite::Error::SqliteFailure(e, _) => {
            e.code == rusqlite::ErrorCode::DiskFull
                || (e.code == rusqlite::ErrorCode::SystemIoFailure && disk_is_full(path))
        }
        _ => false,
    };
    if full {
        Error::DiskFull {
            path: path.to_owned(),
        }
    } else {
        Error::Storage {
            path: path.to_owned(),
            source,
        }
    }
}

/// Whether the file system holding `path` has no block left for this user.
fn disk_is_full(path: &str) -> bool {
    let dir = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    rustix::fs::statvfs(dir).is_ok_and(|stats| stats.f_bavail == 0)
}

impl Database {
    fn err(&self, source: rusqlite::Error) -> Error {
        storage_error(&self.path, source)
    }

    /// Moves rows that cannot be read into the table `unreadable` (with
    /// why), out of the objects the store loads, so that the server starts
    /// without them and nothing is lost: `sqlite3 STATE/okonomi.db 'SELECT
    /// * FROM unreadable'` shows them.
    pub fn quarantine(&mut self, rows: &[(Row, String)]) -> Result<()> {
        let path = self.path.clone();
        let err = |source| storage_error(&path, source);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS unreadable (
                 key TEXT NOT NULL,
                 namespace TEXT NOT NULL,
                 name TEXT NOT NULL,
                 body TEXT NOT NULL,
                 reason TEXT NOT NULL
             );",
        )
        .map_err(err)?;
        for (row, reason) in rows {
            tx.execute(
                "INSERT INTO unreadable (key, namespace, name, body, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.key, row.namespace, row.name, row.body, reason],
            )
            .map_err(err)?;
            tx.execute(
                "DELETE FROM objects WHERE key = ?1 AND namespace = ?2 AND name = ?3",
                params![row.key, row.namespace, row.name],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Open the database at `path`, readable by this user only: the file and its
    /// `-wal`/`-shm` companions 0600 and their directory 0700, fixed if found
    /// looser (it holds Secrets).
    pub fn open(path: &Path) -> Result<Self> {
        let display = path.display().to_string();
        restrict(path)?;
        let conn = Connection::open(path).map_err(|source| storage_error(&display, source))?;
        Self::init(conn, display)
    }

    /// A database that lives only in memory.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|source| Error::Storage {
            path: ":memory:".into(),
            source,
        })?;
        Self::init(conn, ":memory:".into())
    }

    fn init(conn: Connection, path: String) -> Result<Self> {
        let db = Self { conn, path };
        // WAL with synchronous=NORMAL: a committed transaction survives the process
        // being killed (kill -9); only a power loss may lose the last commits.
        db.conn
            .execute_batch(
                "PRAGMA journal_mode=WAL;
                 PRAGMA synchronous=NORMAL;
                 PRAGMA busy_timeout=5000;
                 CREATE TABLE IF NOT EXISTS objects (
                     key TEXT NOT NULL,
                     namespace TEXT NOT NULL,
                     name TEXT NOT NULL,
                     resource_version INTEGER NOT NULL,
                     body TEXT NOT NULL,
                     PRIMARY KEY (key, namespace, name)
                 );
                 CREATE TABLE IF NOT EXISTS meta (
                     key TEXT PRIMARY KEY,
                     value INTEGER NOT NULL
                 );",
            )
            .map_err(|e| db.err(e))?;
        Ok(db)
    }

    /// Every stored object and the highest resourceVersion ever handed out.
    pub fn load(&self) -> Result<(Vec<Row>, u64)> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, namespace, name, body FROM objects")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Row {
                    key: r.get(0)?,
                    namespace: r.get(1)?,
                    name: r.get(2)?,
                    body: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        let meta: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'resource_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let max_row: Option<i64> = self
            .conn
            .query_row("SELECT MAX(resource_version) FROM objects", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        let rv = meta.unwrap_or(0).max(max_row.unwrap_or(0)).max(0) as u64;
        Ok((rows, rv))
    }

    /// Apply `changes` and record `resource_version` atomically.
    pub fn write(&mut self, changes: &[RowChange<'_>], resource_version: u64) -> Result<()> {
        let path = self.path.clone();
        let err = |source| storage_error(&path, source);
        let tx = self.conn.transaction().map_err(err)?;
        for change in changes {
            match change {
                RowChange::Put {
                    key,
                    namespace,
                    name,
                    resource_version,
                    body,
                } => {
                    tx.execute(
                        "INSERT OR REPLACE INTO objects (key, namespace, name, resource_version, body)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![key, namespace, name, *resource_version as i64, body],
                    )
                    .map_err(err)?;
                }
                RowChange::Delete {
                    key,
                    namespace,
                    name,
                } => {
                    tx.execute(
                        "DELETE FROM objects WHERE key = ?1 AND namespace = ?2 AND name = ?3",
                        params![key, namespace, name],
                    )
                    .map_err(err)?;
                }
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('resource_version', ?1)",
            params![resource_version as i64],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(())
    }
}
