//! Crash consistency against an oracle: writers push FILE_SYNC writes and
//! UNSTABLE+COMMIT batches through `nfs3_client`, and a churner creates,
//! links, renames and removes names, while the test kill -9s the gateway at
//! random moments. After every restart each byte, size and mtime the server
//! acknowledged as stable must read back exactly (bytes whose writes were
//! never acknowledged may hold anything), every acknowledged namespace change
//! must still be there, and `cairn fsck` must find the metadata consistent,
//! both as the crash left it and after recovery.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_tests::{command, mount, test_seed, Creds, Gateway, Nfs, NfsError};
use nfs3_types::nfs3::{nfs_fh3, nfsstat3, nfstime3, stable_how, Nfs3Option, WRITE3resok};
use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};

const ROUNDS: usize = 6;
const WRITERS: usize = 2;
/// Writes land in the first `SPAN` bytes of each file.
const SPAN: usize = 1 << 20;
const MAX_WRITE: usize = 64 * 1024;
const MAX_FILES_PER_WRITER: usize = 6;
/// A round ends (with a kill) once this much time has passed, even if the
/// writers have not reached their target.
const ROUND_CAP: Duration = Duration::from_secs(20);

/// What the oracle knows about one file.
struct FileModel {
    /// `None` until CREATE was acknowledged.
    handle: Option<nfs_fh3>,
    /// Content as far as acknowledged-stable writes define it (zeros elsewhere).
    bytes: Vec<u8>,
    /// Bytes that a write which was never acknowledged as stable may have
    /// changed: anything goes there.
    uncertain: Vec<bool>,
    /// The size must be at least the end of every acknowledged-stable write...
    size_min: u64,
    /// ...and at most the end of every write ever sent.
    size_max: u64,
    /// The latest mtime a stable acknowledgement reported.
    mtime_min: Option<nfstime3>,
}

impl FileModel {
    fn new() -> Self {
        Self {
            handle: None,
            bytes: vec![0; SPAN],
            uncertain: vec![false; SPAN],
            size_min: 0,
            size_max: 0,
            mtime_min: None,
        }
    }

    /// A write is about to be sent: until it is acknowledged as stable, its
    /// range may hold old or new bytes.
    fn sending(&mut self, offset: usize, len: usize) {
        self.uncertain[offset..offset + len].fill(true);
        self.size_max = self.size_max.max((offset + len) as u64);
    }

    /// A write is known stable.
    fn stable(&mut self, offset: usize, data: &[u8]) {
        self.bytes[offset..offset + data.len()].copy_from_slice(data);
        self.uncertain[offset..offset + data.len()].fill(false);
        self.size_min = self.size_min.max((offset + data.len()) as u64);
    }

    fn saw_mtime(&mut self, mtime: Option<nfstime3>) {
        if let Some(m) = mtime {
            if self.mtime_min.is_none_or(|old| time_key(m) > time_key(old)) {
                self.mtime_min = Some(m);
            }
        }
    }
}

fn time_key(t: nfstime3) -> (u32, u32) {
    (t.seconds, t.nseconds)
}

type Model = Arc<Mutex<BTreeMap<String, FileModel>>>;

/// Why a writer stopped.
enum Stop {
    /// The gateway went away under it: expected, the test killed it.
    Disconnected,
    /// The server answered something it must not have.
    Bug(String),
}

fn post_mtime(res: &WRITE3resok) -> Option<nfstime3> {
    match &res.file_wcc.after {
        Nfs3Option::Some(a) => Some(a.mtime),
        Nfs3Option::None => None,
    }
}

/// Classifies a failed call: transport trouble means the kill happened;
/// anything else is a server bug.
fn classify(what: &str, e: NfsError) -> Stop {
    match e {
        NfsError::Timeout(_) => Stop::Bug(format!("{what}: {e}")),
        e if e.is_transport() => Stop::Disconnected,
        e => Stop::Bug(format!("{what}: {e}")),
    }
}

