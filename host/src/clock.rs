//! Where times come from. The ledger never reads a clock: a node's producer asks a
//! `Clock` for block times, the merchant API for invoice times, and tests set one by hand.

use std::sync::atomic::Ordering;

/// Milliseconds since the Unix epoch by the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Where block times come from. The ledger never reads a clock; the producer asks this.
pub trait Clock: Send + Sync {
    /// Wall-clock time, ms since the Unix epoch: the block's time, within bounds.
    fn now_ms(&self) -> u64;
    /// A clock that only moves forward at the rate time passes, whatever happens to the
    /// wall clock (ms from an arbitrary start): the producer bounds block times with it.
    fn monotonic_ms(&self) -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// A clock that moves only when told: tests move a town through its sale, spending
/// period and expiry without waiting for the calendar (`set`: time passes), and change
/// the wall clock alone as an operator or a bad time server could (`jump`).
pub struct ManualClock(pub std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn new(ms: u64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicU64::new(ms), std::sync::atomic::AtomicU64::new(0))
    }

    /// Time passes until the wall clock reads `ms` (the monotonic clock moves as much;
    /// setting an earlier time moves the wall clock back alone).
    pub fn set(&self, ms: u64) {
        let before = self.0.swap(ms, Ordering::SeqCst);
        self.1.fetch_add(ms.saturating_sub(before), Ordering::SeqCst);
    }

    /// The wall clock is changed to `ms`; no time passes.
    pub fn jump(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> u64 {
        self.1.load(Ordering::SeqCst)
    }
}
