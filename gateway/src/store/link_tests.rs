//! The pool's links on faulty memory stores, on a paused clock: a store
//! whose transfers progress stays online while its probes time out, a
//! silent one is still suspect within its grace, placement sends chunks to
//! the idle link, each purpose's bandwidth cap paces on its own, and the
//! round trip and rates are measured.

use std::sync::Arc;
use std::time::Duration;

use cairn_chunkstore::Secret;
use cairn_metadata::StoreId;
use tokio::time::Instant;

use crate::class::ClassSpec;
use crate::store::faulty::{Faulty, Op};
use crate::store::placement::place;
use crate::store::tests::add;
use crate::store::{Caps, Purpose, Reach, StoreError, Stores};

const MIB: u64 = 1 << 20;
const HOUR: Duration = Duration::from_secs(3600);

fn pool(caps: Caps) -> Arc<Stores> {
    Arc::new(Stores::new(Secret::from_bytes(&[7u8; 32]), 8, 0).with_caps(caps))
}

fn bytes(len: u64) -> Arc<Vec<u8>> {
    Arc::new(vec![7u8; len as usize])
}

/// Puts `n` objects of `len` bytes to store `id` one after another, for
/// `purpose`; returns when each finished.
fn putter(
    stores: &Arc<Stores>,
    id: u64,
    n: usize,
    len: u64,
    purpose: Purpose,
) -> tokio::task::JoinHandle<Vec<Instant>> {
    let stores = stores.clone();
    tokio::spawn(async move {
        let mut done = Vec::new();
        for i in 0..n {
            let key = format!("{purpose:?}-{id}-{i}");
            let put = stores.put_for(StoreId(id), &key, bytes(len), purpose);
            put.await.unwrap();
            done.push(Instant::now());
        }
        done
    })
}

