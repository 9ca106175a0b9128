//! The request mix shared by the wrk script and the `rate` client: one `HOST TOKEN` or
//! `HOST -` (anonymous) line per request, generated once per run with a fixed seed so that
//! every side sees the same sequence.

use std::fmt::Write as _;
use std::path::Path;

use crate::Res;

/// A small deterministic generator (xorshift64*): the mix must be reproducible, not secure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `count` mix lines. Tokens are used round-robin, so every one of them appears when
/// `count * (1 - anonymous)` exceeds their number.
pub(crate) fn write(
    tokens: &Path,
    hosts: &[String],
    count: usize,
    anonymous: f64,
    seed: u64,
    out: &Path,
) -> Res<()> {
    let text = std::fs::read_to_string(tokens)?;
    let tokens: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() || hosts.is_empty() {
        return Err("the mix needs at least one token and one host".into());
    }
    let mut rng = Rng(seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut next_token = 0;
    let mut s = String::with_capacity(count * 64);
    for _ in 0..count {
        let host = &hosts[rng.below(hosts.len())];
        if rng.unit() < anonymous {
            writeln!(s, "{host} -")?;
        } else {
            writeln!(s, "{host} {}", tokens[next_token % tokens.len()])?;
            next_token += 1;
        }
    }
    std::fs::write(out, s)?;
    Ok(())
}

/// Reads a mix file into ready-to-send HTTP/1.1 requests, byte for byte what the wrk
/// script sends (`wrk.format("GET", "/", headers)`).
pub(crate) fn requests(mix: &Path) -> Res<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(mix)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(host), Some(token)) = (parts.next(), parts.next()) else {
            continue;
        };
        out.push(crate::http1::get(host, (token != "-").then_some(token)));
    }
    if out.is_empty() {
        return Err(format!("{}: empty mix", mix.display()).into());
    }
    Ok(out)
}
