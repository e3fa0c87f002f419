//! Native core of mod_client_certs, the Prosody module for XEP-0257 client
//! certificates and SASL EXTERNAL.
//!
//! Core modules never mention Lua, so `cargo test` covers them without an
//! interpreter; `lua` contains the bindings that Prosody loads as
//! `client_certs.so` through `luaopen_client_certs`.
#![deny(missing_docs)]

pub mod certificate;
pub mod decode;
pub mod error;
pub mod fingerprint;
pub mod identity;
pub mod index;
pub mod oid;
pub mod policy;
pub mod trust;

mod lua;

pub use certificate::Certificate;
pub use error::Error;
pub use trust::TrustAnchors;

/// Builds the table that `require "client_certs"` returns.
#[mlua::lua_module]
fn client_certs(lua: &mlua::Lua) -> mlua::Result<mlua::Table> {
    lua::exports(lua)
}
