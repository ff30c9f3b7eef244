//! The catalogue against a real metadata database in a temp folder.

use super::*;
use crate::class::Layout;

fn open() -> (tempfile::TempDir, Arc<Metadata>, Classes) {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(Metadata::open(&dir.path().join("meta.db")).unwrap());
    let classes = Classes::new(meta.clone());
    (dir, meta, classes)
}

/// Writes a row behind the catalogue's back, as an old gateway or a
/// hand-edited database could.
async fn raw_class(meta: &Metadata, name: &str, json: &str) -> ClassId {
    let (n, j) = (name.to_owned(), json.to_owned());
    meta.write(true, move |tx| tx.upsert_class(&n, &j, Timestamp::now()))
        .await
        .unwrap()
}

fn three(name: &str) -> ClassSpec {
    ClassSpec::parse(name, Some(3), None, None, None, false, false).unwrap()
}

fn aging() -> ClassSpec {
    ClassSpec::parse("aging", Some(2), None, None, Some("store"), false, false)
        .unwrap()
        .with_archive(Some("30d"), Some("4+1"), None, None)
        .unwrap()
}

#[tokio::test]
async fn a_spec_that_does_not_parse_fails_every_lookup_and_spares_the_others() {
    let (_dir, meta, classes) = open();
    let good = classes.create(&three("three")).await.unwrap();
    let bad = raw_class(&meta, "broken", r#"{"name":"broken","layout":"nonsense"}"#).await;
    let err = classes.spec(bad).unwrap_err();
    assert!(
        matches!(&err, CatalogError::BadSpec { id, name, .. } if *id == bad && name == "broken"),
        "{err}"
    );
    let snap = classes.snapshot().unwrap();
    assert!(matches!(
        snap.effective(bad, ChunkLayout::Replicas),
        Err(CatalogError::BadSpec { .. })
    ));
    // Never the default in its place: a bad class is not 2 replicas anywhere.
    assert!(snap.default_spec().is_ok());
    assert_eq!(classes.spec(good).unwrap().copies(), 3);
    assert_eq!(classes.by_name("broken").unwrap(), bad);
}

#[tokio::test]
async fn an_unknown_id_is_an_error_not_the_default() {
    let (_dir, _meta, classes) = open();
    classes.default_id().await.unwrap();
    let err = classes.spec(ClassId(999)).unwrap_err();
    assert!(
        matches!(err, CatalogError::Unknown { id: ClassId(999) }),
        "{err}"
    );
}

#[tokio::test]
async fn the_default_class_is_created_once() {
    let (_dir, meta, classes) = open();
    let snap = classes.snapshot().unwrap();
    assert!(snap.list().is_empty());
    assert_eq!(*snap.default_spec().unwrap(), ClassSpec::default_class());
    let id = classes.default_id().await.unwrap();
    assert_eq!(classes.default_id().await.unwrap(), id);
    assert_eq!(meta.read(|v| v.classes()).unwrap().len(), 1);
    assert_eq!(*classes.spec(id).unwrap(), ClassSpec::default_class());
    assert!(matches!(
        classes.delete(DEFAULT_NAME).await,
        Err(CatalogError::DeleteDefault)
    ));
}

#[tokio::test]
async fn an_archived_chunk_follows_the_archive_layout() {
    let (_dir, _meta, classes) = open();
    let id = classes.create(&aging()).await.unwrap();
    let ec = ChunkLayout::Ec {
        k: 4,
        m: 1,
        shard_len: 1 << 20,
    };
    let snap = classes.snapshot().unwrap();
    let replica = snap.effective(id, ChunkLayout::Replicas).unwrap();
    assert_eq!(replica.layout, Layout::Replicas { n: 2 });
    let archived = snap.effective(id, ec).unwrap();
    assert_eq!(archived.layout, Layout::ErasureCoded { k: 4, m: 1 });
    assert_eq!(archived.name, "aging");
    // An erasure-coded class without an archive rule keeps its own spec.
    let wide = ClassSpec::parse("wide", None, Some("4+1"), None, None, false, false).unwrap();
    let wide = classes.create(&wide).await.unwrap();
    let snap = classes.snapshot().unwrap();
    assert_eq!(
        snap.effective(wide, ec).unwrap().layout,
        Layout::ErasureCoded { k: 4, m: 1 }
    );
}

#[tokio::test]
async fn the_cache_follows_creates_and_deletes_from_anywhere() {
    let (_dir, meta, classes) = open();
    let first = classes.snapshot().unwrap();
    assert!(
        Arc::ptr_eq(&first, &classes.snapshot().unwrap()),
        "unchanged: cached"
    );
    // Written behind the catalogue's back: the stamp shows it.
    let id = raw_class(&meta, "three", &three("three").to_json()).await;
    assert_eq!(classes.by_name("three").unwrap(), id);
    assert!(matches!(
        classes.create(&three("three")).await,
        Err(CatalogError::Exists { .. })
    ));
    classes.delete("three").await.unwrap();
    assert!(matches!(
        classes.by_name("three"),
        Err(CatalogError::NoSuchName { .. })
    ));
    // A new class of the old name gets a new id, never the old spec.
    let mut renamed = aging();
    renamed.name = "three".to_owned();
    let again = classes.create(&renamed).await.unwrap();
    assert_ne!(again, id);
    assert!(classes.spec(again).unwrap().archive.is_some());
    assert!(matches!(
        classes.spec(id),
        Err(CatalogError::Unknown { .. })
    ));
}

#[tokio::test]
async fn a_class_in_use_is_not_deleted() {
    let (_dir, meta, classes) = open();
    let id = classes.create(&three("three")).await.unwrap();
    meta.write(true, move |tx| tx.new_chunk(id, 1, Timestamp::now()))
        .await
        .unwrap();
    let err = classes.delete("three").await.unwrap_err();
    assert!(matches!(err, CatalogError::InUse { users: 1, .. }), "{err}");
    assert_eq!(classes.by_name("three").unwrap(), id);
}

#[tokio::test]
async fn deleting_a_class_that_does_not_exist_says_so() {
    let (_dir, _meta, classes) = open();
    let err = classes.delete("nosuch").await.unwrap_err();
    assert!(
        matches!(&err, CatalogError::NoSuchName { name } if name == "nosuch"),
        "{err}"
    );
    assert!(err.to_string().contains("cairn class list"), "{err}");
}
