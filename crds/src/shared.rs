//! Types shared by the three resources: Secret references, durations, USD amounts,
//! budget periods, and the schema fragments (patterns, CEL rules) that validate them.
//!
//! Durations, amounts and periods are kept as the strings the user wrote, so `kubectl
//! get -o yaml` shows them unchanged; each type validates in the schema (pattern plus
//! a CEL rule with a readable message) and parses into integers here, so the API
//! server and the compiler agree on what is valid.

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Pattern of a duration: one or more `<digits><unit>` groups, units `ms`, `s`, `m`, `h`.
pub const DURATION_PATTERN: &str = "^([0-9]{1,9}(ms|s|m|h))+$";

/// Pattern of a non-negative USD amount with at most 6 decimals.
pub const USD_PATTERN: &str = "^[0-9]{1,9}([.][0-9]{1,6})?$";

/// Pattern of a budget period: a calendar period name or a duration.
pub const PERIOD_PATTERN: &str = "^(daily|weekly|monthly|([0-9]{1,9}(ms|s|m|h))+)$";

/// Pattern of a DNS label (RFC 1123), used for deployment names.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Pattern of a DNS subdomain (RFC 1123), the shape of Kubernetes object names.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Upper bound on list sizes that CEL rules iterate over: without one the API server's
/// cost estimator refuses rules that loop over lists of unbounded length.
pub const MAX_NAMES: u32 = 64;

/// Why a string did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParseErrorKind {
    Duration,
    Amount,
    Period,
}

impl ParseError {
    fn new(kind: ParseErrorKind, value: &str) -> Self {
        // Cap the echoed value: it ends up in conditions and logs.
        let value: String = value.chars().take(64).collect();
        ParseError { kind, value }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ParseErrorKind::Duration => write!(
                f,
                "invalid duration {:?}: expected e.g. \"250ms\", \"30s\", \"5m\" or \"1h30m\"",
                self.value
            ),
            ParseErrorKind::Amount => write!(
                f,
                "invalid USD amount {:?}: expected a non-negative decimal with at most 6 decimals, e.g. \"0.15\"",
                self.value
            ),
            ParseErrorKind::Period => write!(
                f,
                "invalid period {:?}: expected \"daily\", \"weekly\", \"monthly\" or a duration like \"36h\"",
                self.value
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// A reference to one key of a Secret in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = "^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

impl SecretKeyRef {
    /// A reference to `key` in Secret `name`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }
}

/// A reference to one key of a ConfigMap in the resource's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key within the ConfigMap's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = "^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

impl ConfigMapKeyRef {
    /// A reference to `key` in ConfigMap `name`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        ConfigMapKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }
}

/// A duration written like Go's: `250ms`, `30s`, `5m`, `1h30m`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HumanDuration(pub String);

impl HumanDuration {
    /// Wraps a duration string; it is validated by [`HumanDuration::to_millis`].
    pub fn new(value: impl Into<String>) -> Self {
        HumanDuration(value.into())
    }

    /// The duration in whole milliseconds.
    pub fn to_millis(&self) -> Result<u64, ParseError> {
        parse_duration_ms(&self.0).ok_or_else(|| ParseError::new(ParseErrorKind::Duration, &self.0))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for HumanDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 64,
            "pattern": DURATION_PATTERN,
            "x-kubernetes-validations": [{
                // The pattern check comes first so a malformed value fails with this
                // message rather than a parse error (CEL's `&&` absorbs errors when the
                // other side is false); duration() then refuses what overflows.
                "rule": format!("self.matches('{DURATION_PATTERN}') && duration(self) >= duration('0s')"),
                "message": "must be a duration like 250ms, 30s, 5m or 1h30m",
            }],
        })
    }
}

/// Parses `DURATION_PATTERN` durations into milliseconds; `None` when malformed or too
/// large. Integer arithmetic only.
fn parse_duration_ms(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let bytes = text.as_bytes();
    let mut total: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = text.get(start..i)?;
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        let number: u64 = digits.parse().ok()?;
        let rest = text.get(i..)?;
        let (unit_ms, unit_len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return None;
        };
        i += unit_len;
        total = total.checked_add(number.checked_mul(unit_ms)?)?;
    }
    Some(total)
}

