//! `cairn class create|list|show|delete|set|get`: the storage classes, as
//! the class catalogue (`catalog`) holds them, and which class a path has.

use cairn_metadata::InodeId;
use tracing::warn;

use super::proto::{
    AdminError, ClassCreate, ClassCreated, ClassDeleted, ClassGet, ClassList, ClassRow, ClassSet,
    ClassShow, Domains,
};
use super::Admin;
use crate::catalog::CatalogError;
use crate::class::{ClassError, ClassSpec};
use crate::core::{Credentials, FsError};
use crate::store::placement::domain_count;

impl From<CatalogError> for AdminError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Exists { name } => AdminError::ClassExists { name },
            CatalogError::DeleteDefault => AdminError::DefaultClass,
            CatalogError::InUse { name, users } => AdminError::ClassInUse { name, users },
            CatalogError::NoSuchName { name } => AdminError::NoClass { name },
            CatalogError::BadSpec { name, source, .. } => AdminError::BadClass {
                name,
                why: source.to_string(),
            },
            e @ (CatalogError::Meta(_) | CatalogError::Unknown { .. }) => {
                AdminError::Metadata { why: e.to_string() }
            }
        }
    }
}

/// The class `cairn class create` asks for, from its flags.
fn spec_of(c: &ClassCreate) -> Result<ClassSpec, ClassError> {
    ClassSpec::parse(
        &c.name,
        c.replicas,
        c.ec.as_deref(),
        c.labels.as_deref(),
        c.spread.as_deref(),
        c.strict,
        c.loose,
    )?
    .with_archive(
        c.archive_after.as_deref(),
        c.archive_ec.as_deref(),
        c.archive_spread.as_deref(),
        c.archive_labels.as_deref(),
    )?
    .with_durability(c.durability.as_deref())
}

impl Admin {
    /// `cairn class create`.
    pub(super) async fn class_create(&self, c: ClassCreate) -> Result<ClassCreated, AdminError> {
        let fs = &self.fs;
        let name = c.name.clone();
        let spec = spec_of(&c).map_err(|e| AdminError::BadClass {
            name: name.clone(),
            why: e.to_string(),
        })?;
        let views = self
            .stores
            .as_ref()
            .map(|s| s.placeable())
            .unwrap_or_default();
        let have = domain_count(&spec, &views);
        fs.classes().create(&spec).await?;
        let default = fs.classes().snapshot()?.default_spec()?;
        let geometry = |spec: &ClassSpec, have: usize| {
            format!(
                "needs {} {} domains, the cluster has {have}: {}",
                spec.domains_needed(),
                spec.spread,
                crate::outlook::describe(spec, &default, &views)
            )
        };
        let mut note = geometry(&spec, have);
        let mut archive = None;
        if let Some(archived) = spec.archived() {
            let have = domain_count(&archived, &views);
            note.push_str(&format!("\narchived chunks {}", geometry(&archived, have)));
            archive = Some(Domains {
                domains_needed: archived.domains_needed() as u64,
                domains_available: have as u64,
            });
        }
        Ok(ClassCreated {
            class: name,
            describe: spec.describe(),
            domains_needed: spec.domains_needed() as u64,
            domains_available: have as u64,
            archive,
            note,
        })
    }

    /// `cairn class list`.
    pub(super) fn class_list(&self) -> Result<ClassList, AdminError> {
        let classes = self
            .fs
            .classes()
            .snapshot()?
            .list()
            .iter()
            .map(|c| ClassRow {
                name: c.name.clone(),
                describe: c
                    .spec()
                    .map(|s| s.describe())
                    .unwrap_or_else(|e| e.to_string()),
            })
            .collect();
        Ok(ClassList { classes })
    }

    /// `cairn class show`.
    pub(super) fn class_show(&self, name: String) -> Result<ClassShow, AdminError> {
        let classes = self.fs.classes().snapshot()?;
        let Some(class) = classes.by_name(&name) else {
            return Err(AdminError::NoClass { name });
        };
        let spec = class.spec()?;
        Ok(ClassShow {
            name,
            describe: spec.describe(),
            spec: spec.as_ref().clone(),
        })
    }

    /// `cairn class delete`.
    pub(super) async fn class_delete(&self, name: String) -> Result<ClassDeleted, AdminError> {
        self.fs.classes().delete(&name).await?;
        Ok(ClassDeleted { deleted: name })
    }

    /// `cairn class get`.
    pub(super) async fn class_get(&self, path: String) -> Result<ClassGet, AdminError> {
        let inode = self.resolve(&path).await?;
        let class = match inode.class {
            Some(c) => self
                .fs
                .classes()
                .snapshot()?
                .get(c)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            None => "default".to_owned(),
        };
        Ok(ClassGet { path, class })
    }

    /// `cairn class set`: the path's class now; everything below follows in
    /// the background.
    pub(super) async fn class_set(
        &self,
        path: String,
        name: String,
    ) -> Result<ClassSet, AdminError> {
        let inode = self.resolve(&path).await?;
        let classes = self.fs.classes().snapshot()?;
        let Some(class) = classes.by_name(&name) else {
            return Err(AdminError::NoClassToSet { name });
        };
        let id = class.id;
        let target = inode.id;
        self.fs.set_class(target, id).await?;
        let fs = self.fs.clone();
        let (p, n) = (path.clone(), name.clone());
        tokio::spawn(async move {
            match fs.set_class_tree(target, id).await {
                Ok(done) => {
                    tracing::info!(path = %p, class = %n, inodes = done.inodes, slots = done.slots, "class set below the path; changed data re-lays as it drains")
                }
                Err(e) => {
                    warn!(path = %p, class = %n, cause = %e, "setting the class below the path stopped")
                }
            }
        });
        let spec = class.spec()?;
        let views = self
            .stores
            .as_ref()
            .map(|s| s.placeable())
            .unwrap_or_default();
        let outlook = crate::outlook::describe(&spec, &*classes.default_spec()?, &views);
        let note = format!("new files below inherit it; existing files re-lay in the background (watch `cairn status`); class {name}: {outlook}");
        Ok(ClassSet {
            path,
            class: name,
            outlook,
            note,
        })
    }

    /// The inode at `path` (from the tree's root), as root sees it.
    async fn resolve(&self, path: &str) -> Result<cairn_metadata::Inode, AdminError> {
        let failed = |e: FsError| AdminError::Path {
            path: path.to_owned(),
            why: e.to_string(),
        };
        let root = Credentials::root();
        let mut inode = self.fs.getattr(InodeId::ROOT).await.map_err(failed)?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            inode = self
                .fs
                .lookup(&root, inode.id, part.as_bytes())
                .await
                .map_err(failed)?;
        }
        Ok(inode)
    }
}
