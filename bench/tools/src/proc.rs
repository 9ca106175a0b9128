//! Readers for `/proc/PID/stat` (CPU time) and `/proc/PID/status` (resident set).

use crate::Res;

/// Clock ticks per second for `/proc/PID/stat` times. It is 100 on every Linux build we run
/// on (`getconf CLK_TCK`); `BENCH_CLK_TCK` overrides it without needing libc.
fn clk_tck() -> u64 {
    std::env::var("BENCH_CLK_TCK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// User plus system CPU time of one process (all its threads), in µs.
pub(crate) fn cpu_us_one(pid: u32) -> Res<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: split after the last `)`.
    let rest = stat.rsplit_once(')').ok_or("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok((utime + stime) * 1_000_000 / clk_tck())
}

/// The summed CPU time of `pids`, in µs.
pub(crate) fn cpu_us(pids: &[u32]) -> Res<u64> {
    pids.iter().map(|&p| cpu_us_one(p)).sum()
}

/// The summed `VmRSS` of `pids`, in KiB.
pub(crate) fn rss_kib(pids: &[u32]) -> Res<u64> {
    let mut total = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .ok_or("no VmRSS")?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .ok_or("malformed VmRSS")?
            .parse()?;
        total += kib;
    }
    Ok(total)
}
