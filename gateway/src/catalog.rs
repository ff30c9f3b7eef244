//! The class catalogue: the one owner of the `classes` table above the
//! metadata. Every reader of a class (drain, archive, repair, remote
//! durability, status) asks [`Classes`]; every write of a class goes through
//! it ([`Classes::create`], [`Classes::delete`], [`Classes::default_id`]).
//!
//! Specs are parsed once per change, not per use: a [`Snapshot`] holds every
//! class parsed, and is reloaded when the catalogue's own write methods bump
//! its version or when the table's stamp (row count and highest id, cheap to
//! read; ids are never reused) says a class came or went.
//!
//! **The rule for a spec that fails to parse** (or a class id with no row):
//! the lookup fails with [`CatalogError::BadSpec`] (or
//! [`CatalogError::Unknown`]) naming the class, and nothing acts on that
//! class. The drainer leaves its data dirty in the ingest cache (pinned, so
//! nothing is lost and nothing is placed by a guess), the archive and the
//! repairer leave its chunks where they are, and a remote-durability write
//! fails instead of being acknowledged as local. Falling back to the built-in
//! default could place data on stores its class forbids or keep fewer copies
//! than it asks; skipping silently would acknowledge writes the class says
//! must be remote. Failing is the one fallback that can neither lose data nor
//! place it wrongly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use cairn_metadata::{ChunkLayout, ClassId, ClassRow, ClassStamp, MetaError, Metadata, Timestamp};

use crate::class::{ClassError, ClassSpec};

/// The class every file without one of its own belongs to.
pub const DEFAULT_NAME: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("class {id} is not in the metadata")]
    Unknown { id: ClassId },
    #[error("class {name:?} (id {id}) has a stored spec that does not parse; nothing acts on its data until it is fixed: {source}")]
    BadSpec {
        id: ClassId,
        name: String,
        #[source]
        source: Arc<ClassError>,
    },
    #[error("class {name:?} exists; delete it first or pick another name")]
    Exists { name: String },
    #[error("the default class cannot be deleted")]
    DeleteDefault,
    #[error("class {name:?} is still set on {users} inode(s) or used by chunks; set another class there first")]
    InUse { name: String, users: u64 },
    #[error("no class named {name:?}; see `cairn class list`")]
    NoSuchName { name: String },
}

/// One class as the catalogue holds it.
#[derive(Debug, Clone)]
pub struct Class {
    pub id: ClassId,
    pub name: String,
    /// The stored JSON, as written.
    pub json: String,
    /// The parsed spec, or why it does not parse.
    pub spec: Result<Arc<ClassSpec>, Arc<ClassError>>,
    /// The spec its erasure-coded (archived) chunks follow, if it archives.
    archived: Option<Arc<ClassSpec>>,
}

impl Class {
    fn from_row(row: ClassRow) -> Class {
        let spec = ClassSpec::from_json(&row.spec)
            .map(Arc::new)
            .map_err(Arc::new);
        let archived = spec.as_ref().ok().and_then(|s| s.archived()).map(Arc::new);
        Class {
            id: row.id,
            name: row.name,
            json: row.spec,
            spec,
            archived,
        }
    }

    /// The parsed spec, or [`CatalogError::BadSpec`].
    pub fn spec(&self) -> Result<Arc<ClassSpec>, CatalogError> {
        self.spec.clone().map_err(|source| CatalogError::BadSpec {
            id: self.id,
            name: self.name.clone(),
            source,
        })
    }

    /// The spec its archived chunks follow (`None`: the class does not archive).
    pub fn archived(&self) -> Option<&Arc<ClassSpec>> {
        self.archived.as_ref()
    }

    /// The spec a chunk of this class laid out as `layout` is held to: the
    /// archive's for an erasure-coded chunk of a class that archives, the
    /// class's own otherwise.
    pub fn effective(&self, layout: ChunkLayout) -> Result<Arc<ClassSpec>, CatalogError> {
        let own = self.spec()?;
        Ok(match (layout, &self.archived) {
            (ChunkLayout::Ec { .. }, Some(archived)) => archived.clone(),
            _ => own,
        })
    }
}

/// Every class, parsed, as of one load.
#[derive(Debug, Default)]
pub struct Snapshot {
    stamp: ClassStamp,
    version: u64,
    classes: Vec<Class>,
}

impl Snapshot {
    fn load(rows: Vec<ClassRow>, stamp: ClassStamp, version: u64) -> Snapshot {
        Snapshot {
            stamp,
            version,
            classes: rows.into_iter().map(Class::from_row).collect(),
        }
    }

    /// Every class, by id.
    pub fn list(&self) -> &[Class] {
        &self.classes
    }

