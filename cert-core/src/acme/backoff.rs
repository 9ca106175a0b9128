//! Retry delays after failed orders.

use std::time::Duration;

/// The delay before retry number `failures` (1 = after the first failure): exponential from
/// `min`, capped at `max`, with "equal jitter" (uniform in [d/2, d]) so replicas and names
/// that failed together do not retry in lockstep. A server's `Retry-After` is a floor, and
/// is honoured even above `max`; a rate-limit error without one waits `max`.
pub(crate) fn delay(
    failures: u32,
    min: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    rate_limited: bool,
) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let base = min.saturating_mul(1u32 << exp).min(max);
    let half = base / 2;
    let jitter = half.mul_f64(rand::random::<f64>());
    let mut d = half + jitter;
    if rate_limited && retry_after.is_none() {
        d = d.max(max);
    }
    match retry_after {
        Some(ra) => d.max(ra),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let min = Duration::from_secs(10);
        let max = Duration::from_secs(3600);
        for _ in 0..100 {
            let d1 = delay(1, min, max, None, false);
            assert!(d1 >= Duration::from_secs(5) && d1 <= min, "{d1:?}");
            let d4 = delay(4, min, max, None, false);
            assert!(d4 >= Duration::from_secs(40) && d4 <= Duration::from_secs(80));
            let d99 = delay(99, min, max, None, false);
            assert!(d99 >= max / 2 && d99 <= max);
        }
        let ra = Duration::from_secs(7200);
        assert_eq!(delay(1, min, max, Some(ra), false), ra);
        assert_eq!(delay(1, min, max, None, true), max);
    }
}
