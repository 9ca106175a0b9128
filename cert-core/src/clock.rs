//! Wall-clock time, injectable so tests can move it forward.

use std::fmt;
use std::time::SystemTime;

/// The source of "now" for renewal decisions and backoff deadlines.
///
/// Certificates carry absolute validity dates, so this is wall-clock time. Tests implement it
/// with an offset to jump days ahead without waiting; sleeps still use the tokio timer.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
