//! Newtype ids for the rows of the catalogue, so an inode id can never be
//! passed where a chunk id is meant.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An inode: a file, directory, symlink or special file. Ids are never reused.
    InodeId
);
id_type!(
    /// A storage class (replicas or erasure coding, labels, spread).
    ClassId
);
id_type!(
    /// A chunk: the unit of placement and redundancy, holding many blocks.
    ChunkId
);
id_type!(
    /// An immutable, encrypted block of file data (at most 4 MiB).
    BlockId
);
id_type!(
    /// A chunk store: one daemon on one drive.
    StoreId
);

impl InodeId {
    /// The root directory of the namespace, created by the first migration.
    pub const ROOT: InodeId = InodeId(1);
}
