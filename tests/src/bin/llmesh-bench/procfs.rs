//! What the benchmark reads about a proxy process from Linux's `/proc`: resident memory
//! now and at its peak, and CPU time used. On other systems every read is `None` and
//! the report leaves those columns empty.

/// Clock ticks per second in `/proc/PID/stat`. This is `USER_HZ`, which Linux fixes at
/// 100 in its ABI on every architecture it runs on (`getconf CLK_TCK`), so there is no
/// need for a `sysconf` call (and `unsafe`) to learn it.
const TICKS_PER_SECOND: f64 = 100.0;

/// Memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most resident at any time since the process started.
    pub peak_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` from `/proc/PID/status`.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// User plus system CPU seconds the process has used (`utime + stime` of
/// `/proc/PID/stat`; its threads included, its children not).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces; the
    // numbered fields start after the last ')'. utime and stime are fields 14 and 15,
    // so the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let me = std::process::id();
        let memory = memory(me).unwrap();
        assert!(memory.rss_kib > 0 && memory.peak_kib >= memory.rss_kib);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
    }
}
