//! Retry delays for the followers and the relay: exponential from 100 ms up
//! to a ceiling, with ±25% jitter, so processes restarted together do not
//! retry in step.

use std::time::Duration;

pub struct Backoff {
    next: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// From 100 ms, doubling, to at most `ceiling`.
    pub fn up_to(ceiling: Duration) -> Backoff {
        Backoff {
            next: Duration::from_millis(100),
            ceiling,
        }
    }

    pub fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.ceiling);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        base.mul_f64(0.75 + f64::from(nanos % 1000) / 2000.0)
    }
}
