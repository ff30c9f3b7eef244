//! The disk under the ingest cache: its size and free space, and the room
//! the cache leaves free on it. The metadata (SQLite) lives on the same disk
//! by default and needs room for every change, deletes included, so the
//! cache never fills the disk: it keeps [`reserve_for`] free, and its size
//! limit is capped at the disk's size less that reserve ([`cap_limit`]).

use std::path::Path;

const MIB: u64 = 1 << 20;

/// The least the cache leaves free on its disk.
pub const MIN_RESERVE: u64 = 32 * MIB;
/// The most it leaves free (5% of a very large disk is more than SQLite
/// will ever need at once).
pub const MAX_RESERVE: u64 = 2048 * MIB;

/// A disk with less free than this is full, for what fails on it.
pub const FULL: u64 = MIB;

/// Size and free space of the filesystem holding a path, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    /// Free to this (unprivileged) process: what a write can still use.
    pub avail: u64,
}

/// The filesystem holding `dir`, as `statvfs` reports it.
pub fn space(dir: &Path) -> std::io::Result<Space> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(Space {
        total: st.f_blocks.saturating_mul(st.f_frsize),
        avail: st.f_bavail.saturating_mul(st.f_frsize),
    })
}

/// The free space the cache leaves on a disk of `total` bytes: 5% of it,
/// at least [`MIN_RESERVE`] and at most [`MAX_RESERVE`].
pub fn reserve_for(total: u64) -> u64 {
    (total / 20).clamp(MIN_RESERVE, MAX_RESERVE)
}

/// The cache limit to use: `configured`, or the disk's size less the
/// reserve where that is smaller.
pub fn cap_limit(configured: u64, total: u64, reserve: u64) -> u64 {
    configured.min(total.saturating_sub(reserve))
}

/// Bytes shown with a binary unit, for people.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_five_percent_within_bounds() {
        assert_eq!(reserve_for(200 * MIB), MIN_RESERVE);
        assert_eq!(reserve_for(10_000 * MIB), 500 * MIB);
        assert_eq!(reserve_for(1 << 50), MAX_RESERVE);
        assert_eq!(reserve_for(0), MIN_RESERVE);
    }

    #[test]
    fn limit_is_capped_at_the_disk_less_the_reserve() {
        let (gib64, disk) = (64u64 << 30, 200 * MIB);
        assert_eq!(cap_limit(gib64, disk, reserve_for(disk)), 168 * MIB);
        assert_eq!(cap_limit(MIB, disk, reserve_for(disk)), MIB);
        assert_eq!(cap_limit(gib64, 10 * MIB, MIN_RESERVE), 0);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(168 * MIB), "168.0 MiB");
        assert_eq!(human(64 << 30), "64.0 GiB");
    }
}