/// One writer: owns the files named `w{id}-*`, runs until its connection
/// fails or it is told to stop, counting acknowledged operations in `acks`.
async fn writer(id: usize, mut nfs: Nfs, model: Model, acks: Arc<AtomicU64>, seed: u64) -> Stop {
    let mut rng = SmallRng::seed_from_u64(seed);
    let root = nfs.root.clone();
    loop {
        let mine: Vec<(String, nfs_fh3)> = {
            let m = model.lock().unwrap();
            m.iter()
                .filter(|(n, _)| n.starts_with(&format!("w{id}-")))
                .filter_map(|(n, f)| Some((n.clone(), f.handle.clone()?)))
                .collect()
        };
        let count_all = model
            .lock()
            .unwrap()
            .keys()
            .filter(|n| n.starts_with(&format!("w{id}-")))
            .count();
        let op = rng.random_range(0..100);
        if mine.len() < 2 || (op < 5 && count_all < MAX_FILES_PER_WRITER) {
            // CREATE a new file; it exists for sure only once acknowledged.
            let name = format!("w{id}-{count_all}");
            model.lock().unwrap().insert(name.clone(), FileModel::new());
            match nfs.create_guarded(&root, &name, 0o644).await {
                Ok(fh) => {
                    model.lock().unwrap().get_mut(&name).unwrap().handle = Some(fh);
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return classify(&format!("CREATE {name}"), e),
            }
            continue;
        }
        let (name, fh) = mine[rng.random_range(0..mine.len())].clone();
        if op < 50 {
            // One FILE_SYNC write.
            let (offset, data) = random_write(&mut rng);
            model
                .lock()
                .unwrap()
                .get_mut(&name)
                .unwrap()
                .sending(offset, data.len());
            match nfs
                .write(&fh, offset as u64, &data, stable_how::FILE_SYNC)
                .await
            {
                Ok(res) if res.committed == stable_how::FILE_SYNC => {
                    let mut m = model.lock().unwrap();
                    let f = m.get_mut(&name).unwrap();
                    f.stable(offset, &data);
                    f.saw_mtime(post_mtime(&res));
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(res) => {
                    return Stop::Bug(format!(
                        "FILE_SYNC write to {name} answered as {}",
                        res.committed
                    ))
                }
                Err(e) => return classify(&format!("FILE_SYNC WRITE {name}"), e),
            }
        } else {
            // A batch of UNSTABLE writes, then COMMIT.
            let mut batch = Vec::new();
            for _ in 0..rng.random_range(1..=6) {
                let (offset, data) = random_write(&mut rng);
                model
                    .lock()
                    .unwrap()
                    .get_mut(&name)
                    .unwrap()
                    .sending(offset, data.len());
                match nfs
                    .write(&fh, offset as u64, &data, stable_how::UNSTABLE)
                    .await
                {
                    Ok(res) => batch.push((offset, data, res.verf, post_mtime(&res))),
                    Err(e) => return classify(&format!("UNSTABLE WRITE {name}"), e),
                }
            }
            match nfs.commit(&fh, 0, 0).await {
                Ok(res) => {
                    if let Some((.., verf, _)) = batch.iter().find(|(.., v, _)| *v != res.verf) {
                        // Legal only if the server restarted in between, which
                        // would have broken this connection.
                        return Stop::Bug(format!(
                            "COMMIT of {name} answered verifier {:?}, a WRITE on the same \
                             connection got {:?}",
                            res.verf, verf
                        ));
                    }
                    let mut m = model.lock().unwrap();
                    let f = m.get_mut(&name).unwrap();
                    for (offset, data, _, mtime) in &batch {
                        f.stable(*offset, data);
                        f.saw_mtime(*mtime);
                    }
                    if let Nfs3Option::Some(a) = &res.file_wcc.after {
                        f.saw_mtime(Some(a.mtime));
                    }
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return classify(&format!("COMMIT {name}"), e),
            }
        }
    }
}

fn random_write(rng: &mut SmallRng) -> (usize, Vec<u8>) {
    let len = if rng.random_bool(0.3) {
        rng.random_range(1..=512)
    } else {
        rng.random_range(1..=MAX_WRITE)
    };
    let offset = rng.random_range(0..=SPAN - len);
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    (offset, data)
}

/// Reads every file back and checks it against the model.
async fn verify(nfs: &mut Nfs, model: &Model, when: &str) {
    let root = nfs.root.clone();
    let names: Vec<String> = model.lock().unwrap().keys().cloned().collect();
    for name in names {
        let acknowledged = model.lock().unwrap()[&name].handle.is_some();
        let fh = match nfs.lookup(&root, &name).await {
            Ok(fh) => fh,
            Err(e) if e.status() == Some(nfsstat3::NFS3ERR_NOENT) && !acknowledged => continue,
            Err(e) => panic!("{when}: {name} (CREATE acknowledged: {acknowledged}): LOOKUP: {e}"),
        };
        let attrs = nfs
            .getattr(&fh)
            .await
            .unwrap_or_else(|e| panic!("{when}: GETATTR {name}: {e}"));
        let data = nfs
            .read_all(&fh)
            .await
            .unwrap_or_else(|e| panic!("{when}: READ {name}: {e}"));
        let m = model.lock().unwrap();
        let f = &m[&name];
        assert_eq!(
            data.len() as u64,
            attrs.size,
            "{when}: {name}: READ length vs size"
        );
        assert!(
            attrs.size >= f.size_min && attrs.size <= f.size_max.max(f.size_min),
            "{when}: {name}: size {} outside [{}, {}] (acknowledged-stable end, largest write end)",
            attrs.size,
            f.size_min,
            f.size_max
        );
        if let Some(i) = (0..data.len()).find(|&i| !f.uncertain[i] && data[i] != f.bytes[i]) {
            let end = (i + 16).min(data.len());
            panic!(
                "{when}: {name}: byte {i} is {:#04x}, acknowledged {:#04x} \
                 (read {:02x?}..., expected {:02x?}...)",
                data[i],
                f.bytes[i],
                &data[i..end],
                &f.bytes[i..end]
            );
        }
        if let Some(min) = f.mtime_min {
            assert!(
                time_key(attrs.mtime) >= time_key(min),
                "{when}: {name}: mtime {:?} is older than an acknowledged write's {:?}",
                attrs.mtime,
                min
            );
        }
    }
}

fn fsck_ok(gw: &Gateway, when: &str) {
    let out = gw.fsck();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.code() == Some(0) && text.contains("consistent"),
        "{when}: cairn fsck should exit 0 and say \"consistent\": {}",
        command::describe(&out)
    );
}

// ------------------------------------------------------------ namespace churn

/// What the oracle knows about a name in the churn directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Yes,
    No,
    /// An operation on it was sent but never acknowledged.
    Unknown,
}

type Names = Arc<Mutex<BTreeMap<String, Known>>>;

/// Names and their states, before or after one operation.
type Change<'a> = Vec<(&'a str, Known)>;