#[tokio::test(start_paused = true)]
async fn a_probe_timing_out_while_puts_progress_leaves_the_store_online() {
    let stores = pool(Caps::default());
    let s = add(&stores, 1);
    let id = StoreId(1);
    stores.probe().await;
    assert_eq!(stores.health(id, HOUR).0, Reach::Online);
    // Every call takes 8 s: probes (5 s limit) time out, puts still finish.
    s.set_delay(Some(Duration::from_secs(8)));
    let writer = putter(&stores, 1, 40, 4 * MIB, Purpose::Drain);
    for round in 0..30 {
        stores.probe().await;
        assert_eq!(stores.health(id, HOUR).0, Reach::Online, "round {round}");
        assert!(stores.placeable()[0].online, "round {round}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    writer.abort();
}

#[tokio::test(start_paused = true)]
async fn a_connection_cut_while_puts_progress_leaves_the_store_online() {
    let stores = pool(Caps::default());
    let s = add(&stores, 1);
    let id = StoreId(1);
    stores.probe().await;
    // Puts take 1 s each and keep finishing: bytes flow over the link.
    s.set_delay(Some(Duration::from_secs(1)));
    let writer = putter(&stores, 1, 20, 4 * MIB, Purpose::Drain);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A WAN reset cuts one read's connection.
    s.fail_nth(Op::Get, 1);
    let e = stores.get(id, "k", 0, 0).await.expect_err("cut");
    assert!(matches!(e, StoreError::Transport { .. }), "{e}");
    assert_eq!(stores.health(id, HOUR).0, Reach::Online);
    assert!(stores.placeable()[0].online);
    writer.abort();
}

#[tokio::test(start_paused = true)]
async fn a_silent_store_is_suspect_within_grace_even_with_a_put_hanging() {
    let stores = pool(Caps::default());
    let s = add(&stores, 1);
    let id = StoreId(1);
    stores.probe().await;
    // Two puts at 4 MiB/s give the link a rate.
    s.set_delay(Some(Duration::from_secs(1)));
    putter(&stores, 1, 2, 4 * MIB, Purpose::Drain)
        .await
        .unwrap();
    s.set_delay(None);
    s.set_silent(true);
    let hung = putter(&stores, 1, 1, 4 * MIB, Purpose::Drain);
    let grace = Duration::from_secs(60);
    let start = Instant::now();
    while stores.health(id, grace).0 != Reach::Suspect {
        assert!(start.elapsed() < grace, "still not suspect after the grace");
        stores.probe().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(!stores.placeable()[0].online);
    // Silent on: offline once the grace has passed since its probes failed.
    tokio::time::sleep_until(start + grace + Duration::from_secs(10)).await;
    stores.probe().await;
    assert_eq!(stores.health(id, grace).0, Reach::Offline);
    hung.abort();
}

#[tokio::test(start_paused = true)]
async fn placement_sends_the_next_chunks_to_the_idle_link() {
    let stores = pool(Caps::default());
    let faulty: Vec<Arc<Faulty>> = (1..=3).map(|i| add(&stores, i)).collect();
    stores.probe().await;
    let spec = ClassSpec::default_class();
    // Equal fills and no load: the lowest ids, as before.
    let p = place(&spec, &stores.placeable(), 32 * MIB, &[]);
    assert_eq!(p.targets, vec![Some(StoreId(1)), Some(StoreId(2))]);
    // Stores 1 and 2 are busy with long puts; 3 is idle.
    faulty[0].set_delay(Some(Duration::from_secs(30)));
    faulty[1].set_delay(Some(Duration::from_secs(30)));
    let busy = [
        putter(&stores, 1, 2, 32 * MIB, Purpose::Drain),
        putter(&stores, 2, 2, 32 * MIB, Purpose::Drain),
    ];
    while stores.placeable()[..2].iter().any(|v| v.queued == 0) {
        tokio::task::yield_now().await;
    }
    let p = place(&spec, &stores.placeable(), 32 * MIB, &[]);
    assert!(p.targets.contains(&Some(StoreId(3))), "{:?}", p.targets);
    for b in busy {
        b.await.unwrap();
    }
    // Load gone, stores 1 and 2 hold 64 MiB more: fill decides again.
    let views = stores.placeable();
    assert!(views.iter().all(|v| v.queued == 0));
    let one = ClassSpec::parse("one", Some(1), None, None, None, false, true).unwrap();
    let p = place(&one, &views, 32 * MIB, &[]);
    assert_eq!(p.targets, vec![Some(StoreId(3))]);
}

#[tokio::test(start_paused = true)]
async fn each_purpose_is_paced_by_its_own_cap() {
    let stores = pool(Caps {
        drain: MIB,
        repair: 2 * MIB,
        rebalance: 0,
    });
    add(&stores, 1);
    stores.probe().await;
    let start = Instant::now();
    let drain = putter(&stores, 1, 3, MIB, Purpose::Drain);
    let repair = putter(&stores, 1, 3, MIB, Purpose::Repair);
    let rebalance = putter(&stores, 1, 3, MIB, Purpose::Rebalance);
    let secs = |t: Vec<Instant>| -> Vec<u64> {
        t.into_iter()
            .map(|t| (t - start).as_millis() as u64)
            .collect()
    };
    // 1 MiB/s: a put each second; 2 MiB/s: each half second; no cap: at once.
    assert_eq!(secs(drain.await.unwrap()), vec![0, 1000, 2000]);
    assert_eq!(secs(repair.await.unwrap()), vec![0, 500, 1000]);
    assert_eq!(secs(rebalance.await.unwrap()), vec![0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn the_round_trip_and_rates_are_measured() {
    let stores = pool(Caps::default());
    let s = add(&stores, 1);
    let id = StoreId(1);
    assert_eq!(stores.link(id).rtt, None);
    s.set_delay(Some(Duration::from_millis(40)));
    stores.probe().await;
    let rtt = stores.link(id).rtt.unwrap_or_default();
    assert_eq!(rtt.as_millis(), 40, "{rtt:?}");
    // 4 MiB in 1 s: 4 MiB/s up; 2 MiB read in 0.5 s: 4 MiB/s down.
    s.set_delay(Some(Duration::from_secs(1)));
    stores.put(id, "k", bytes(4 * MIB)).await.unwrap();
    s.set_delay(Some(Duration::from_millis(500)));
    stores.get(id, "k", 0, 2 * MIB).await.unwrap();
    let link = stores.link(id);
    assert_eq!(link.up.map(|r| r.round() as u64), Some(4 * MIB));
    assert_eq!(link.down.map(|r| r.round() as u64), Some(4 * MIB));
    assert_eq!(link.queued, 0);
    assert_eq!(link.idle, Some(Duration::ZERO));
}
