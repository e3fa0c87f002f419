//! Fingerprint index: schema handling, recovery from bad files, and rows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use client_certs::index::{open_shared, Entry, Index, OpenState, SCHEMA_VERSION};

const HOST: &str = "example.test";

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("client-certs-index-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn file(&self) -> PathBuf {
        self.0.join("client_certs.sqlite")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entry(username: &str, name: &str, fingerprint: &str, not_after: i64) -> Entry {
    Entry {
        username: username.to_string(),
        name: name.to_string(),
        fingerprint: fingerprint.to_string(),
        not_after,
        last_login: None,
        login_count: 0,
    }
}

#[test]
fn open_missing_file_creates_it() {
    let dir = TempDir::new("missing");

    let (index, state) = Index::open(&dir.file()).unwrap();

    assert_eq!(state, OpenState::Created);
    assert!(dir.file().exists());
    assert!(!index.is_built(HOST).unwrap());
}

#[test]
fn reopen_keeps_rows_and_built_state() {
    let dir = TempDir::new("reopen");
    {
        let (mut index, _) = Index::open(&dir.file()).unwrap();
        index
            .rebuild(HOST, &[entry("alice", "laptop", "aa", 100)], 1)
            .unwrap();
    }

    let (index, state) = Index::open(&dir.file()).unwrap();

    assert_eq!(state, OpenState::Existing);
    assert!(index.is_built(HOST).unwrap());
    assert_eq!(index.lookup(HOST, "aa").unwrap().unwrap().username, "alice");
}

#[test]
fn open_corrupt_file_recreates_it_empty() {
    let dir = TempDir::new("corrupt");
    std::fs::write(dir.file(), vec![0x5a; 8192]).unwrap();

    let (index, state) = Index::open(&dir.file()).unwrap();

    assert_eq!(state, OpenState::Recreated);
    assert!(!index.is_built(HOST).unwrap());
    assert_eq!(index.count(HOST).unwrap(), 0);
}

#[test]
fn open_other_schema_version_recreates_it() {
    let dir = TempDir::new("schema");
    {
        let conn = rusqlite::Connection::open(dir.file()).unwrap();
        conn.execute_batch("CREATE TABLE certs (fingerprint TEXT);")
            .unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }

    let (index, state) = Index::open(&dir.file()).unwrap();

    assert_eq!(state, OpenState::Recreated);
    assert_eq!(index.count(HOST).unwrap(), 0);
}

#[test]
fn open_in_missing_folder_is_index_error() {
    let dir = TempDir::new("nofolder");
    let path = dir.0.join("no-such-folder").join("client_certs.sqlite");

    let err = Index::open(&path).unwrap_err();

    assert_eq!(err.code(), "index-error");
}

#[test]
fn rebuild_replaces_only_that_host() {
    let dir = TempDir::new("rebuild");
    let (mut index, _) = Index::open(&dir.file()).unwrap();
    index
        .rebuild("other.test", &[entry("carol", "phone", "cc", 100)], 1)
        .unwrap();
    index
        .rebuild(HOST, &[entry("alice", "laptop", "aa", 100)], 1)
        .unwrap();

    index
        .rebuild(HOST, &[entry("bob", "tablet", "bb", 100)], 2)
        .unwrap();

    assert!(index.lookup(HOST, "aa").unwrap().is_none());
    assert_eq!(index.lookup(HOST, "bb").unwrap().unwrap().username, "bob");
    assert_eq!(
        index.lookup("other.test", "cc").unwrap().unwrap().username,
        "carol"
    );
}

#[test]
fn put_moves_fingerprint_and_resets_usage() {
    let dir = TempDir::new("put");
    let (index, _) = Index::open(&dir.file()).unwrap();
    index
        .put(HOST, &entry("alice", "laptop", "aa", 100))
        .unwrap();
    index.record_login(HOST, "aa", 50).unwrap();

    index.put(HOST, &entry("bob", "laptop", "aa", 100)).unwrap();

    let row = index.lookup(HOST, "aa").unwrap().unwrap();
    assert_eq!(row.username, "bob");
    assert_eq!(row.login_count, 0);
    assert_eq!(row.last_login, None);
}

#[test]
fn put_same_account_keeps_usage() {
    let dir = TempDir::new("put-same");
    let (index, _) = Index::open(&dir.file()).unwrap();
    index
        .put(HOST, &entry("alice", "laptop", "aa", 100))
        .unwrap();
    index.record_login(HOST, "aa", 50).unwrap();
    index.record_login(HOST, "aa", 60).unwrap();

    index
        .put(HOST, &entry("alice", "renamed", "aa", 100))
        .unwrap();

    let row = index.lookup(HOST, "aa").unwrap().unwrap();
    assert_eq!(row.name, "renamed");
    assert_eq!(row.login_count, 2);
    assert_eq!(row.last_login, Some(60));
}

#[test]
fn remove_and_remove_user_delete_rows() {
    let dir = TempDir::new("remove");
    let (index, _) = Index::open(&dir.file()).unwrap();
    index
        .put(HOST, &entry("alice", "laptop", "aa", 100))
        .unwrap();
    index
        .put(HOST, &entry("alice", "phone", "ab", 100))
        .unwrap();
    index.put(HOST, &entry("bob", "tablet", "bb", 100)).unwrap();

    index.remove(HOST, "bb").unwrap();
    let removed = index.remove_user(HOST, "alice").unwrap();

    assert_eq!(removed, 2);
    assert_eq!(index.count(HOST).unwrap(), 0);
}

#[test]
fn expired_returns_oldest_first_within_limit() {
    let dir = TempDir::new("expired");
    let (index, _) = Index::open(&dir.file()).unwrap();
    index.put(HOST, &entry("alice", "new", "aa", 300)).unwrap();
    index.put(HOST, &entry("alice", "old", "ab", 100)).unwrap();
    index.put(HOST, &entry("bob", "older", "bb", 50)).unwrap();

    let rows = index.expired(HOST, 200, 10).unwrap();
    let limited = index.expired(HOST, 200, 1).unwrap();

    let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
    assert_eq!(names, ["older", "old"]);
    assert_eq!(limited.len(), 1);
}

#[test]
fn open_shared_returns_same_index_per_path() {
    let dir = TempDir::new("shared");
    let path = dir.file().to_string_lossy().into_owned();

    let (first, first_state) = open_shared(&path).unwrap();
    let (second, second_state) = open_shared(&path).unwrap();

    assert_eq!(first_state, OpenState::Created);
    assert_eq!(second_state, OpenState::Existing);
    assert!(std::sync::Arc::ptr_eq(&first, &second));
}
