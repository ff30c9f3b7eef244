//! The cairn gateway: the filesystem core over SQLite metadata and the local
//! ingest cache, the NFSv3 front end, and the `cairn` command line.

pub mod cache;
pub mod cli;
pub mod core;
pub mod fsck;
pub mod nfs;
pub mod run;
