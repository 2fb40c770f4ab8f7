//! Kubernetes resource quantities (`100m`, `0.5Gi`, `1e3`), parsed exactly so the
//! webhook can compare a sidecar's requests with its limits before the API server does.
//!
//! A quantity is held as an integer count of nano-units (nanocores, nanobytes) in a
//! `u128`: every suffix Kubernetes accepts (`n` to `E`, `Ki` to `Ei`, decimal exponents)
//! is a whole multiple of a nano-unit, so comparisons are exact with no float anywhere.
//! As in Kubernetes, a value finer than a nano-unit is rounded up.
//!
//! [`Resource::check`] then applies the bounds llmesh puts on a sidecar's resources: not
//! negative or zero, no finer than the API's own units (1m CPU, 1 byte), and within a
//! range where the value is surely meant (memory under 1Mi is a forgotten suffix; more
//! than 64 cores or 64Gi for a proxy is a typo).

use std::fmt;

/// A non-negative quantity in nano-units (10⁻⁹ of a core or a byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u128);

/// Why a string is not an acceptable quantity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuantityError {
    /// Not the Kubernetes quantity syntax.
    Syntax,
    /// Below zero.
    Negative,
    /// Zero.
    Zero,
    /// Too large to hold (far beyond any bound below).
    Overflow,
    /// Finer than the resource's smallest unit.
    TooPrecise(Resource),
    /// Below the resource's minimum.
    TooSmall(Resource),
    /// Above the resource's maximum.
    TooLarge(Resource),
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantityError::Syntax => f.write_str("is not a Kubernetes quantity (e.g. 100m, 128Mi)"),
            QuantityError::Negative => f.write_str("is negative"),
            QuantityError::Zero => f.write_str("is zero"),
            QuantityError::Overflow => f.write_str("is far too large"),
            QuantityError::TooPrecise(r) => {
                write!(f, "is finer than {} (the smallest {r} unit)", r.unit())
            }
            QuantityError::TooSmall(r) => write!(f, "is below the minimum {r} of {}", r.min()),
            QuantityError::TooLarge(r) => write!(f, "is above the maximum {r} of {}", r.max()),
        }
    }
}

/// Nano-units per unit.
const NANO: u128 = 1_000_000_000;

impl Quantity {
    /// Parses a quantity in the Kubernetes syntax: an optionally signed decimal
    /// (`1`, `1.5`, `.5`, `1.`) and an optional suffix: a binary one (`Ki` … `Ei`), a
    /// decimal one (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`) or an exponent (`e3`,
    /// `E-2`).
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = rest.split_at(number_len);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() || frac.contains('.') {
            return Err(QuantityError::Syntax);
        }
        let (exp10, exp2) = suffix_exponents(suffix).ok_or(QuantityError::Syntax)?;
        let mut mantissa: u128 = 0;
        for digit in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u128::from(digit - b'0')))
                .ok_or(QuantityError::Overflow)?;
        }
        let frac_len = i32::try_from(frac.len()).map_err(|_| QuantityError::Overflow)?;
        let scaled = mantissa
            .checked_mul(1u128.checked_shl(exp2).ok_or(QuantityError::Overflow)?)
            .ok_or(QuantityError::Overflow)?;
        // value = mantissa · 2^exp2 · 10^(exp10 − frac_len), in nano-units: one more 10^9.
        let shift = 9 + exp10 - frac_len;
        let nanos = if shift >= 0 {
            let factor = 10u128
                .checked_pow(shift.unsigned_abs())
                .ok_or(QuantityError::Overflow)?;
            scaled.checked_mul(factor).ok_or(QuantityError::Overflow)?
        } else {
            // Finer than a nano-unit: rounded up, as the API server does. A divisor past
            // u128 leaves a nonzero value rounding up to one nano-unit.
            match 10u128.checked_pow(shift.unsigned_abs()) {
                Some(divisor) => scaled.div_ceil(divisor),
                None => u128::from(scaled > 0),
            }
        };
        if negative && nanos > 0 {
            return Err(QuantityError::Negative);
        }
        Ok(Quantity(nanos))
    }

    /// The quantity in nano-units.
    pub fn nanos(self) -> u128 {
        self.0
    }
}

/// `(decimal exponent, binary exponent)` of a suffix, `None` when it is not one.
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    let decimal = |e: i32| Some((e, 0));
    let binary = |e: u32| Some((0, e));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            decimal(exponent.parse().ok()?)
        }
    }
}

/// The resources a sidecar has, each with its own unit and bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Cores: from `1m` (the API's smallest CPU unit) to 64.
    Cpu,
    /// Bytes: from `1Mi` to `64Gi`, whole bytes.
    Memory,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Cpu => "CPU",
            Resource::Memory => "memory",
        })
    }
}

