//! Unit tests of the core against a real SQLite file and cache folder.

use std::collections::HashMap;

use cairn_metadata::{FileKind, InodeId};
use tempfile::TempDir;

use super::data::MAX_IO;
use super::*;

pub(super) fn open(max_cache: u64) -> (TempDir, Fs) {
    let dir = tempfile::tempdir().unwrap();
    let fs = Fs::open(
        &dir.path().join("meta.db"),
        &dir.path().join("cache"),
        max_cache,
    )
    .unwrap();
    (dir, fs)
}

pub(super) fn root() -> Credentials {
    Credentials::root()
}

pub(super) async fn file(fs: &Fs, dir: InodeId, name: &str) -> Inode {
    fs.create(
        &root(),
        dir,
        name.as_bytes(),
        CreateHow::Guarded(SetAttr::default()),
    )
    .await
    .unwrap()
}

pub(super) async fn mkdir(fs: &Fs, dir: InodeId, name: &str) -> Inode {
    fs.mkdir(&root(), dir, name.as_bytes(), SetAttr::default())
        .await
        .unwrap()
}

pub(super) fn assert_consistent(fs: &Fs) {
    let problems = fs.metadata().check().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn rename_replaces_moves_and_refuses() {
    let (_d, fs) = open(1 << 30);
    let r = InodeId::ROOT;
    let a = mkdir(&fs, r, "a").await;
    let b = mkdir(&fs, r, "b").await;
    let x = file(&fs, a.id, "x").await;
    let y = file(&fs, b.id, "y").await;

    // Across directories, replacing a file: y's inode is gone.
    fs.rename(&root(), a.id, b"x", b.id, b"y").await.unwrap();
    assert!(matches!(
        fs.lookup(&root(), a.id, b"x").await,
        Err(FsError::NotFound)
    ));
    assert_eq!(fs.lookup(&root(), b.id, b"y").await.unwrap().id, x.id);
    assert!(matches!(fs.getattr(y.id).await, Err(FsError::Stale(_))));

    // A directory into its own subtree.
    let sub = mkdir(&fs, a.id, "sub").await;
    let deep = mkdir(&fs, sub.id, "deep").await;
    assert!(matches!(
        fs.rename(&root(), r, b"a", deep.id, b"a").await,
        Err(FsError::Invalid(_))
    ));
    assert!(matches!(
        fs.rename(&root(), r, b"a", a.id, b"self").await,
        Err(FsError::Invalid(_))
    ));

    // A directory onto a non-empty directory, onto a file; a file onto a directory.
    assert!(matches!(
        fs.rename(&root(), r, b"b", r, b"a").await,
        Err(FsError::NotEmpty)
    ));
    let f = file(&fs, r, "f").await;
    assert!(matches!(
        fs.rename(&root(), r, b"b", r, b"f").await,
        Err(FsError::NotDir)
    ));
    assert!(matches!(
        fs.rename(&root(), r, b"f", r, b"b").await,
        Err(FsError::IsDir)
    ));

    // A directory onto an empty directory moves it and fixes link counts.
    let empty = mkdir(&fs, r, "empty").await;
    fs.rename(&root(), a.id, b"sub", r, b"empty").await.unwrap();
    assert!(matches!(fs.getattr(empty.id).await, Err(FsError::Stale(_))));
    assert_eq!(fs.getattr(sub.id).await.unwrap().parent, Some(r));
    assert_eq!(fs.lookup(&root(), sub.id, b"..").await.unwrap().id, r);
    assert_eq!(fs.getattr(a.id).await.unwrap().nlink, 2);

    // Renaming onto another name of the same file changes nothing.
    fs.link(&root(), f.id, r, b"f2").await.unwrap();
    fs.rename(&root(), r, b"f", r, b"f2").await.unwrap();
    assert_eq!(fs.lookup(&root(), r, b"f").await.unwrap().id, f.id);
    assert_eq!(fs.getattr(f.id).await.unwrap().nlink, 2);

    // A missing source, and a name too long.
    assert!(matches!(
        fs.rename(&root(), r, b"nope", r, b"z").await,
        Err(FsError::NotFound)
    ));
    let long = vec![b'n'; 256];
    assert!(matches!(
        fs.rename(&root(), r, b"f", r, &long).await,
        Err(FsError::NameTooLong)
    ));
    assert_consistent(&fs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdir_pages_stay_exact_while_the_directory_changes() {
    let (_d, fs) = open(1 << 30);
    let dir = mkdir(&fs, InodeId::ROOT, "big").await.id;
    let names: Vec<String> = (0..10_000).map(|i| format!("keep-{i:05}")).collect();
    // Create in batches so the group commit gathers them.
    let fs = std::sync::Arc::new(fs);
    for chunk in names.chunks(500) {
        let mut set = tokio::task::JoinSet::new();
        for n in chunk {
            let (fs, n) = (fs.clone(), n.clone());
            set.spawn(async move {
                fs.create(
                    &root(),
                    dir,
                    n.as_bytes(),
                    CreateHow::Guarded(SetAttr::default()),
                )
                .await
                .map(|_| ())
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
    }
    for i in 0..500 {
        file(&fs, dir, &format!("tmp-{i}")).await;
    }
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut cookie = 0;
    let mut page = 0;
    loop {
        let (items, eof) = fs
            .readdir(&root(), dir, cookie, 97, page % 2 == 0)
            .await
            .unwrap();
        for it in &items {
            *seen.entry(it.name.clone()).or_default() += 1;
            cookie = it.cookie;
        }
        // Churn between pages: new names appear, temporary ones go.
        file(&fs, dir, &format!("new-{page}")).await;
        if page < 500 {
            fs.remove(&root(), dir, format!("tmp-{page}").as_bytes())
                .await
                .unwrap();
        }
        page += 1;
        if eof {
            break;
        }
    }
    for n in &names {
        assert_eq!(
            seen.get(n.as_bytes()),
            Some(&1),
            "{n} seen {:?} times",
            seen.get(n.as_bytes())
        );
    }
    assert!(seen.values().all(|&c| c == 1), "an entry was listed twice");
    assert_eq!(seen.get(&b"."[..]), Some(&1));
    assert_eq!(seen.get(&b".."[..]), Some(&1));
    assert_consistent(&fs);
}

#[tokio::test]
async fn truncate_and_extend() {
    let (_d, fs) = open(1 << 30);
    let f = file(&fs, InodeId::ROOT, "t").await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fs.write(&root(), f.id, 0, data.clone(), Stability::FileSync)
        .await
        .unwrap();
    let cut = SetAttr {
        size: Some(1000),
        ..SetAttr::default()
    };
    assert_eq!(
        fs.setattr(&root(), f.id, cut, None).await.unwrap().size,
        1000
    );
    let grow = SetAttr {
        size: Some(50_000),
        ..SetAttr::default()
    };
    assert_eq!(
        fs.setattr(&root(), f.id, grow, None).await.unwrap().size,
        50_000
    );
    let (back, eof, _) = fs.read(&root(), f.id, 0, 60_000).await.unwrap();
    assert!(eof);
    assert_eq!(back.len(), 50_000);
    assert_eq!(&back[..1000], &data[..1000]);
    assert!(
        back[1000..].iter().all(|&b| b == 0),
        "old bytes came back after a truncate"
    );
    // Truncate through an unchecked create of an existing file.
    let again = fs
        .create(
            &root(),
            InodeId::ROOT,
            b"t",
            CreateHow::Unchecked(SetAttr {
                size: Some(0),
                ..SetAttr::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!((again.id, again.size), (f.id, 0));
}

#[tokio::test]
async fn sparse_file_past_4_gib() {
    let (_d, fs) = open(1 << 30);
    let f = file(&fs, InodeId::ROOT, "sparse").await;
    let off = 5u64 << 30;
    let data = vec![0xabu8; 1 << 20];
    let (attr, _) = fs
        .write(&root(), f.id, off, data.clone(), Stability::Unstable)
        .await
        .unwrap();
    assert_eq!(attr.size, off + (1 << 20));
    fs.commit(f.id).await.unwrap();
    let (hole, _, _) = fs.read(&root(), f.id, 4 << 30, 4096).await.unwrap();
    assert!(hole.iter().all(|&b| b == 0));
    let (back, eof, _) = fs.read(&root(), f.id, off, 1 << 20).await.unwrap();
    assert!(eof);
    assert!(back == data, "sparse data read back wrong");
    assert!(fs.cache().used_bytes() < 8 << 20, "the hole was allocated");
}

#[tokio::test]
async fn full_cache_answers_no_space_and_keeps_old_data() {
    let (_d, fs) = open(4 << 20);
    let f = file(&fs, InodeId::ROOT, "f").await;
    let data = vec![7u8; 3 << 20];
    fs.write(&root(), f.id, 0, data.clone(), Stability::FileSync)
        .await
        .unwrap();
    let err = fs
        .write(
            &root(),
            f.id,
            3 << 20,
            vec![9u8; 2 << 20],
            Stability::FileSync,
        )
        .await;
    assert!(matches!(err, Err(FsError::NoSpace)), "{err:?}");
    let (back, _, attr) = fs
        .read(&root(), f.id, (2 << 20) + 5, 1 << 20)
        .await
        .unwrap();
    assert_eq!(attr.size, 3 << 20);
    assert_eq!(back.len(), (1 << 20) - 5);
    assert!(back.iter().all(|&b| b == 7), "old data changed after NOSPC");
}

#[tokio::test]
async fn permissions_are_enforced_for_other_users() {
    let (_d, fs) = open(1 << 30);
    let r = InodeId::ROOT;
    let f = fs
        .create(
            &root(),
            r,
            b"f",
            CreateHow::Guarded(SetAttr {
                mode: Some(0o644),
                ..SetAttr::default()
            }),
        )
        .await
        .unwrap();
    let private = fs
        .mkdir(
            &root(),
            r,
            b"p",
            SetAttr {
                mode: Some(0o700),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    let user = Credentials::user(1000, 1000);
    assert!(matches!(
        fs.write(&user, f.id, 0, b"x".to_vec(), Stability::FileSync)
            .await,
        Err(FsError::Access)
    ));
    assert!(fs.read(&user, f.id, 0, 10).await.is_ok());
    assert!(matches!(
        fs.readdir(&user, private.id, 0, 10, false).await,
        Err(FsError::Access)
    ));
    assert!(matches!(
        fs.create(&user, r, b"mine", CreateHow::Guarded(SetAttr::default()))
            .await,
        Err(FsError::Access)
    ));
    let chmod = SetAttr {
        mode: Some(0o777),
        ..SetAttr::default()
    };
    assert!(matches!(
        fs.setattr(&user, f.id, chmod, None).await,
        Err(FsError::NotOwner)
    ));
    // In a world-writable directory the user creates files they own.
    let open_dir = fs
        .mkdir(
            &root(),
            r,
            b"pub",
            SetAttr {
                mode: Some(0o777),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    let mine = fs
        .create(
            &user,
            open_dir.id,
            b"mine",
            CreateHow::Guarded(SetAttr::default()),
        )
        .await
        .unwrap();
    assert_eq!((mine.uid, mine.gid), (1000, 1000));
}

#[tokio::test]
async fn exclusive_create_is_idempotent_per_verifier() {
    let (_d, fs) = open(1 << 30);
    let r = InodeId::ROOT;
    let a = fs
        .create(&root(), r, b"e", CreateHow::Exclusive(*b"verifier"))
        .await
        .unwrap();
    let again = fs
        .create(&root(), r, b"e", CreateHow::Exclusive(*b"verifier"))
        .await
        .unwrap();
    assert_eq!(a.id, again.id);
    assert!(matches!(
        fs.create(&root(), r, b"e", CreateHow::Exclusive(*b"other!!!"))
            .await,
        Err(FsError::Exists)
    ));
    assert!(matches!(
        fs.create(&root(), r, b"e", CreateHow::Guarded(SetAttr::default()))
            .await,
        Err(FsError::Exists)
    ));
}

#[tokio::test]
async fn recovery_trims_bytes_past_the_recorded_size() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, cache) = (dir.path().join("meta.db"), dir.path().join("cache"));
    let big = (data::INLINE_MAX + 100) as usize;
    let (id, small) = {
        let fs = Fs::open(&meta, &cache, 1 << 30).unwrap();
        let f = file(&fs, InodeId::ROOT, "f").await;
        fs.write(&root(), f.id, 0, vec![1u8; big], Stability::FileSync)
            .await
            .unwrap();
        // A write that reached the cache but whose metadata never committed.
        fs.cache().write(f.id, big as u64, &[2u8; 50]).unwrap();
        // And a cache file an unfinished spill left beside inline bytes.
        let s = file(&fs, InodeId::ROOT, "small").await;
        fs.write(&root(), s.id, 0, vec![3u8; 10], Stability::FileSync)
            .await
            .unwrap();
        fs.cache().write(s.id, 0, &[4u8; 4096]).unwrap();
        fs.metadata().close();
        (f.id, s.id)
    };
    let fs = Fs::open(&meta, &cache, 1 << 30).unwrap();
    assert!(
        !fs.cache().exists(small).unwrap(),
        "the spill leftover was kept"
    );
    // Extending now must show zeros, not the unacknowledged bytes.
    let grow = |n| SetAttr {
        size: Some(n),
        ..SetAttr::default()
    };
    fs.setattr(&root(), id, grow(big as u64 + 50), None)
        .await
        .unwrap();
    let (back, _, _) = fs.read(&root(), id, 0, MAX_IO).await.unwrap();
    assert!(back[..big].iter().all(|&b| b == 1));
    assert!(
        back[big..].iter().all(|&b| b == 0),
        "unacknowledged bytes came back"
    );
    fs.setattr(&root(), small, grow(20), None).await.unwrap();
    let (back, _, _) = fs.read(&root(), small, 0, 100).await.unwrap();
    assert_eq!(back, [[3u8; 10], [0u8; 10]].concat());
}

#[tokio::test]
async fn small_files_stay_inline_until_they_grow() {
    let (_d, fs) = open(1 << 30);
    let f = file(&fs, InodeId::ROOT, "grow").await;
    let first: Vec<u8> = (0..5000u32).map(|i| (i % 199) as u8).collect();
    fs.write(&root(), f.id, 0, first.clone(), Stability::Unstable)
        .await
        .unwrap();
    fs.commit(f.id).await.unwrap();
    assert!(
        !fs.cache().exists(f.id).unwrap(),
        "a 5,000-byte file got a cache file"
    );
    // Overwrite inside, then shrink and check the tail is gone.
    fs.write(&root(), f.id, 100, vec![9u8; 10], Stability::FileSync)
        .await
        .unwrap();
    let cut = SetAttr {
        size: Some(200),
        ..SetAttr::default()
    };
    fs.setattr(&root(), f.id, cut, None).await.unwrap();
    let grow = SetAttr {
        size: Some(300),
        ..SetAttr::default()
    };
    fs.setattr(&root(), f.id, grow, None).await.unwrap();
    let (back, _, _) = fs.read(&root(), f.id, 0, 1000).await.unwrap();
    let mut want = first[..200].to_vec();
    want[100..110].fill(9);
    want.resize(300, 0);
    assert_eq!(back, want);
    // A write past the inline limit moves everything to the cache.
    let far = data::INLINE_MAX + 10;
    fs.write(&root(), f.id, far, vec![7u8; 10], Stability::FileSync)
        .await
        .unwrap();
    assert!(fs.cache().exists(f.id).unwrap());
    assert_eq!(fs.metadata().read(|v| v.inline_data(f.id)).unwrap(), None);
    let (back, _, attr) = fs.read(&root(), f.id, 0, MAX_IO).await.unwrap();
    assert_eq!(attr.size, far + 10);
    assert_eq!(&back[..300], &want[..]);
    assert!(back[300..far as usize].iter().all(|&b| b == 0));
    assert_eq!(&back[far as usize..], &[7u8; 10]);
    // Deleting the file drops its bytes wherever they are.
    let g = file(&fs, InodeId::ROOT, "inline").await;
    fs.write(&root(), g.id, 0, vec![1u8; 10], Stability::FileSync)
        .await
        .unwrap();
    fs.remove(&root(), InodeId::ROOT, b"inline").await.unwrap();
    assert_eq!(fs.metadata().read(|v| v.inline_data(g.id)).unwrap(), None);
    assert_consistent(&fs);
}

#[tokio::test]
async fn names_and_kinds_are_checked() {
    let (_d, fs) = open(1 << 30);
    let r = InodeId::ROOT;
    let long = vec![b'a'; 256];
    assert!(matches!(
        fs.create(&root(), r, &long, CreateHow::Guarded(SetAttr::default()))
            .await,
        Err(FsError::NameTooLong)
    ));
    assert!(matches!(
        fs.mkdir(&root(), r, b"a/b", SetAttr::default()).await,
        Err(FsError::Invalid(_))
    ));
    let d = mkdir(&fs, r, "d").await;
    file(&fs, d.id, "inside").await;
    assert!(matches!(
        fs.rmdir(&root(), r, b"d").await,
        Err(FsError::NotEmpty)
    ));
    assert!(matches!(
        fs.remove(&root(), r, b"d").await,
        Err(FsError::IsDir)
    ));
    let f = file(&fs, r, "f").await;
    assert!(matches!(
        fs.rmdir(&root(), r, b"f").await,
        Err(FsError::NotDir)
    ));
    assert!(matches!(
        fs.lookup(&root(), f.id, b"x").await,
        Err(FsError::NotDir)
    ));
    assert!(matches!(
        fs.write(&root(), f.id, MAX_FILE_SIZE, vec![1], Stability::Unstable)
            .await,
        Err(FsError::FileTooBig)
    ));
    let s = fs
        .symlink(&root(), r, b"s", b"/target/path", SetAttr::default())
        .await
        .unwrap();
    assert_eq!(s.kind, FileKind::Symlink);
    assert_eq!(fs.readlink(&root(), s.id).await.unwrap().1, b"/target/path");
    assert!(matches!(
        fs.readlink(&root(), f.id).await,
        Err(FsError::Invalid(_))
    ));
    fs.remove(&root(), r, b"f").await.unwrap();
    assert!(matches!(fs.getattr(f.id).await, Err(FsError::Stale(_))));
    assert_consistent(&fs);
}

/// The last close of an open file can land while the remove of its last
/// name waits to commit: the remove saw the file open, the close read it
/// still named. The file must still be freed (it once stayed, nameless and
/// closed, until the next restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_close_while_the_remove_commits_still_frees_the_file() {
    use std::sync::mpsc;
    let (_d, fs) = open(1 << 30);
    let fs = std::sync::Arc::new(fs);
    let f = file(&fs, InodeId::ROOT, "doomed").await;
    fs.open_handle(f.id).await.unwrap();

    // A job that holds the writer until told: its batch commits after it.
    // Each is queued by its first poll, here, so the order is the test's.
    let wait = std::time::Duration::from_secs(30);
    let hold = |fs: &std::sync::Arc<Fs>| {
        let (started_tx, started) = mpsc::channel::<()>();
        let (go, go_rx) = mpsc::channel::<()>();
        let fs = fs.clone();
        let job = Box::pin(async move {
            fs.meta
                .write(false, move |_tx| {
                    let _ = started_tx.send(());
                    let _ = go_rx.recv_timeout(wait);
                    Ok::<_, FsError>(())
                })
                .await
        });
        (job, started, go)
    };
    let (mut first, first_started, first_go) = hold(&fs);
    assert!(futures_util::poll!(first.as_mut()).is_pending());
    first_started.recv_timeout(wait).unwrap();
    // Queued behind `first`: the remove, then a job that holds the batch
    // open after the remove's step ran.
    let remover = fs.clone();
    let mut remove =
        Box::pin(async move { remover.remove(&root(), InodeId::ROOT, b"doomed").await });
    assert!(futures_util::poll!(remove.as_mut()).is_pending());
    let (mut second, second_started, second_go) = hold(&fs);
    assert!(futures_util::poll!(second.as_mut()).is_pending());
    first_go.send(()).unwrap();
    first.await.unwrap();
    second_started.recv_timeout(wait).unwrap();
    // The remove's step has run (it saw the file open), not committed: the
    // last close reads the file still named.
    fs.release_handle(f.id).await.unwrap();
    second_go.send(()).unwrap();
    second.await.unwrap();
    remove.await.unwrap();
    assert!(
        fs.metadata().read(|v| v.inode(f.id)).unwrap().is_none(),
        "a closed file with no name is still there"
    );
    assert_consistent(&fs);
}