    /// The class with this id.
    pub fn get(&self, id: ClassId) -> Result<&Class, CatalogError> {
        self.classes
            .iter()
            .find(|c| c.id == id)
            .ok_or(CatalogError::Unknown { id })
    }

    /// The class named `name`, if any.
    pub fn by_name(&self, name: &str) -> Option<&Class> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// The spec of class `id` (see the module doc for a bad one).
    pub fn spec(&self, id: ClassId) -> Result<Arc<ClassSpec>, CatalogError> {
        self.get(id)?.spec()
    }

    /// The spec a chunk of class `id` laid out as `layout` is held to.
    pub fn effective(
        &self,
        id: ClassId,
        layout: ChunkLayout,
    ) -> Result<Arc<ClassSpec>, CatalogError> {
        self.get(id)?.effective(layout)
    }

    /// The default class as stored, or the built-in one before it is
    /// created. What other classes are compared with.
    pub fn default_spec(&self) -> Result<Arc<ClassSpec>, CatalogError> {
        match self.by_name(DEFAULT_NAME) {
            Some(c) => c.spec(),
            None => Ok(Arc::new(ClassSpec::default_class())),
        }
    }
}

/// The class catalogue over one metadata database. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Classes {
    meta: Arc<Metadata>,
    /// Bumped by every write through the catalogue.
    version: AtomicU64,
    cache: RwLock<Arc<Snapshot>>,
}

impl Classes {
    /// A catalogue over `meta`; nothing is read until first use.
    pub fn new(meta: Arc<Metadata>) -> Classes {
        Classes {
            meta,
            version: AtomicU64::new(1),
            cache: RwLock::new(Arc::new(Snapshot::default())),
        }
    }

    /// Every class as of now: the cached snapshot while the table is
    /// unchanged (one small query to tell), a fresh one otherwise. Callers
    /// that look up many chunks take one snapshot and use it for all.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, CatalogError> {
        let version = self.version.load(Ordering::SeqCst);
        let stamp = self.meta.read(|v| v.class_stamp())?;
        {
            let cached = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if cached.version == version && cached.stamp == stamp {
                return Ok(cached.clone());
            }
        }
        let (rows, stamp) = self.meta.read(|v| Ok((v.classes()?, v.class_stamp()?)))?;
        let fresh = Arc::new(Snapshot::load(rows, stamp, version));
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }

    /// The spec of class `id`.
    pub fn spec(&self, id: ClassId) -> Result<Arc<ClassSpec>, CatalogError> {
        self.snapshot()?.spec(id)
    }

    /// The id of the class named `name`.
    pub fn by_name(&self, name: &str) -> Result<ClassId, CatalogError> {
        self.snapshot()?
            .by_name(name)
            .map(|c| c.id)
            .ok_or_else(|| CatalogError::NoSuchName {
                name: name.to_owned(),
            })
    }

    /// The id of the class "default", creating it (2 replicas, spread host,
    /// loose) on first use.
    pub async fn default_id(&self) -> Result<ClassId, CatalogError> {
        if let Some(c) = self.snapshot()?.by_name(DEFAULT_NAME) {
            return Ok(c.id);
        }
        let json = ClassSpec::default_class().to_json();
        let id = self
            .meta
            .write(true, move |tx| {
                tx.upsert_class(DEFAULT_NAME, &json, Timestamp::now())
            })
            .await?;
        self.changed();
        Ok(id)
    }

    /// Stores a new class; refuses a name already taken.
    pub async fn create(&self, spec: &ClassSpec) -> Result<ClassId, CatalogError> {
        if self.snapshot()?.by_name(&spec.name).is_some() {
            return Err(CatalogError::Exists {
                name: spec.name.clone(),
            });
        }
        let (name, json) = (spec.name.clone(), spec.to_json());
        let id = self
            .meta
            .write(true, move |tx| {
                tx.upsert_class(&name, &json, Timestamp::now())
            })
            .await;
        self.changed();
        Ok(id?)
    }

    /// Deletes a class nothing uses (never the default one).
    pub async fn delete(&self, name: &str) -> Result<(), CatalogError> {
        if name == DEFAULT_NAME {
            return Err(CatalogError::DeleteDefault);
        }
        // A name that is no class is an error, not a silent "deleted".
        self.by_name(name)?;
        let n = name.to_owned();
        let done = self.meta.write(true, move |tx| tx.delete_class(&n)).await;
        self.changed();
        done?.map_err(|users| CatalogError::InUse {
            name: name.to_owned(),
            users,
        })
    }

    /// Forces the next lookup to reload.
    fn changed(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