impl Resource {
    fn unit(self) -> &'static str {
        match self {
            Resource::Cpu => "1m",
            Resource::Memory => "1 byte",
        }
    }

    fn min(self) -> &'static str {
        match self {
            Resource::Cpu => "1m",
            Resource::Memory => "1Mi",
        }
    }

    fn max(self) -> &'static str {
        match self {
            Resource::Cpu => "64",
            Resource::Memory => "64Gi",
        }
    }

    /// `(smallest unit, minimum, maximum)` in nano-units.
    fn bounds(self) -> (u128, u128, u128) {
        match self {
            Resource::Cpu => (NANO / 1000, NANO / 1000, 64 * NANO),
            Resource::Memory => (NANO, (1 << 20) * NANO, (64 << 30) * NANO),
        }
    }

    /// Parses `text` and checks it is a sensible amount of this resource.
    pub fn check(self, text: &str) -> Result<Quantity, QuantityError> {
        let q = Quantity::parse(text)?;
        let (unit, min, max) = self.bounds();
        match q.0 {
            0 => Err(QuantityError::Zero),
            n if n % unit != 0 => Err(QuantityError::TooPrecise(self)),
            n if n < min => Err(QuantityError::TooSmall(self)),
            n if n > max => Err(QuantityError::TooLarge(self)),
            _ => Ok(q),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;

    /// Compares two quantity strings that both parse; `None` when either does not.
    fn compare(a: &str, b: &str) -> Option<Ordering> {
        Some(Quantity::parse(a).ok()?.cmp(&Quantity::parse(b).ok()?))
    }

    fn nanos(text: &str) -> u128 {
        Quantity::parse(text).unwrap().nanos()
    }

    #[test]
    fn decimal_binary_and_exponent_suffixes_are_exact() {
        assert_eq!(nanos("1"), NANO);
        assert_eq!(nanos("100m"), 100_000_000);
        assert_eq!(nanos("0.5"), 500_000_000);
        assert_eq!(nanos(".5"), 500_000_000);
        assert_eq!(nanos("1."), NANO);
        assert_eq!(nanos("+2"), 2 * NANO);
        assert_eq!(nanos("10n"), 10);
        assert_eq!(nanos("3u"), 3_000);
        assert_eq!(nanos("2k"), 2_000 * NANO);
        assert_eq!(nanos("1M"), 1_000_000 * NANO);
        assert_eq!(nanos("1E"), 10u128.pow(18) * NANO);
        assert_eq!(nanos("128Mi"), 128 * (1 << 20) * NANO);
        assert_eq!(nanos("0.5Gi"), (1 << 29) * NANO);
        assert_eq!(nanos("1.5Ki"), 1536 * NANO);
        assert_eq!(nanos("1Ei"), (1 << 60) * NANO);
        assert_eq!(nanos("1e3"), 1000 * NANO);
        assert_eq!(nanos("1E3"), 1000 * NANO);
        assert_eq!(nanos("5e-3"), 5_000_000);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("-0"), 0);
        // Finer than a nano-unit rounds up, as in Kubernetes.
        assert_eq!(nanos("0.1n"), 1);
        assert_eq!(nanos("1e-30"), 1);
    }

    #[test]
    fn comparisons_cross_suffixes() {
        assert_eq!(compare("1Gi", "1024Mi"), Some(Ordering::Equal));
        assert_eq!(compare("1G", "1Gi"), Some(Ordering::Less));
        assert_eq!(compare("1000m", "1"), Some(Ordering::Equal));
        assert_eq!(compare("0.5", "499m"), Some(Ordering::Greater));
        assert_eq!(compare("268435456", "256Mi"), Some(Ordering::Equal));
        assert_eq!(compare("268435457", "256Mi"), Some(Ordering::Greater));
        assert_eq!(compare("1Gi", "lots"), None);
    }

    #[test]
    fn bad_syntax_negative_and_overflow_are_refused() {
        for bad in [
            "", "m", ".", "-", "1 Gi", "lots", "1.2.3", "Mi", "1gi", "1KI", "1e", "1e+", "1ee3",
            "0x10", "1e1000", " 1",
        ] {
            assert_eq!(Quantity::parse(bad), Err(QuantityError::Syntax), "{bad:?}");
        }
        assert_eq!(Quantity::parse("-1"), Err(QuantityError::Negative));
        assert_eq!(Quantity::parse("-5m"), Err(QuantityError::Negative));
        assert_eq!(
            Quantity::parse("999999999999999999999999999999999999999999"),
            Err(QuantityError::Overflow)
        );
        assert_eq!(Quantity::parse("1e999"), Err(QuantityError::Overflow));
        assert_eq!(
            Quantity::parse("1000000000000Ei"),
            Err(QuantityError::Overflow)
        );
    }

    #[test]
    fn resources_are_bounded_to_what_a_sidecar_can_mean() {
        for ok in ["1m", "50m", "1", "0.5", "64"] {
            assert!(Resource::Cpu.check(ok).is_ok(), "{ok}");
        }
        for ok in ["1Mi", "64Mi", "0.5Gi", "1G", "64Gi", "268435456"] {
            assert!(Resource::Memory.check(ok).is_ok(), "{ok}");
        }
        assert_eq!(Resource::Cpu.check("0"), Err(QuantityError::Zero));
        assert_eq!(Resource::Memory.check("0Mi"), Err(QuantityError::Zero));
        assert_eq!(Resource::Cpu.check("-1"), Err(QuantityError::Negative));
        assert_eq!(
            Resource::Cpu.check("500u"),
            Err(QuantityError::TooPrecise(Resource::Cpu))
        );
        assert_eq!(
            Resource::Memory.check("1.1Ki"),
            Err(QuantityError::TooPrecise(Resource::Memory))
        );
        // 64 bytes: the forgotten `Mi`.
        assert_eq!(
            Resource::Memory.check("64"),
            Err(QuantityError::TooSmall(Resource::Memory))
        );
        assert_eq!(
            Resource::Cpu.check("500"),
            Err(QuantityError::TooLarge(Resource::Cpu))
        );
        assert_eq!(
            Resource::Memory.check("1Ti"),
            Err(QuantityError::TooLarge(Resource::Memory))
        );
        assert_eq!(
            Resource::Memory.check("1Ti").unwrap_err().to_string(),
            "is above the maximum memory of 64Gi"
        );
    }
}
