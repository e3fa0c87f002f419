//! Lua bindings: each export converts its arguments, calls one core
//! function and converts the result.
//!
//! Expected failures return `nil, code, message`; wrong argument types raise
//! Lua errors, as Prosody's own libraries do.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::{
    Lua, MultiValue, Result as LuaResult, String as LuaString, Table, UserData, UserDataFields,
    UserDataMethods, Value,
};

use crate::certificate::{Certificate, DEFAULT_MAX_SIZE};
use crate::error::Error;
use crate::index::{self, Entry, OpenState, SharedIndex};
use crate::trust::TrustAnchors;

/// Runs `f`, turning a Rust panic into a Lua error so that no panic unwinds
/// into the interpreter.
fn guarded<T>(name: &str, f: impl FnOnce() -> LuaResult<T>) -> LuaResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(mlua::Error::RuntimeError(format!(
            "client_certs.{name}: internal error (a bug in the native library)"
        ))),
    }
}

/// Converts a core result into `value` or `nil, code, message`.
fn outcome<T: mlua::IntoLua>(lua: &Lua, result: Result<T, Error>) -> LuaResult<MultiValue> {
    match result {
        Ok(value) => Ok(MultiValue::from_vec(vec![value.into_lua(lua)?])),
        Err(err) => Ok(MultiValue::from_vec(vec![
            Value::Nil,
            Value::String(lua.create_string(err.code())?),
            Value::String(lua.create_string(err.to_string())?),
        ])),
    }
}

/// Reads an optional size limit argument; nil means the default.
fn size_limit(limit: Option<i64>) -> LuaResult<usize> {
    match limit {
        None => Ok(DEFAULT_MAX_SIZE),
        Some(n) if n > 0 => usize::try_from(n).map_err(mlua::Error::external),
        Some(n) => Err(mlua::Error::RuntimeError(format!(
            "bad argument #2 to 'parse' (size limit must be positive, got {n})"
        ))),
    }
}

impl UserData for Certificate {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("fingerprint", |_, cert| Ok(cert.fingerprint.clone()));
        fields.add_field_method_get("not_before", |_, cert| Ok(cert.not_before));
        fields.add_field_method_get("not_after", |_, cert| Ok(cert.not_after));
        fields.add_field_method_get("subject", |_, cert| Ok(cert.subject.clone()));
        fields.add_field_method_get("issuer", |_, cert| Ok(cert.issuer.clone()));
        fields.add_field_method_get("size", |_, cert| Ok(cert.der().len()));
        fields.add_field_method_get("base64", |_, cert| Ok(cert.to_base64()));
        fields.add_field_method_get("der", |lua, cert| lua.create_string(cert.der()));
        fields.add_field_method_get("xmpp_addrs", |lua, cert| {
            lua.create_sequence_from(cert.xmpp_addrs.usable.iter().cloned())
        });

        fields.add_field_method_get("skipped_xmpp_addrs", |lua, cert| {
            lua.create_sequence_from(cert.xmpp_addrs.skipped.iter().cloned())
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("pem", |_, cert, ()| Ok(cert.to_pem()));
        methods.add_method("check_validity", |lua, cert, now: i64| {
            guarded("check_validity", || {
                outcome(lua, cert.check_validity(now).map(|()| true))
            })
        });

        methods.add_method("check_client_usage", |lua, cert, ()| {
            guarded("check_client_usage", || {
                outcome(lua, cert.check_client_usage().map(|()| true))
            })
        });
        methods.add_meta_method("__tostring", |_, cert, ()| {
            Ok(format!("client_certs.certificate({})", cert.fingerprint))
        });
    }
}

impl UserData for TrustAnchors {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("count", |_, anchors| Ok(anchors.len()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method(
            "verify",
            |lua, anchors, (cert, now): (mlua::UserDataRef<Certificate>, i64)| {
                guarded("verify", || {
                    outcome(lua, anchors.verify(&cert, now).map(|()| true))
                })
            },
        );
    }
}

/// Lua handle on the shared fingerprint index.
struct IndexHandle(SharedIndex);

fn entry_to_table(lua: &Lua, entry: &Entry) -> LuaResult<Table> {
    let table = lua.create_table()?;
    table.set("username", entry.username.as_str())?;
    table.set("name", entry.name.as_str())?;
    table.set("fingerprint", entry.fingerprint.as_str())?;
    table.set("not_after", entry.not_after)?;
    table.set("last_login", entry.last_login)?;
    table.set("login_count", entry.login_count)?;
    Ok(table)
}

fn table_to_entry(table: &Table) -> LuaResult<Entry> {
    Ok(Entry {
        username: table.get("username")?,
        name: table.get("name")?,
        fingerprint: table.get("fingerprint")?,
        not_after: table.get("not_after")?,
        last_login: None,
        login_count: 0,
    })
}

impl UserData for IndexHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("is_built", |lua, handle, host: String| {
            guarded("is_built", || {
                outcome(
                    lua,
                    index::lock(&handle.0).and_then(|ix| ix.is_built(&host)),
                )
            })
        });

        methods.add_method("begin_rebuild", |lua, handle, host: String| {
            guarded("begin_rebuild", || {
                outcome(
                    lua,
                    index::lock(&handle.0)
                        .and_then(|ix| ix.begin_rebuild(&host))
                        .map(|()| true),
                )
            })
        });

