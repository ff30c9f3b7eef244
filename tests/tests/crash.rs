//! Crash consistency against an oracle: writers push FILE_SYNC writes and
//! UNSTABLE+COMMIT batches through `nfs3_client` while the test kill -9s the
//! gateway at random moments. After every restart each byte, size and mtime
//! the server acknowledged as stable must read back exactly (bytes whose
//! writes were never acknowledged may hold anything), and `cairn fsck` must
//! find the metadata consistent.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let seed = test_seed("crash");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut gw = Gateway::start();
    let model: Model = Arc::new(Mutex::new(BTreeMap::new()));
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
        // Kill once a random number of operations have been acknowledged,
        // after a random extra delay, so the kill lands mid-operation.
        let target = rng.random_range(1..=150);
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

        let when = format!("round {round}, after restart");
        gw.restart();
        let mut nfs = mount(&gw, Creds::root()).await;
        verify(&mut nfs, &model, &when).await;
        drop(nfs);
        // fsck reads the metadata as a crash leaves it.
        gw.kill9();
        fsck_ok(&gw, &format!("round {round}"));
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
    drop(nfs);
    gw.stop();
    fsck_ok(&gw, "after a clean stop");
}
