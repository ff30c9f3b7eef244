//! The chunk-store daemon: one per remote drive. It keeps the gateway's
//! encrypted shards as checksummed files written durably (temp name, fsync,
//! rename), verifies them on every read, reports its capacity, labels, host and
//! zone, and deletes a shard only when the gateway asks. Every connection is
//! authenticated and encrypted with the cluster secret (Noise NNpsk0).
//!
//! - [`init`] writes a drive's marker; [`serve`] runs the daemon on it.
//! - [`StoreClient`] is the gateway's side of the [`protocol`].
//! - [`layout`] documents the on-disk format, [`protocol`] the wire format.

mod admission;
mod client;
mod error;
mod init;
pub mod layout;
pub mod log_limit;
mod partial;
pub mod private;
pub mod protocol;
mod receive;
mod scrub;
mod secret;
mod server;
mod store;
pub mod transport;

pub use client::{Pacer, StoreClient, Upload, PACE_PIECE};
pub use error::{Status, StoreError};
pub use init::{init, InitReport};
pub use log_limit::LogLimit;
pub use protocol::{Capacity, ListEntry, ShardStat};
pub use secret::{Secret, MIN_SECRET_LEN};
pub use server::{serve, serve_until, MAX_CONNECTIONS};