        methods.add_method("add_rows", |lua, handle, (host, rows): (String, Table)| {
            let entries = rows
                .sequence_values::<Table>()
                .map(|row| row.and_then(|row| table_to_entry(&row)))
                .collect::<LuaResult<Vec<_>>>()?;
            guarded("add_rows", || {
                outcome(
                    lua,
                    index::lock(&handle.0)
                        .and_then(|ix| ix.add_rows(&host, &entries))
                        .map(|()| entries.len()),
                )
            })
        });

        methods.add_method(
            "finish_rebuild",
            |lua, handle, (host, now): (String, i64)| {
                guarded("finish_rebuild", || {
                    outcome(
                        lua,
                        index::lock(&handle.0)
                            .and_then(|ix| ix.finish_rebuild(&host, now))
                            .map(|()| true),
                    )
                })
            },
        );
        methods.add_method("abort_rebuild", |_, handle, ()| {
            guarded("abort_rebuild", || {
                if let Ok(ix) = index::lock(&handle.0) {
                    ix.abort_rebuild();
                }
                Ok(())
            })
        });

        methods.add_method("put", |lua, handle, (host, row): (String, Table)| {
            let entry = table_to_entry(&row)?;
            guarded("put", || {
                outcome(
                    lua,
                    index::lock(&handle.0)
                        .and_then(|ix| ix.put(&host, &entry))
                        .map(|()| true),
                )
            })
        });

        methods.add_method(
            "remove",
            |lua, handle, (host, fingerprint): (String, String)| {
                guarded("remove", || {
                    outcome(
                        lua,
                        index::lock(&handle.0)
                            .and_then(|ix| ix.remove(&host, &fingerprint))
                            .map(|()| true),
                    )
                })
            },
        );
        methods.add_method(
            "remove_user",
            |lua, handle, (host, username): (String, String)| {
                guarded("remove_user", || {
                    outcome(
                        lua,
                        index::lock(&handle.0).and_then(|ix| ix.remove_user(&host, &username)),
                    )
                })
            },
        );
        methods.add_method(
            "lookup",
            |lua, handle, (host, fingerprint): (String, String)| {
                guarded("lookup", || {
                    let found =
                        index::lock(&handle.0).and_then(|ix| ix.lookup(&host, &fingerprint));
                    match found {
                        Ok(Some(entry)) => Ok(MultiValue::from_vec(vec![Value::Table(
                            entry_to_table(lua, &entry)?,
                        )])),
                        Ok(None) => Ok(MultiValue::new()),
                        Err(err) => outcome::<bool>(lua, Err(err)),
                    }
                })
            },
        );
        methods.add_method(
            "record_login",
            |lua, handle, (host, fingerprint, now): (String, String, i64)| {
                guarded("record_login", || {
                    outcome(
                        lua,
                        index::lock(&handle.0)
                            .and_then(|ix| ix.record_login(&host, &fingerprint, now))
                            .map(|()| true),
                    )
                })
            },
        );
        methods.add_method(
            "expired",
            |lua, handle, (host, before, limit): (String, i64, Option<usize>)| {
                guarded("expired", || {
                    let rows = index::lock(&handle.0)
                        .and_then(|ix| ix.expired(&host, before, limit.unwrap_or(1000)));
                    match rows {
                        Ok(rows) => {
                            let list = lua.create_table()?;
                            for entry in &rows {
                                list.push(entry_to_table(lua, entry)?)?;
                            }
                            Ok(MultiValue::from_vec(vec![Value::Table(list)]))
                        }
                        Err(err) => outcome::<bool>(lua, Err(err)),
                    }
                })
            },
        );
        methods.add_method("count", |lua, handle, host: String| {
            guarded("count", || {
                outcome(lua, index::lock(&handle.0).and_then(|ix| ix.count(&host)))
            })
        });
    }
}

/// `open_index(path)`: index handle and its state ("existing", "created" or
/// "recreated"), or nil, code, message.
fn open_index(lua: &Lua, path: String) -> LuaResult<MultiValue> {
    guarded("open_index", || match index::open_shared(&path) {
        Ok((shared, state)) => {
            let state = match state {
                OpenState::Existing => "existing",
                OpenState::Created => "created",
                OpenState::Recreated => "recreated",
            };
            Ok(MultiValue::from_vec(vec![
                Value::UserData(lua.create_userdata(IndexHandle(shared))?),
                Value::String(lua.create_string(state)?),
            ]))
        }
        Err(err) => outcome::<bool>(lua, Err(err)),
    })
}

/// `parse(input [, max_size])`: certificate userdata, or nil, code, message.
fn parse(lua: &Lua, (input, max_size): (LuaString, Option<i64>)) -> LuaResult<MultiValue> {
    let limit = size_limit(max_size)?;
    guarded("parse", || {
        outcome(lua, Certificate::parse(&input.as_bytes(), limit))
    })
}

/// `load_trust_anchors(pem, source_name)`: anchors userdata, or nil, code,
/// message.
fn load_trust_anchors(lua: &Lua, (pem, source_name): (LuaString, String)) -> LuaResult<MultiValue> {
    guarded("load_trust_anchors", || {
        outcome(lua, TrustAnchors::from_pem(&pem.as_bytes(), &source_name))
    })
}

/// Builds the exports table.
pub fn exports(lua: &Lua) -> LuaResult<Table> {
    let exports = lua.create_table()?;
    exports.set("parse", lua.create_function(parse)?)?;
    exports.set(
        "load_trust_anchors",
        lua.create_function(load_trust_anchors)?,
    )?;
    exports.set("open_index", lua.create_function(open_index)?)?;
    exports.set("default_max_size", DEFAULT_MAX_SIZE)?;
    exports.set("version", env!("CARGO_PKG_VERSION"))?;
    Ok(exports)
}