/// An amount of US dollars as a decimal string: `"0.15"`, `"100.00"`, `"3"`.
///
/// Kept as a string so no float ever touches money; converted to integer micro-dollars.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UsdAmount(pub String);

impl UsdAmount {
    /// Wraps an amount string; it is validated by [`UsdAmount::to_micros`].
    pub fn new(value: impl Into<String>) -> Self {
        UsdAmount(value.into())
    }

    /// The amount in integer micro-dollars: `"0.15"` is `150_000`.
    pub fn to_micros(&self) -> Result<u64, ParseError> {
        parse_usd_micros(&self.0).ok_or_else(|| ParseError::new(ParseErrorKind::Amount, &self.0))
    }

    /// Formats micro-dollars the way every status field and message shows money: a
    /// dollar sign, the dollars, and the cents, plus as many further digits (up to the
    /// micro-dollar) as the amount needs: `$50.00`, `$2.50`, `$0.0042`, `$1.234567`. Exact
    /// (from integers, never rounded), so a call costing a fraction of a cent never
    /// shows as `$0.00`.
    pub fn format_micros(micros: i64) -> String {
        let sign = if micros < 0 { "-" } else { "" };
        let abs = micros.unsigned_abs();
        let mut frac = format!("{:06}", abs % 1_000_000);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        format!("{sign}${}.{frac}", abs / 1_000_000)
    }
}

impl fmt::Display for UsdAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for UsdAmount {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "UsdAmount".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 16,
            "pattern": USD_PATTERN,
            "x-kubernetes-validations": [{
                // Repeats the pattern for the sake of the message: a bare pattern
                // failure shows the regex, not what the user should write.
                "rule": format!("self.matches('{USD_PATTERN}')"),
                "message": "must be a non-negative USD amount with at most 6 decimals, e.g. \"0.15\"",
            }],
        })
    }
}

fn parse_usd_micros(text: &str) -> Option<u64> {
    let (whole, frac) = match text.split_once('.') {
        Some((whole, frac)) => (whole, Some(frac)),
        None => (text, None),
    };
    if whole.is_empty() || whole.len() > 9 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros = whole.parse::<u64>().ok()?.checked_mul(1_000_000)?;
    if let Some(frac) = frac {
        if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Right-pad to six digits: "15" means 150000 micro-units.
        let padded = format!("{frac:0<6}");
        micros = micros.checked_add(padded.parse::<u64>().ok()?)?;
    }
    Some(micros)
}

/// How often a budget resets: `daily`, `weekly`, `monthly` (calendar periods in the
/// budget's time zone) or a fixed duration such as `36h`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeriodSpec(pub String);

/// A parsed [`PeriodSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// From midnight to midnight.
    Daily,
    /// From Monday midnight to the next.
    Weekly,
    /// From the first of the month to the next.
    Monthly,
    /// A fixed length in milliseconds, counted from the budget's creation.
    Every(u64),
}

impl PeriodSpec {
    /// Wraps a period string; it is validated by [`PeriodSpec::parse`].
    pub fn new(value: impl Into<String>) -> Self {
        PeriodSpec(value.into())
    }

    /// The period, or why it does not parse. A zero duration is refused.
    pub fn parse(&self) -> Result<Period, ParseError> {
        match self.0.as_str() {
            "daily" => Ok(Period::Daily),
            "weekly" => Ok(Period::Weekly),
            "monthly" => Ok(Period::Monthly),
            other => match parse_duration_ms(other) {
                Some(ms) if ms > 0 => Ok(Period::Every(ms)),
                _ => Err(ParseError::new(ParseErrorKind::Period, other)),
            },
        }
    }
}

