//! Authentication at the server's edge: credentials in, principals out. What
//! a principal may then do is decided once, in `kiln_core::auth`.

pub mod edge;
pub mod ldap;
pub mod secret;
