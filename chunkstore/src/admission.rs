//! [`Admission`]: the table of connections that have not finished their
//! handshake yet. Nobody is authenticated there, so it is bounded on its own
//! (apart from the authenticated connections' slots) and per peer address:
//! when a peer holds [`MAX_PENDING_PER_IP`] handshakes, or the table holds
//! [`MAX_PENDING`], a newcomer takes the place of the oldest handshake of the
//! busiest peer, which is then dropped. A flood of idle connections thus
//! never shuts the door: a real client finishes its handshake in one round
//! trip, long before enough newer connections arrive to push it out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Handshakes in progress at most, all peers together.
pub const MAX_PENDING: usize = 256;
/// Handshakes in progress at most from one peer address.
pub const MAX_PENDING_PER_IP: usize = 32;

/// The pending-handshake table.
#[derive(Debug)]
pub struct Admission {
    max: usize,
    per_ip: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    total: usize,
    /// Per peer, oldest first: the ticket id and how to drop it.
    peers: HashMap<IpAddr, VecDeque<(u64, oneshot::Sender<()>)>>,
}

/// A place in the table, held until the handshake ends; dropping it frees
/// the place.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
    id: u64,
    /// Fires when a newer connection took this place.
    pub evicted: oneshot::Receiver<()>,
}

impl Admission {
    /// A table of `max` places, `per_ip` of them at most for one peer.
    pub fn new(max: usize, per_ip: usize) -> Arc<Self> {
        Arc::new(Admission {
            max: max.max(1),
            per_ip: per_ip.clamp(1, max.max(1)),
            state: Mutex::new(State::default()),
        })
    }

    /// Gives a new connection from `ip` a place. Returns its ticket and
    /// whether an older handshake had to make room for it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> (Ticket, bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let own = s.peers.get(&ip).map_or(0, VecDeque::len);
        let victim = if own >= self.per_ip {
            Some(ip)
        } else if s.total >= self.max {
            s.peers
                .iter()
                .max_by_key(|(_, q)| q.len())
                .map(|(peer, _)| *peer)
        } else {
            None
        };
        if let Some(victim) = victim {
            s.evict_oldest(victim);
        }
        let id = s.next;
        s.next += 1;
        let (tx, rx) = oneshot::channel();
        s.peers.entry(ip).or_default().push_back((id, tx));
        s.total += 1;
        let ticket = Ticket {
            admission: Arc::clone(self),
            ip,
            id,
            evicted: rx,
        };
        (ticket, victim.is_some())
    }

    /// Handshakes in progress.
    pub fn pending(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl State {
    fn evict_oldest(&mut self, ip: IpAddr) {
        let Some(queue) = self.peers.get_mut(&ip) else {
            return;
        };
        if let Some((_, tx)) = queue.pop_front() {
            self.total -= 1;
            let _ = tx.send(());
        }
        if queue.is_empty() {
            self.peers.remove(&ip);
        }
    }

    fn release(&mut self, ip: IpAddr, id: u64) {
        let Some(queue) = self.peers.get_mut(&ip) else {
            return;
        };
        if let Some(at) = queue.iter().position(|(i, _)| *i == id) {
            queue.remove(at);
            self.total -= 1;
        }
        if queue.is_empty() {
            self.peers.remove(&ip);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self
            .admission
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        s.release(self.ip, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_peer_cannot_hold_more_than_its_share() {
        let table = Admission::new(8, 3);
        let mut tickets: Vec<Ticket> = (0..3).map(|_| table.admit(ip(1)).0).collect();
        let (newest, made_room) = table.admit(ip(1));
        assert!(made_room);
        assert_eq!(tickets[0].evicted.try_recv(), Ok(()));
        assert!(tickets[1].evicted.try_recv().is_err());
        assert_eq!(table.pending(), 3);
        // Another peer is not affected.
        let (_other, made_room) = table.admit(ip(2));
        assert!(!made_room);
        assert_eq!(table.pending(), 4);
        drop(newest);
        tickets.clear();
        assert_eq!(table.pending(), 1);
    }

    #[test]
    fn a_full_table_drops_the_busiest_peers_oldest() {
        let table = Admission::new(4, 3);
        let mut flood: Vec<Ticket> = (0..3).map(|_| table.admit(ip(1)).0).collect();
        let (mut quiet, _) = table.admit(ip(2));
        let (_new, made_room) = table.admit(ip(3));
        assert!(made_room);
        assert_eq!(flood[0].evicted.try_recv(), Ok(()));
        assert!(quiet.evicted.try_recv().is_err());
        assert_eq!(table.pending(), 4);
        // An evicted ticket's drop frees nothing twice.
        flood.remove(0);
        assert_eq!(table.pending(), 4);
    }
}
