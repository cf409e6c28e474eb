//! Token-bucket limiter for log lines caused by peers, so a hostile peer cannot flood the log.

/// Allows `burst` events, then one per `interval_ns`; counts what it suppressed.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    interval_ns: u64,
    burst: u32,
    tokens: u32,
    last: u64,
    suppressed: u64,
}

impl RateLimit {
    /// A limiter that starts full.
    pub const fn new(interval_ns: u64, burst: u32) -> Self {
        Self {
            interval_ns,
            burst,
            tokens: burst,
            last: 0,
            suppressed: 0,
        }
    }

    /// Whether an event at `now` may be logged. When it may after some were dropped, returns
    /// how many were dropped since the last allowed one (so the log line can say so).
    pub fn allow(&mut self, now: u64) -> Option<u64> {
        if self.interval_ns > 0 && now > self.last {
            let refill = (now - self.last) / self.interval_ns;
            if refill > 0 {
                self.tokens = (self.tokens as u64 + refill).min(self.burst as u64) as u32;
                self.last += refill * self.interval_ns;
            }
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1;
        Some(core::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let mut r = RateLimit::new(100, 3);
        assert_eq!(r.allow(0), Some(0));
        assert_eq!(r.allow(0), Some(0));
        assert_eq!(r.allow(1), Some(0));
        assert_eq!(r.allow(2), None);
        assert_eq!(r.allow(50), None);
        assert_eq!(r.allow(100), Some(2));
        assert_eq!(r.allow(150), None);
        assert_eq!(r.allow(1_000_000), Some(1));
        // refilled to the burst, not beyond
        assert!(r.allow(1_000_000).is_some());
        assert!(r.allow(1_000_000).is_some());
        assert!(r.allow(1_000_000).is_none());
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let mut r = RateLimit::new(100, 1);
        assert!(r.allow(1000).is_some());
        assert!(r.allow(10).is_none());
    }
}
