//! The budget ledger's arithmetic, shared by the operator (which keeps it in Budget
//! status) and the sidecar's local runner (which keeps it in memory), so both fold usage
//! and grant leases identically.
//!
//! Each reporting sidecar has an entry: the last batch sequence folded (so a resent
//! batch is never counted twice), its lease (spend it may make without asking), and when
//! it was last heard from. Leases of sidecars silent for longer than [`LEASE_TTL_MS`] no
//! longer count as taken: a sidecar that died gives its lease back by going quiet, and a
//! live sidecar stops spending a lease it could not renew within the same time.

use serde::{Deserialize, Serialize};

/// How long a lease lives without being renewed.
pub const LEASE_TTL_MS: i64 = 30_000;
/// Entries silent for this long are forgotten. Far longer than any retry of a batch, so
/// deduplication never forgets a batch that could still be resent.
pub const FORGET_MS: i64 = 15 * 60_000;

/// One sidecar's entry in a budget's ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reporter {
    /// The sidecar's reporting id (pod name and a per-process suffix).
    pub id: String,
    /// The last batch folded.
    pub seq: u64,
    /// Its lease, micro-dollars.
    pub lease_micros: u64,
    /// When it was last heard from, Unix milliseconds.
    pub seen_unix_ms: i64,
}

/// One budget's part of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part<'a> {
    /// The reporting sidecar.
    pub reporter: &'a str,
    /// The batch.
    pub seq: u64,
    /// What the batch spent from the budget.
    pub cost_micros: u64,
    /// The lease wanted; `None` keeps the current one (capped the same way).
    pub want: Option<u64>,
}

/// The result of folding one batch into one budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Folded {
    /// Whether the batch's spend was new (false: a resend, already counted).
    pub applied: bool,
    /// The sidecar's lease after the fold.
    pub lease_micros: u64,
}

/// Folds a batch's cost for one budget and sets the reporter's lease to what it wants,
/// never more than the budget has left beyond the other live leases.
pub fn fold(
    limit_micros: u64,
    spent_micros: &mut i64,
    reporters: &mut Vec<Reporter>,
    part: Part<'_>,
    now_unix_ms: i64,
) -> Folded {
    let Part {
        reporter: id,
        seq,
        cost_micros,
        want,
    } = part;
    reporters.retain(|r| r.id == id || now_unix_ms - r.seen_unix_ms < FORGET_MS);
    let index = match reporters.iter().position(|r| r.id == id) {
        Some(i) => i,
        None => {
            reporters.push(Reporter {
                id: id.to_owned(),
                ..Reporter::default()
            });
            reporters.len() - 1
        }
    };
    let applied = seq > reporters[index].seq;
    if applied {
        *spent_micros = spent_micros.saturating_add(i64::try_from(cost_micros).unwrap_or(i64::MAX));
        let entry = &mut reporters[index];
        entry.lease_micros = entry.lease_micros.saturating_sub(cost_micros);
        entry.seq = seq;
    }
    let others: u64 = reporters
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != index && now_unix_ms - r.seen_unix_ms < LEASE_TTL_MS)
        .map(|(_, r)| r.lease_micros)
        .sum();
    let limit = i128::from(limit_micros);
    let free = (limit - i128::from(*spent_micros) - i128::from(others)).max(0);
    let free = u64::try_from(free).unwrap_or(u64::MAX);
    let entry = &mut reporters[index];
    entry.lease_micros = want.unwrap_or(entry.lease_micros).min(free);
    entry.seen_unix_ms = now_unix_ms;
    Folded {
        applied,
        lease_micros: entry.lease_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(reporter: &str, seq: u64, cost_micros: u64, want: Option<u64>) -> Part<'_> {
        Part {
            reporter,
            seq,
            cost_micros,
            want,
        }
    }

    #[test]
    fn spend_is_folded_once_and_leases_never_exceed_what_is_left() {
        let mut spent = 0;
        let mut reporters = Vec::new();
        let a = fold(
            1_000,
            &mut spent,
            &mut reporters,
            part("a", 1, 0, Some(600)),
            0,
        );
        assert_eq!(a.lease_micros, 600);
        let b = fold(
            1_000,
            &mut spent,
            &mut reporters,
            part("b", 1, 0, Some(600)),
            0,
        );
        assert_eq!(b.lease_micros, 400, "only what a does not hold");
        // a spends 500 of its lease; a resend of the same batch counts nothing.
        let a = fold(
            1_000,
            &mut spent,
            &mut reporters,
            part("a", 2, 500, Some(600)),
            10,
        );
        assert!(a.applied);
        assert_eq!(spent, 500);
        assert_eq!(a.lease_micros, 100, "1000 - 500 spent - 400 held by b");
        let again = fold(
            1_000,
            &mut spent,
            &mut reporters,
            part("a", 2, 500, Some(600)),
            20,
        );
        assert!(!again.applied);
        assert_eq!(spent, 500);
        // b goes quiet: its lease lapses and a may have it.
        let a = fold(
            1_000,
            &mut spent,
            &mut reporters,
            part("a", 3, 0, Some(600)),
            LEASE_TTL_MS + 1,
        );
        assert_eq!(a.lease_micros, 500);
    }

    #[test]
    fn overspent_budgets_grant_nothing_and_silent_reporters_are_forgotten() {
        let mut spent = 1_200;
        let mut reporters = vec![Reporter {
            id: "old".into(),
            seq: 9,
            lease_micros: 5,
            seen_unix_ms: 0,
        }];
        let f = fold(
            1_000,
            &mut spent,
            &mut reporters,
            part("a", 1, 10, Some(100)),
            FORGET_MS,
        );
        assert_eq!(f.lease_micros, 0);
        assert_eq!(spent, 1_210);
        assert_eq!(reporters.len(), 1, "the silent reporter is gone");
    }
}
