//! cairn's namespace and catalogue, kept in one SQLite database (WAL mode).
//!
//! The promise: a change handed to [`Metadata::write`] is visible to every
//! later read once its future resolves, and a change marked durable is on
//! stable storage by then. Writes go through one writer thread that groups the
//! changes of concurrent callers into one transaction, so their fsyncs are
//! shared instead of skipped. The schema also lays out what later parts of
//! cairn fill in: extents → blocks → chunks → placements, storage classes,
//! stores and work queues.

mod alloc;
mod check;
mod chunks;
mod classes;
mod db;
mod error;
mod ids;
mod inode;
mod queries;
mod schema;
mod ship;
mod slots;
mod writer;
mod xattrs;

#[cfg(test)]
mod tests;

pub use check::Inconsistency;
pub use chunks::{object_name, ChunkInfo, ChunkLayout, PlacementCheck, Placements, StoreState};
pub use classes::{ClassRow, ClassStamp};
pub use db::Metadata;
pub use error::MetaError;
pub use ids::{BlockId, ChunkId, ClassId, InodeId, StoreId};
pub use inode::{DirEntry, FileKind, FileTime, Inode, NewInode, Timestamp};
pub use queries::{Tx, View};
pub use schema::SCHEMA_VERSION;
pub use ship::restore;
pub use slots::{Backlog, BlockLocation, DirtySlot, NewBlock, Slot, SLOT_SIZE};
