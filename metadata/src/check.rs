//! The consistency check behind `cairn fsck`: every entry points at a live
//! inode, link counts agree with the entries, directories know their parent.

use rusqlite::params;

use crate::{FileKind, InodeId, MetaError, Metadata};

/// One disagreement found by [`Metadata::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inconsistency {
    DanglingEntry {
        dir: InodeId,
        name: Vec<u8>,
        child: InodeId,
    },
    EntryInNonDirectory {
        dir: InodeId,
        name: Vec<u8>,
    },
    LinkCount {
        inode: InodeId,
        stored: u32,
        counted: u32,
    },
    WrongParent {
        dir: InodeId,
        stored: Option<InodeId>,
        actual: InodeId,
    },
    MissingSymlinkTarget {
        inode: InodeId,
    },
    InlineLongerThanFile {
        inode: InodeId,
        inline: u64,
        size: u64,
    },
    InlineForMissingFile {
        inode: InodeId,
    },
}

impl std::fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DanglingEntry { dir, name, child } => write!(
                f,
                "directory {dir}: entry {:?} points at inode {child}, which does not exist",
                String::from_utf8_lossy(name)
            ),
            Self::EntryInNonDirectory { dir, name } => write!(
                f,
                "inode {dir} is not a directory but holds entry {:?}",
                String::from_utf8_lossy(name)
            ),
            Self::LinkCount {
                inode,
                stored,
                counted,
            } => {
                write!(
                    f,
                    "inode {inode}: link count is {stored} but {counted} links were found"
                )
            }
            Self::WrongParent {
                dir,
                stored,
                actual,
            } => write!(
                f,
                "directory {dir}: parent recorded as {stored:?} but it lives in {actual}"
            ),
            Self::MissingSymlinkTarget { inode } => write!(f, "symlink {inode} has no target"),
            Self::InlineLongerThanFile {
                inode,
                inline,
                size,
            } => {
                write!(
                    f,
                    "file {inode} keeps {inline} inline bytes but its size is {size}"
                )
            }
            Self::InlineForMissingFile { inode } => {
                write!(
                    f,
                    "inline bytes belong to inode {inode}, which is not a file"
                )
            }
        }
    }
}

impl Metadata {
    /// Checks the namespace. An empty list means consistent.
    pub fn check(&self) -> Result<Vec<Inconsistency>, MetaError> {
        self.read(|v| {
            let conn = v.conn;
            let mut found = Vec::new();
            let mut stmt = conn.prepare(
                "SELECT d.parent, d.name, d.child, p.kind, c.id FROM dirents d
                 LEFT JOIN inodes p ON p.id = d.parent LEFT JOIN inodes c ON c.id = d.child",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let dir = InodeId(r.get::<_, i64>(0)? as u64);
                let name: Vec<u8> = r.get(1)?;
                let child = InodeId(r.get::<_, i64>(2)? as u64);
                if r.get::<_, Option<i64>>(3)? != Some(FileKind::Dir as i64) {
                    found.push(Inconsistency::EntryInNonDirectory {
                        dir,
                        name: name.clone(),
                    });
                }
                if r.get::<_, Option<i64>>(4)?.is_none() {
                    found.push(Inconsistency::DanglingEntry { dir, name, child });
                }
            }
            // Files: one link per entry. Directories: their entry (or the
            // root's own), their "." and one ".." per subdirectory.
            let mut stmt = conn.prepare(
                "SELECT i.id, i.kind, i.nlink, i.parent, i.symlink_target,
                        (SELECT count(*) FROM dirents d WHERE d.child = i.id),
                        (SELECT count(*) FROM dirents d JOIN inodes s ON s.id = d.child
                            WHERE d.parent = i.id AND s.kind = ?1),
                        (SELECT d.parent FROM dirents d WHERE d.child = i.id LIMIT 1)
                 FROM inodes i",
            )?;
            let mut rows = stmt.query(params![FileKind::Dir as i64])?;
            while let Some(r) = rows.next()? {
                let inode = InodeId(r.get::<_, i64>(0)? as u64);
                let kind: i64 = r.get(1)?;
                let stored: u32 = r.get(2)?;
                let parent = r.get::<_, Option<i64>>(3)?.map(|p| InodeId(p as u64));
                let target: Option<Vec<u8>> = r.get(4)?;
                let entries = r.get::<_, i64>(5)? as u32;
                let subdirs = r.get::<_, i64>(6)? as u32;
                let holder = r.get::<_, Option<i64>>(7)?.map(|p| InodeId(p as u64));
                let counted = if kind == FileKind::Dir as i64 {
                    let own = if inode == InodeId::ROOT { 1 } else { entries };
                    own + 1 + subdirs
                } else {
                    entries
                };
                if counted != stored {
                    found.push(Inconsistency::LinkCount {
                        inode,
                        stored,
                        counted,
                    });
                }
                if kind == FileKind::Dir as i64 {
                    let actual = if inode == InodeId::ROOT {
                        Some(inode)
                    } else {
                        holder
                    };
                    if let Some(actual) = actual {
                        if parent != Some(actual) {
                            found.push(Inconsistency::WrongParent {
                                dir: inode,
                                stored: parent,
                                actual,
                            });
                        }
                    }
                }
                if kind == FileKind::Symlink as i64 && target.is_none() {
                    found.push(Inconsistency::MissingSymlinkTarget { inode });
                }
            }
            let mut stmt = conn.prepare(
                "SELECT d.inode, length(d.data), i.size, i.kind FROM inline_data d LEFT JOIN inodes i ON i.id = d.inode",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let inode = InodeId(r.get::<_, i64>(0)? as u64);
                let inline = r.get::<_, i64>(1)? as u64;
                match (r.get::<_, Option<i64>>(2)?, r.get::<_, Option<i64>>(3)?) {
                    (Some(size), Some(kind)) if kind == FileKind::File as i64 => {
                        if inline > size as u64 {
                            found.push(Inconsistency::InlineLongerThanFile { inode, inline, size: size as u64 });
                        }
                    }
                    _ => found.push(Inconsistency::InlineForMissingFile { inode }),
                }
            }
            Ok(found)
        })
    }
}
