//! POSIX file semantics through `cairn mount`, written from the standard
//! (unlink(2), rename(2), posix_fallocate(3), fallocate(2), lseek(2),
//! utimensat(2), stat(2)), not copied from any suite: a file deleted or
//! replaced while open stays usable through its descriptor until the last
//! close and is freed after it (or at the next start); fallocate reserves
//! and punches; st_blocks counts what is allocated; files reach 16 TiB;
//! times after 2262 round-trip (and over NFS up to its u32 seconds, 2106).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use cairn_tests::view::mount_view;
use cairn_tests::{mount, poll_until, random_bytes, Creds, Gateway};
use nfs3_types::nfs3::{nfstime3, sattr3, set_atime, set_mtime, stable_how};
use rustix::fs::{FallocateFlags, SeekFrom, Timespec, Timestamps};

const MIB: u64 = 1 << 20;
/// The core's data unit: allocation is counted per slot of this size.
const SLOT: u64 = 4 * MIB;

/// Inodes in use, from statfs (files - free files).
fn inodes_in_use(dir: &Path) -> u64 {
    let st = rustix::fs::statvfs(dir).unwrap();
    st.f_files - st.f_ffree
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// A new file, open for reading and writing.
fn create_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap()
}

fn read_at(f: &File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

#[test]
fn an_unlinked_open_file_is_usable_until_its_last_close_then_freed() {
    let gw = Gateway::start();
    let view = mount_view(&gw);
    let dir = &view.dir;
    let baseline = inodes_in_use(dir);
    let path = dir.join("doomed");
    let data = random_bytes(8, 300 * 1024);
    std::fs::write(&path, &data).unwrap();
    assert_eq!(inodes_in_use(dir), baseline + 1);

    let f = open_rw(&path);
    let second = File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    // The name is gone...
    assert!(!path.exists());
    assert!(std::fs::read_dir(dir).unwrap().next().is_none());
    // ...the file is not: read, write, fstat and ftruncate go on.
    assert_eq!(read_at(&f, 0, data.len()), data);
    f.write_all_at(b"still here", 1000).unwrap();
    assert_eq!(read_at(&second, 1000, 10), b"still here");
    let st = f.metadata().unwrap();
    assert_eq!(st.nlink(), 0, "fstat of an unlinked file");
    assert_eq!(st.len(), data.len() as u64);
    f.set_len(4096).unwrap();
    assert_eq!(second.metadata().unwrap().len(), 4096);
    f.sync_all().unwrap();
    // A new file may take the name meanwhile; the open one is unaffected.
    std::fs::write(&path, b"new").unwrap();
    assert_eq!(read_at(&f, 0, 8), &data[..8]);
    std::fs::remove_file(&path).unwrap();

    // Freed only at the last close.
    drop(f);
    assert_eq!(second.metadata().unwrap().nlink(), 0);
    assert_eq!(read_at(&second, 0, 8), &data[..8]);
    drop(second);
    poll_until(
        "the unlinked file freed",
        Duration::from_secs(10),
        || match inodes_in_use(dir) {
            n if n == baseline => Ok(()),
            n => Err(format!("{n} inodes in use, {baseline} before")),
        },
    );
}

#[test]
fn rename_over_an_open_file_keeps_the_old_file_open() {
    let gw = Gateway::start();
    let view = mount_view(&gw);
    let dir = &view.dir;
    let baseline = inodes_in_use(dir);
    let (old, new) = (dir.join("config"), dir.join("config.tmp"));
    let before = random_bytes(9, 6 * MIB as usize + 5);
    std::fs::write(&old, &before).unwrap();
    let f = open_rw(&old);
    std::fs::write(&new, b"replacement").unwrap();
    // The editor's save: write a new file, rename it over the old name.
    std::fs::rename(&new, &old).unwrap();
    assert_eq!(std::fs::read(&old).unwrap(), b"replacement");
    assert_eq!(read_at(&f, 0, before.len()), before);
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    f.write_all_at(b"x", 0).unwrap();
    assert_eq!(read_at(&f, 0, 2), [b'x', before[1]]);
    assert_eq!(std::fs::read(&old).unwrap(), b"replacement");
    drop(f);
    poll_until(
        "the replaced file freed",
        Duration::from_secs(10),
        || match inodes_in_use(dir) {
            n if n == baseline + 1 => Ok(()),
            n => Err(format!("{n} inodes in use, {} expected", baseline + 1)),
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_deleted_while_open_is_freed_at_the_next_start() {
    let mut gw = Gateway::start();
    let view = mount_view(&gw);
    let dir = &view.dir;
    let mut nfs = mount(&gw, Creds::root()).await;
    let before = nfs.fsstat().await.unwrap();
    let path = dir.join("held");
    std::fs::write(&path, random_bytes(10, 5 * MIB as usize)).unwrap();
    let f = File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 0);
    let held = nfs.fsstat().await.unwrap();
    assert_eq!(held.ffiles + 1, before.ffiles, "the open file still counts");
    // The gateway dies with the file open: nothing holds it any more.
    gw.kill9();
    drop(f);
    gw.restart();
    // Mounting again clears the dead mount the kill left.
    let _view = mount_view(&gw);
    let mut nfs = mount(&gw, Creds::root()).await;
    let after = nfs.fsstat().await.unwrap();
    assert_eq!(after.ffiles, before.ffiles, "the orphan was freed at start");
    assert!(gw.logs().contains("deleted while open"), "{}", gw.logs());
}

#[test]
fn fallocate_reserves_extends_and_punches_holes() {
    let gw = Gateway::start();
    let view = mount_view(&gw);
    let dir = &view.dir;
    let path = dir.join("space");
    let f = create_rw(&path);
    assert_eq!(f.metadata().unwrap().blocks(), 0);

    // Mode 0 grows the file and its allocation.
    rustix::fs::fallocate(&f, FallocateFlags::empty(), 0, 3 * MIB).unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(st.len(), 3 * MIB);
    assert!(st.blocks() * 512 >= 3 * MIB, "blocks {}", st.blocks());
    assert_eq!(read_at(&f, 0, 4096), vec![0u8; 4096]);

    // KEEP_SIZE reserves past the end without changing the size.
    let blocks = st.blocks();
    rustix::fs::fallocate(&f, FallocateFlags::KEEP_SIZE, 3 * MIB, 9 * MIB).unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(st.len(), 3 * MIB);
    assert!(
        st.blocks() > blocks,
        "{} after, {blocks} before",
        st.blocks()
    );
    assert!(st.blocks() * 512 >= 12 * MIB);

    // A range below the size is left as it is (posix_fallocate never shrinks).
    rustix::fs::fallocate(&f, FallocateFlags::empty(), 0, MIB).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 3 * MIB);

    // Punching a hole zeroes the range, keeps the size and the bytes
    // around it, and gives whole slots back.
    let data = random_bytes(11, 3 * SLOT as usize);
    f.write_all_at(&data, 0).unwrap();
    let full = f.metadata().unwrap().blocks();
    let (hole_at, hole_len) = (SLOT - 100, SLOT + 200);
    rustix::fs::fallocate(
        &f,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        hole_at,
        hole_len,
    )
    .unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(st.len(), 3 * SLOT);
    let back = read_at(&f, 0, data.len());
    let (a, b) = (hole_at as usize, (hole_at + hole_len) as usize);
    assert_eq!(back[..a], data[..a]);
    assert!(back[a..b].iter().all(|&x| x == 0), "the hole reads zeros");
    assert_eq!(back[b..], data[b..]);
    rustix::fs::fallocate(
        &f,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        0,
        3 * SLOT,
    )
    .unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(st.len(), 3 * SLOT);
    assert!(full > 0);
    assert_eq!(st.blocks(), 0, "punching the whole file gives all back");
    assert!(read_at(&f, 0, data.len()).iter().all(|&x| x == 0));
    // The bytes stay zero when read again through a fresh open.
    drop(f);
    assert!(std::fs::read(&path).unwrap().iter().all(|&x| x == 0));

    // A small file (kept inline) punched whole reads zeros and allocates nothing.
    let small = dir.join("small");
    std::fs::write(&small, random_bytes(13, 1000)).unwrap();
    let g = open_rw(&small);
    rustix::fs::fallocate(
        &g,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        0,
        1000,
    )
    .unwrap();
    assert_eq!(g.metadata().unwrap().blocks(), 0);
    assert_eq!(read_at(&g, 0, 1000), vec![0u8; 1000]);
    drop(g);

    // Modes cairn does not do are refused as unsupported, changing nothing.
    let f = open_rw(&path);
    for mode in [
        FallocateFlags::PUNCH_HOLE,
        FallocateFlags::COLLAPSE_RANGE,
        FallocateFlags::ZERO_RANGE,
        FallocateFlags::INSERT_RANGE,
    ] {
        let err = rustix::fs::fallocate(&f, mode, 0, SLOT).unwrap_err();
        assert!(
            err == rustix::io::Errno::OPNOTSUPP || err == rustix::io::Errno::INVAL,
            "{mode:?}: {err}"
        );
    }
    assert_eq!(f.metadata().unwrap().len(), 3 * SLOT);
}

#[test]
fn sparse_files_report_only_their_data() {
    let gw = Gateway::start();
    let view = mount_view(&gw);
    let dir = &view.dir;
    let path = dir.join("sparse");
    let f = create_rw(&path);
    f.set_len(1 << 30).unwrap();
    let st = f.metadata().unwrap();
    assert_eq!(st.len(), 1 << 30);
    assert_eq!(st.blocks(), 0, "a 1 GiB hole allocates nothing");
    f.write_all_at(b"data", 512 * MIB).unwrap();
    let st = f.metadata().unwrap();
    assert!(st.blocks() > 0);
    assert!(st.blocks() * 512 <= SLOT, "blocks {}", st.blocks());
    // SEEK_DATA and SEEK_HOLE find the written slot and the holes around it.
    let data = rustix::fs::seek(&f, SeekFrom::Data(0)).unwrap();
    assert_eq!(data, 512 * MIB);
    let hole = rustix::fs::seek(&f, SeekFrom::Hole(512 * MIB)).unwrap();
    assert_eq!(hole, 512 * MIB + SLOT);
    assert_eq!(rustix::fs::seek(&f, SeekFrom::Hole(0)).unwrap(), 0);
    assert_eq!(
        rustix::fs::seek(&f, SeekFrom::Data(1 << 30)).unwrap_err(),
        rustix::io::Errno::NXIO
    );
    // A file written from start to end is fully allocated.
    let full = dir.join("full");
    std::fs::write(&full, random_bytes(12, 100_000)).unwrap();
    let st = std::fs::metadata(&full).unwrap();
    assert!(st.blocks() * 512 >= 100_000, "blocks {}", st.blocks());
    assert!(st.blocks() * 512 < 100_000 + 8192, "blocks {}", st.blocks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_reach_sixteen_tib_less_a_block() {
    let gw = Gateway::start();
    let view = mount_view(&gw);
    let dir = &view.dir;
    // SMB's largest (MS-FSA MAXFILESIZE) and ext4's largest, through the view.
    let smb_max = 0xfff_ffff_0000u64;
    let ours = (16u64 << 40) - 4096;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join("huge"))
        .unwrap();
    f.write_all_at(b"end", smb_max - 3).unwrap();
    assert_eq!(f.metadata().unwrap().len(), smb_max);
    assert_eq!(read_at(&f, smb_max - 3, 3), b"end");
    f.write_all_at(b"!", ours - 1).unwrap();
    assert_eq!(f.metadata().unwrap().len(), ours);
    let err = f.write_at(b"?", ours).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::FBIG.raw_os_error())
    );
    // NFS says the same limit.
    let mut nfs = mount(&gw, Creds::root()).await;
    assert_eq!(nfs.fsinfo().await.unwrap().maxfilesize, ours);
}

/// 2500-06-01T00:00:00Z, with nanoseconds.
const YEAR_2500: i64 = 16_737_868_800;

fn times(atime: (i64, u32), mtime: (i64, u32)) -> Timestamps {
    let spec = |(s, n): (i64, u32)| Timespec {
        tv_sec: s,
        tv_nsec: i64::from(n) as _,
    };
    Timestamps {
        last_access: spec(atime),
        last_modification: spec(mtime),
    }
}

fn stat_times(path: &Path) -> ((i64, u32), (i64, u32)) {
    let st = std::fs::metadata(path).unwrap();
    (
        (st.atime(), st.atime_nsec() as u32),
        (st.mtime(), st.mtime_nsec() as u32),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_past_2262_and_before_1970_round_trip() {
    let mut gw = Gateway::start();
    let view = mount_view(&gw);
    let dir = &view.dir;
    let path = dir.join("timeless");
    std::fs::write(&path, b"t").unwrap();
    let far = (YEAR_2500, 123_456_789);
    // 1960-01-01T00:00:00Z plus half a second.
    let early = (-315_619_200, 500_000_000);
    rustix::fs::utimensat(
        rustix::fs::CWD,
        &path,
        &times(early, far),
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    assert_eq!(stat_times(&path), (early, far));

    // NFSv3 carries u32 seconds: it shows the far date as the last second
    // it can (2106-02-07) and the early one as 1970.
    let mut nfs = mount(&gw, Creds::root()).await;
    let fh = nfs.lookup_path("/timeless").await.unwrap();
    let a = nfs.getattr(&fh).await.unwrap();
    assert_eq!(a.mtime.seconds, u32::MAX);
    assert_eq!(a.atime.seconds, 0);
    // A date NFS can carry, set over NFS, shows as such in the view.
    let late = nfstime3 {
        seconds: u32::MAX - 1,
        nseconds: 42,
    };
    nfs.setattr(
        &fh,
        sattr3 {
            mtime: set_mtime::SET_TO_CLIENT_TIME(late),
            atime: set_atime::SET_TO_CLIENT_TIME(late),
            ..sattr3::default()
        },
    )
    .await
    .unwrap();
    let (_, m) = poll_until(
        "the NFS time in the view",
        Duration::from_secs(5),
        || match stat_times(&path) {
            t if t.1 == (i64::from(u32::MAX - 1), 42) => Ok(t),
            t => Err(format!("{t:?}")),
        },
    );
    assert_eq!(m, (i64::from(u32::MAX - 1), 42));

    // The far and early dates survive a restart (they are stored, not
    // merely cached by the kernel).
    rustix::fs::utimensat(
        rustix::fs::CWD,
        &path,
        &times(early, far),
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    gw.restart();
    let view = mount_view(&gw);
    let dir = &view.dir;
    assert_eq!(stat_times(&dir.join("timeless")), (early, far));
    let mut nfs = mount(&gw, Creds::root()).await;
    let fh = nfs.lookup_path("/timeless").await.unwrap();
    nfs.write(&fh, 0, b"T", stable_how::FILE_SYNC)
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.join("timeless")).unwrap(), b"T");
}

#[test]
fn opening_files_through_the_view_logs_no_unimplemented_calls() {
    let gw = Gateway::start();
    let view = mount_view(&gw);
    let dir = &view.dir;
    for i in 0..20 {
        let path = dir.join(format!("f{i}"));
        std::fs::write(&path, b"some bytes").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"some bytes");
        let f = open_rw(&path);
        f.sync_all().unwrap();
        let _ = rustix::fs::seek(&f, SeekFrom::Data(0));
        std::fs::copy(&path, dir.join(format!("c{i}"))).unwrap();
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let _ = std::fs::metadata(entry.unwrap().path()).unwrap();
    }
    let logs = gw.logs();
    assert!(
        !logs.contains("Not Implemented"),
        "the view logged unimplemented calls:\n{logs}"
    );
}