const CHURN_FILES: usize = 12;
const CHURN_DIRS: usize = 4;

fn churn_names() -> BTreeMap<String, Known> {
    let files = (0..CHURN_FILES).map(|i| format!("n{i}"));
    let dirs = (0..CHURN_DIRS).map(|i| format!("d{i}"));
    files.chain(dirs).map(|n| (n, Known::No)).collect()
}

/// Namespace operations (CREATE, REMOVE, LINK, RENAME, MKDIR, RMDIR) in
/// `dir`, each of which the server must make durable before it answers; this
/// also gives fsck link counts and directory entries to check.
async fn churner(
    mut nfs: Nfs,
    dir: nfs_fh3,
    names: Names,
    acks: Arc<AtomicU64>,
    seed: u64,
) -> Stop {
    let mut rng = SmallRng::seed_from_u64(seed);
    loop {
        let file = |rng: &mut SmallRng| format!("n{}", rng.random_range(0..CHURN_FILES));
        let (a, b) = (file(&mut rng), file(&mut rng));
        let d = format!("d{}", rng.random_range(0..CHURN_DIRS));
        let state = |n: &str| names.lock().unwrap()[n];
        let set = |n: &str, k: Known| {
            names.lock().unwrap().insert(n.to_string(), k);
        };
        let (sa, sb, sd) = (state(&a), state(&b), state(&d));
        // Each arm: names touched with their prior states, the call's result,
        // and the states an acknowledgement leaves.
        let (touched, res, after): (Change, _, Change) = match rng.random_range(0..5) {
            0 if sa != Known::Yes => {
                set(&a, Known::Unknown);
                let r = nfs.create_guarded(&dir, &a, 0o644).await.map(|_| ());
                (vec![(a.as_str(), sa)], r, vec![(a.as_str(), Known::Yes)])
            }
            1 if sa != Known::No => {
                set(&a, Known::Unknown);
                let r = nfs.remove(&dir, &a).await;
                (vec![(a.as_str(), sa)], r, vec![(a.as_str(), Known::No)])
            }
            2 if a != b && sa != Known::No && sb == Known::No => {
                let src = match nfs.lookup(&dir, &a).await {
                    Ok(fh) => fh,
                    Err(e)
                        if e.status() == Some(nfsstat3::NFS3ERR_NOENT) && sa == Known::Unknown =>
                    {
                        set(&a, Known::No);
                        continue;
                    }
                    Err(e) => return classify(&format!("LOOKUP churn/{a}"), e),
                };
                set(&b, Known::Unknown);
                let r = nfs.link(&src, &dir, &b).await;
                (vec![(b.as_str(), sb)], r, vec![(b.as_str(), Known::Yes)])
            }
            3 if a != b && sa != Known::No && sb == Known::No => {
                set(&a, Known::Unknown);
                set(&b, Known::Unknown);
                let r = nfs.rename(&dir, &a, &dir, &b).await;
                (
                    vec![(a.as_str(), sa), (b.as_str(), sb)],
                    r,
                    vec![(a.as_str(), Known::No), (b.as_str(), Known::Yes)],
                )
            }
            4 => {
                set(&d, Known::Unknown);
                let mk = sd == Known::No || (sd == Known::Unknown && rng.random_bool(0.5));
                let r = if mk {
                    nfs.mkdir(&dir, &d, 0o755).await.map(|_| ())
                } else {
                    nfs.rmdir(&dir, &d).await
                };
                let now = if mk { Known::Yes } else { Known::No };
                (vec![(d.as_str(), sd)], r, vec![(d.as_str(), now)])
            }
            _ => continue,
        };
        match res {
            Ok(()) => {
                for (n, k) in after {
                    set(n, k);
                }
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let what = format!("churn {touched:?} -> {after:?}");
                let Some(status) = e.status() else {
                    // No answer: the call may or may not have happened, so
                    // its names stay Unknown.
                    return classify(&what, e);
                };
                let unknown: Vec<&str> = touched
                    .iter()
                    .filter(|(_, k)| *k == Known::Unknown)
                    .map(|(n, _)| *n)
                    .collect();
                // The server answered: the call did not happen, so put back
                // what it would have changed.
                for (n, k) in &touched {
                    set(n, *k);
                }
                match status {
                    // Only an earlier unacknowledged call explains such an
                    // answer, and the answer tells us what that call did.
                    nfsstat3::NFS3ERR_EXIST if !unknown.is_empty() => {
                        let target = after.last().expect("one name").0;
                        set(target, Known::Yes);
                    }
                    nfsstat3::NFS3ERR_NOENT if !unknown.is_empty() => {
                        set(touched[0].0, Known::No);
                    }
                    _ => return classify(&what, e),
                }
            }
        }
    }
}