impl fmt::Display for PeriodSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for PeriodSpec {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "PeriodSpec".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 64,
            "pattern": PERIOD_PATTERN,
            "x-kubernetes-validations": [{
                "rule": format!("self in ['daily', 'weekly', 'monthly'] || (self.matches('{DURATION_PATTERN}') && duration(self) > duration('0s'))"),
                "message": "must be daily, weekly, monthly or a positive duration like 36h",
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_to_millis() {
        for (text, ms) in [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1h1m1s1ms", 3_661_001),
            ("0s", 0),
        ] {
            assert_eq!(HumanDuration::new(text).to_millis(), Ok(ms), "{text}");
        }
    }

    #[test]
    fn bad_durations_are_refused() {
        for text in [
            "",
            "5",
            "m",
            "1.5s",
            "-1s",
            "1d",
            "1 h",
            "10us",
            "1234567890s",
            "s5",
        ] {
            assert!(HumanDuration::new(text).to_millis().is_err(), "{text}");
        }
        let err = HumanDuration::new("soon").to_millis().unwrap_err();
        assert!(err.to_string().contains("\"soon\""));
    }

    #[test]
    fn amounts_parse_to_micros_without_floats() {
        for (text, micros) in [
            ("0.15", 150_000),
            ("0", 0),
            ("100.00", 100_000_000),
            ("2.5", 2_500_000),
            ("0.000001", 1),
            ("10.123456", 10_123_456),
            ("999999999.999999", 999_999_999_999_999),
        ] {
            assert_eq!(UsdAmount::new(text).to_micros(), Ok(micros), "{text}");
        }
    }

    #[test]
    fn bad_amounts_are_refused() {
        for text in [
            "",
            ".5",
            "5.",
            "-1",
            "1.0000001",
            "1e3",
            "1,5",
            " 1",
            "$1",
            "1234567890",
        ] {
            assert!(UsdAmount::new(text).to_micros().is_err(), "{text}");
        }
    }

    #[test]
    fn micros_format_as_dollars() {
        assert_eq!(UsdAmount::format_micros(1_234_567), "$1.234567");
        assert_eq!(UsdAmount::format_micros(0), "$0.00");
        assert_eq!(UsdAmount::format_micros(50_000_000), "$50.00");
        assert_eq!(UsdAmount::format_micros(2_500_000), "$2.50");
        assert_eq!(UsdAmount::format_micros(100_000), "$0.10");
        assert_eq!(UsdAmount::format_micros(4_200), "$0.0042");
        assert_eq!(UsdAmount::format_micros(1), "$0.000001");
        assert_eq!(UsdAmount::format_micros(-50), "-$0.00005");
        assert_eq!(UsdAmount::format_micros(-7_500_000), "-$7.50");
        assert_eq!(UsdAmount::format_micros(i64::MIN), "-$9223372036854.775808");
        // What a user writes and what status shows agree.
        let limit = UsdAmount::new("100").to_micros().unwrap();
        assert_eq!(UsdAmount::format_micros(limit as i64), "$100.00");
    }

    #[test]
    fn periods_parse() {
        assert_eq!(PeriodSpec::new("daily").parse(), Ok(Period::Daily));
        assert_eq!(PeriodSpec::new("weekly").parse(), Ok(Period::Weekly));
        assert_eq!(PeriodSpec::new("monthly").parse(), Ok(Period::Monthly));
        assert_eq!(
            PeriodSpec::new("36h").parse(),
            Ok(Period::Every(129_600_000))
        );
        for bad in ["yearly", "0s", "", "Daily"] {
            assert!(PeriodSpec::new(bad).parse().is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_match_the_parsers() {
        // The schema's rule embeds the same pattern the parser enforces.
        let schema = UsdAmount::json_schema(&mut SchemaGenerator::default());
        let rule = schema
            .get("x-kubernetes-validations")
            .and_then(|v| v.get(0))
            .and_then(|v| v.get("rule"))
            .and_then(|v| v.as_str())
            .unwrap();
        assert_eq!(rule, "self.matches('^[0-9]{1,9}([.][0-9]{1,6})?$')");
    }
}
