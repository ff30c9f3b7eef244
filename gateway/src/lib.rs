//! The cairn gateway: the filesystem core over SQLite metadata and the local
//! ingest cache, the NFSv3 front end, and the `cairn` command line.

pub mod admin;
pub mod cache;
pub mod catalog;
pub mod class;
pub mod cli;
pub mod core;
pub mod disk;
pub mod drain;
pub mod error;
pub mod fsck;
pub mod fuse;
pub mod health;
pub mod mounts;
pub mod nfs;
pub mod outlook;
pub mod restore;
pub mod run;
pub mod smb;
pub mod store;
pub mod work;

// The workers' old paths, for their users in other rooms.
pub use work::{repair, ship};