/// Checks every name whose state is known.
async fn verify_churn(nfs: &mut Nfs, dir: &nfs_fh3, names: &Names, when: &str) {
    let snapshot = names.lock().unwrap().clone();
    for (name, known) in snapshot {
        let res = nfs.lookup(dir, &name).await;
        match (known, res) {
            (Known::Unknown, _) => {}
            (Known::Yes, Ok(fh)) => {
                let a = nfs.getattr(&fh).await.unwrap_or_else(|e| panic!("{when}: churn/{name}: {e}"));
                let dir_name = name.starts_with('d');
                assert_eq!(
                    a.type_ == nfs3_types::nfs3::ftype3::NF3DIR,
                    dir_name,
                    "{when}: churn/{name} has type {:?}",
                    a.type_
                );
            }
            (Known::No, Err(e)) if e.status() == Some(nfsstat3::NFS3ERR_NOENT) => {}
            (k, r) => panic!(
                "{when}: churn/{name} should {}exist after an acknowledged operation; LOOKUP gave {:?}",
                if k == Known::Yes { "" } else { "not " },
                r.map(|_| "a handle")
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let seed = test_seed("crash");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut gw = Gateway::start();
    let model: Model = Arc::new(Mutex::new(BTreeMap::new()));
    let names: Names = Arc::new(Mutex::new(churn_names()));
    let churn_dir = {
        let mut nfs = mount(&gw, Creds::root()).await;
        let root = nfs.root.clone();
        nfs.mkdir(&root, "churn", 0o755).await.expect("mkdir churn")
    };
    let mut total_acks = 0;

    for round in 0..ROUNDS {
        let acks = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let nfs = mount(&gw, Creds::root()).await;
            let wseed = seed ^ ((round as u64) << 32) ^ w as u64;
            tasks.push(tokio::spawn(writer(
                w,
                nfs,
                model.clone(),
                acks.clone(),
                wseed,
            )));
        }
        let nfs = mount(&gw, Creds::root()).await;
        tasks.push(tokio::spawn(churner(
            nfs,
            churn_dir.clone(),
            names.clone(),
            acks.clone(),
            seed ^ ((round as u64) << 32) ^ 0xC4u64,
        )));
        // Kill once a random number of operations have been acknowledged,
        // after a random extra delay, so the kill lands mid-operation.
        let target = rng.random_range(1..=600);
        let start = Instant::now();
        while acks.load(Ordering::Relaxed) < target
            && start.elapsed() < ROUND_CAP
            && !tasks.iter().all(|t| t.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_micros(rng.random_range(0..20_000))).await;
        gw.kill9();
        for t in tasks {
            let stop = tokio::time::timeout(Duration::from_secs(90), t)
                .await
                .expect("writer did not notice the kill within 90 s")
                .expect("writer task panicked");
            if let Stop::Bug(e) = stop {
                panic!("round {round}: {e}");
            }
        }
        let n = acks.load(Ordering::Relaxed);
        total_acks += n;
        eprintln!("round {round}: killed after {n} acknowledged operations (target {target})");

        // fsck reads the metadata exactly as the crash left it.
        fsck_ok(&gw, &format!("round {round}, straight after the kill"));
        let when = format!("round {round}, after restart");
        gw.restart();
        let mut nfs = mount(&gw, Creds::root()).await;
        verify(&mut nfs, &model, &when).await;
        verify_churn(&mut nfs, &churn_dir, &names, &when).await;
        drop(nfs);
        // And once more after recovery (kill -9 again, nothing in flight).
        gw.kill9();
        fsck_ok(&gw, &format!("round {round}, after recovery"));
        gw.restart();
    }
    assert!(
        total_acks >= ROUNDS as u64,
        "the writers hardly got anything acknowledged"
    );

    // Old handles from the first rounds still work, and a clean stop leaves
    // consistent metadata too.
    let mut nfs = mount(&gw, Creds::root()).await;
    let handles: Vec<(String, nfs_fh3)> = model
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(n, f)| Some((n.clone(), f.handle.clone()?)))
        .collect();
    for (name, fh) in handles {
        nfs.getattr(&fh)
            .await
            .unwrap_or_else(|e| panic!("handle of {name} after {ROUNDS} crashes: {e}"));
    }
    verify(&mut nfs, &model, "final").await;
    verify_churn(&mut nfs, &churn_dir, &names, "final").await;
    drop(nfs);
    gw.stop();
    fsck_ok(&gw, "after a clean stop");
}
