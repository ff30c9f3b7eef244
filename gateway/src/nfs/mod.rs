//! The NFSv3 front end: our own ONC RPC dispatch for NFSv3, MOUNT v3 and the
//! portmapper's GETPORT, all on one TCP port, with `nfs3_types` for the wire
//! types. It speaks to the filesystem core only and keeps no state of its
//! own; credentials from AUTH_SYS (squashed as the export says) reach every
//! core call.

mod conn;
mod convert;
pub mod handle;
mod mount;
mod nfs3;
mod portmap;
pub mod rpc;
mod server;
mod status;
pub mod xdr;

pub use server::{serve, Access};
