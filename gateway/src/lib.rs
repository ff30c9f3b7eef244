//! The cairn gateway: the filesystem core over SQLite metadata and the local
//! ingest cache, the NFSv3 and FUSE front ends, the chunk stores, the
//! background workers, the admin API and the `cairn` command line.
//!
//! One room per module, with no import cycle between them
//! (`tests/layout.rs` checks it): [`core`] is the filesystem with its cache
//! and the owner of the metadata; the front ends ([`nfs`],
//! [`fuse`]) and the workers ([`work`]) sit on it, on [`store`] (the
//! `ChunkStore` trait and pool), [`catalog`] (classes) and [`health`] (chunk
//! standing); [`admin`] (typed protocol and handlers) sits on those, [`run`]
//! starts a gateway, and [`cli`] is the command line. [`error`] is the
//! workers' and the control plane's error type.

pub mod admin;
pub mod catalog;
pub mod class;
pub mod cli;
pub mod core;
pub mod disk;
pub mod error;
pub mod fsck;
pub mod fuse;
pub mod health;
pub mod http;
pub mod mounts;
pub mod nfs;
pub mod outlook;
pub mod progress;
pub mod restore;
pub mod run;
pub mod smb;
pub mod store;
pub mod work;
