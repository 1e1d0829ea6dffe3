//! A fault-injecting TCP proxy at each replica's `raft_addr` (the address the genesis
//! names), forwarding to the replica's real Raft listener (`--raft-listen`). The test can
//! cut a link in one direction: connections from replica A to B's proxy are then held open
//! and never forwarded (packets that go nowhere, as in a real partition), and the ones
//! already open are cut. Healing lets new connections through and closes the held ones.
//!
//! Every replica connects from 127.0.0.1, so a proxy learns which replica a connection
//! comes from by its owner: the socket's inode in /proc/net/tcp, found among the open
//! files of each replica's process.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// A connection through a proxy, and whether it is held (not forwarded).
struct Conn {
    from: Option<u64>,
    to: u64,
    held: bool,
    handle: AbortHandle,
}

#[derive(Default)]
struct NetState {
    /// Links cut, as (from, to) replica ids.
    blocked: HashSet<(u64, u64)>,
    conns: Vec<Conn>,
    /// Connections held or cut on each link; `None` when the owner was not found.
    cut: HashMap<(Option<u64>, u64), u64>,
}

impl NetState {
    /// Whether a connection from `from` to `to` may pass. One whose owner was not found
    /// passes only while nothing is cut.
    fn passes(&self, from: Option<u64>, to: u64) -> bool {
        match from {
            Some(from) => !self.blocked.contains(&(from, to)),
            None => self.blocked.is_empty(),
        }
    }
}

/// The proxies of a cluster, one per replica.
pub(crate) struct RaftNet {
    state: Arc<Mutex<NetState>>,
    listeners: Vec<JoinHandle<()>>,
}

impl RaftNet {
    /// One proxy per `(replica id, address it listens on, address it forwards to)`;
    /// `pids` says which replica each running process is.
    pub(crate) async fn start(
        links: Vec<(u64, String, String)>,
        pids: Arc<Mutex<HashMap<u32, u64>>>,
    ) -> RaftNet {
        let state = Arc::new(Mutex::new(NetState::default()));
        let mut listeners = Vec::new();
        for (to, listen, target) in links {
            let listener =
                TcpListener::bind(&listen).await.unwrap_or_else(|e| panic!("proxy on {listen}: {e}"));
            listeners.push(tokio::spawn(serve(listener, to, target, state.clone(), pids.clone())));
        }
        RaftNet { state, listeners }
    }

    /// Cuts replica `id` off from `others`, both ways: its connections to them and theirs
    /// to it, the open ones included.
    pub(crate) fn isolate(&self, id: u64, others: &[u64]) {
        let mut state = self.state.lock().unwrap();
        for other in others.iter().filter(|o| **o != id) {
            state.blocked.insert((id, *other));
            state.blocked.insert((*other, id));
        }
        let mut cut = Vec::new();
        for conn in state.conns.iter().filter(|c| !c.held && !c.handle.is_finished()) {
            if !state.passes(conn.from, conn.to) {
                conn.handle.abort();
                cut.push((conn.from, conn.to));
            }
        }
        for link in cut {
            *state.cut.entry(link).or_default() += 1;
        }
    }

    /// Every link works again; the held connections are closed, so their senders open new ones.
    pub(crate) fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        state.blocked.clear();
        for conn in state.conns.iter().filter(|c| c.held) {
            conn.handle.abort();
        }
    }

    /// Connections held or cut on the link from `from` to `to` so far.
    pub(crate) fn cut_on(&self, from: u64, to: u64) -> u64 {
        self.state.lock().unwrap().cut.get(&(Some(from), to)).copied().unwrap_or(0)
    }

    /// Connections whose replica was not found, held or cut while something was cut.
    pub(crate) fn cut_unowned(&self) -> u64 {
        self.state.lock().unwrap().cut.iter().filter(|((from, _), _)| from.is_none()).map(|(_, n)| n).sum()
    }
}

impl Drop for RaftNet {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.abort();
        }
        for conn in &self.state.lock().unwrap().conns {
            conn.handle.abort();
        }
    }
}

async fn serve(
    listener: TcpListener,
    to: u64,
    target: String,
    state: Arc<Mutex<NetState>>,
    pids: Arc<Mutex<HashMap<u32, u64>>>,
) {
    let local = listener.local_addr().unwrap();
    loop {
        let Ok((socket, peer)) = listener.accept().await else { continue };
        let from = owner(peer, local, &pids);
        // Decided and registered under one lock, so a cut made meanwhile cannot miss it.
        let mut state = state.lock().unwrap();
        state.conns.retain(|c| !c.handle.is_finished());
        let held = !state.passes(from, to);
        if held {
            *state.cut.entry((from, to)).or_default() += 1;
        }
        let target = target.clone();
        let task = tokio::spawn(async move {
            if held {
                hold(socket).await;
            } else {
                forward(socket, &target).await;
            }
        });
        state.conns.push(Conn { from, to, held, handle: task.abort_handle() });
    }
}

/// Reads and discards whatever comes, answering nothing, until the sender gives up.
async fn hold(mut socket: TcpStream) {
    let _ = tokio::io::copy(&mut socket, &mut tokio::io::sink()).await;
}

async fn forward(mut socket: TcpStream, target: &str) {
    // The replica behind the proxy is down: the sender sees its connection closed.
    let Ok(mut upstream) = TcpStream::connect(target).await else { return };
    let _ = socket.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
}

/// The replica whose process holds the client end of a connection from `peer` to `local`.
fn owner(peer: SocketAddr, local: SocketAddr, pids: &Mutex<HashMap<u32, u64>>) -> Option<u64> {
    let inode = socket_inode(peer, local)?;
    let link = format!("socket:[{inode}]");
    let pids = pids.lock().unwrap().clone();
    for (pid, id) in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == link.as_str()) {
                return Some(id);
            }
        }
    }
    None
}

/// The inode of the socket whose local address is `peer` and remote address `local`, from
/// /proc/net/tcp (addresses as the kernel prints them: the IPv4 address as a native-endian
/// word, the port big-endian, both in hex).
fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => Some(format!("{:08X}:{:04X}", u32::from_ne_bytes(v4.ip().octets()), v4.port())),
        SocketAddr::V6(_) => None,
    };
    let (want_local, want_remote) = (hex(peer)?, hex(local)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() > 9 && fields[1] == want_local && fields[2] == want_remote)
            .then(|| fields[9].parse().ok())
            .flatten()
    })
}
