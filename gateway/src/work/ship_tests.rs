//! Metadata shipping on memory stores: what is shipped restores into a new
//! folder, and the file reads back from it.

use std::time::Duration;

use cairn_chunkstore::Secret;
use cairn_config::BackupConfig;

use super::ship::{backup_key, open, Shipper};
use crate::core::{CreateHow, Credentials, Fs, SetAttr, Stability};
use crate::store::ObjectKey;
use crate::work::repair::tests::rig;

#[tokio::test]
async fn shipped_metadata_restores_into_a_new_folder_and_the_file_reads_back() {
    let rig = rig(3).await;
    let secret = Secret::from_bytes(&[9u8; 32]);
    let scratch = tempfile::tempdir().unwrap();
    let shipper = Shipper::new(
        rig.fs.clone(),
        rig.stores.clone(),
        &secret,
        BackupConfig::default(),
        Duration::from_secs(600),
        scratch.path(),
    );
    // A snapshot first, then a file written after it: shipped as changes.
    shipper.ship_now().await.unwrap();
    let cred = Credentials::root();
    let file = rig
        .fs
        .create(
            &cred,
            cairn_metadata::InodeId::ROOT,
            b"f",
            CreateHow::Guarded(SetAttr::default()),
        )
        .await
        .unwrap();
    rig.fs
        .write(&cred, file.id, 0, b"shipped".to_vec(), Stability::FileSync)
        .await
        .unwrap();
    shipper.ship_now().await.unwrap();

    // The metadata is lost: rebuild it from one store's backup objects.
    let key = backup_key(&secret);
    let keys = rig.stores.list_keys(rig.ids[0], Some('m')).await.unwrap();
    let (mut snapshot, mut changes) = (Vec::new(), Vec::new());
    let mut sorted: Vec<ObjectKey> = keys.iter().map(|k| k.parse().unwrap()).collect();
    sorted.sort();
    for object in sorted {
        let name = object.to_string();
        let len = rig.stores.stat(rig.ids[0], &name).await.unwrap().len;
        let sealed = rig.stores.get(rig.ids[0], &name, 0, len).await.unwrap();
        let (_, bytes) = open(&key, &name, &sealed).unwrap();
        match object.backup().unwrap() {
            crate::store::keys::BackupObject::Part { .. } => snapshot.extend(bytes),
            crate::store::keys::BackupObject::Changes { .. } => changes.push(bytes),
        }
    }
    assert!(!changes.is_empty(), "the file went out as changes");
    let new = tempfile::tempdir().unwrap();
    let db = new.path().join("meta.db");
    std::fs::write(&db, &snapshot).unwrap();
    cairn_metadata::restore(&db, &changes)
        .map_err(|(i, e)| format!("{i}: {e}"))
        .unwrap();
    let fs = Fs::open(&db, &new.path().join("cache"), 1 << 30).unwrap();
    let found = fs
        .lookup(&cred, cairn_metadata::InodeId::ROOT, b"f")
        .await
        .unwrap();
    let (bytes, _, _) = fs.read(&cred, found.id, 0, 100).await.unwrap();
    assert_eq!(bytes, b"shipped");
}
