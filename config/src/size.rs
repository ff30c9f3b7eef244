//! [`ByteSize`]: a byte count written with a unit ("64 GiB", "100 MB", "4096").
//! Parsing is exact (no floating point) and `Display` output parses back to the
//! same number of bytes.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ParseByteSizeError;

/// A number of bytes.
///
/// Parsed from a string: a number (fractions allowed, rounded down to a whole
/// byte) and an optional unit, with or without a space between them. Units are
/// case-insensitive: `B`; binary `KiB` `MiB` `GiB` `TiB` and their short forms
/// `K` `M` `G` `T`; decimal `KB` `MB` `GB` `TB` (powers of 1000). No unit means
/// bytes. A TOML integer is also accepted as bytes.
///
/// Displayed and serialized in the largest unit that divides it exactly
/// (binary first, then decimal), otherwise in bytes: `"64 GiB"`, `"100 MB"`,
/// `"4097 B"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;
const KB: u64 = 1_000;
const MB: u64 = 1_000_000;
const GB: u64 = 1_000_000_000;
const TB: u64 = 1_000_000_000_000;

/// Accepted units, lowercase, with their multipliers.
const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("k", KIB),
    ("kib", KIB),
    ("kb", KB),
    ("m", MIB),
    ("mib", MIB),
    ("mb", MB),
    ("g", GIB),
    ("gib", GIB),
    ("gb", GB),
    ("t", TIB),
    ("tib", TIB),
    ("tb", TB),
];

/// Units tried, in order, when displaying.
const DISPLAY_UNITS: &[(&str, u64)] = &[
    ("TiB", TIB),
    ("GiB", GIB),
    ("MiB", MIB),
    ("KiB", KIB),
    ("TB", TB),
    ("GB", GB),
    ("MB", MB),
    ("KB", KB),
];

/// Most fractional digits accepted; keeps the exact arithmetic inside `u128`.
const MAX_FRACTION_DIGITS: usize = 18;

impl ByteSize {
    /// `n` KiB (saturating).
    pub const fn kib(n: u64) -> Self {
        Self(n.saturating_mul(KIB))
    }

    /// `n` MiB (saturating).
    pub const fn mib(n: u64) -> Self {
        Self(n.saturating_mul(MIB))
    }

    /// `n` GiB (saturating).
    pub const fn gib(n: u64) -> Self {
        Self(n.saturating_mul(GIB))
    }

    /// `n` TiB (saturating).
    pub const fn tib(n: u64) -> Self {
        Self(n.saturating_mul(TIB))
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = ParseByteSizeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseByteSizeError::new(input, reason);
        let s = input.trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.starts_with('-') {
            return Err(err("a size cannot be negative"));
        }
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(number_end);
        let unit = unit.trim_start().to_ascii_lowercase();

        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|&(_, m)| m)
                .ok_or_else(|| err("unknown unit"))?
        };

        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(err("it does not start with a number"));
        }
        if fraction.contains('.') {
            return Err(err("the number has more than one decimal point"));
        }
        if fraction.len() > MAX_FRACTION_DIGITS {
            return Err(err("the number has too many decimal places"));
        }

        // Only ASCII digits remain, so parsing fails only on overflow.
        let too_large = || err("it is larger than 16 EiB");
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse::<u64>().map_err(|_| too_large())?.into()
        };
        let fraction_value: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse::<u64>().map_err(|_| too_large())?.into()
        };
        // fraction.len() <= 18, so this fits in u64 and the products below in u128.
        let fraction_scale = 10u128.pow(fraction.len() as u32);
        let multiplier = u128::from(multiplier);
        let bytes = whole * multiplier + fraction_value * multiplier / fraction_scale;
        u64::try_from(bytes).map(ByteSize).map_err(|_| too_large())
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n != 0 {
            if let Some((name, m)) = DISPLAY_UNITS.iter().find(|(_, m)| n % m == 0) {
                return write!(f, "{} {name}", n / m);
            }
        }
        write!(f, "{n} B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"64 GiB\" or a whole number of bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("invalid size {v}: a size cannot be negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
        Err(E::custom(format!(
            "invalid size {v}: a bare number is a whole number of bytes; \
             write a fraction with its unit in quotes, such as \"1.5 GiB\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> u64 {
        s.parse::<ByteSize>()
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .0
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse("64 GiB"), 64 * GIB);
        assert_eq!(parse("512MiB"), 512 * MIB);
        assert_eq!(parse("1.5 GiB"), 3 * GIB / 2);
        assert_eq!(parse("100 MB"), 100_000_000);
        assert_eq!(parse("4096"), 4096);
        assert_eq!(parse("4096 B"), 4096);
        assert_eq!(parse("2K"), 2048);
        assert_eq!(parse("3 kb"), 3000);
        assert_eq!(parse("1 TiB"), TIB);
        assert_eq!(parse("2 TB"), 2 * TB);
        assert_eq!(parse("  7 g "), 7 * GIB);
        assert_eq!(parse(".5 KiB"), 512);
        assert_eq!(parse("0"), 0);
    }

    #[test]
    fn fractions_round_down_to_whole_bytes() {
        assert_eq!(parse("1.1 KiB"), 1126);
        assert_eq!(parse("0.5 B"), 0);
        assert_eq!(parse("0.000000000000000001 TiB"), 0);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "GiB",
            "-1 GiB",
            "1.2.3 GiB",
            "12 XB",
            "1 GiBs",
            "1e9",
            "16 EiB",
            "99999999999999999999",
            "20000000 TiB",
            "1.0000000000000000001 B",
        ] {
            let err = bad.parse::<ByteSize>().unwrap_err();
            assert!(err.to_string().contains("invalid size"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn display_picks_an_exact_unit() {
        assert_eq!(ByteSize::gib(64).to_string(), "64 GiB");
        assert_eq!(ByteSize(3 * GIB / 2).to_string(), "1536 MiB");
        assert_eq!(ByteSize(100_000_000).to_string(), "100 MB");
        assert_eq!(ByteSize(4097).to_string(), "4097 B");
        assert_eq!(ByteSize(0).to_string(), "0 B");
        assert_eq!(ByteSize(u64::MAX).to_string(), format!("{} B", u64::MAX));
    }

    #[test]
    fn display_round_trips() {
        let samples = [
            0,
            1,
            999,
            1000,
            1023,
            1024,
            4096,
            4097,
            MIB,
            64 * MIB,
            100 * MB,
            3 * GIB / 2,
            64 * GIB,
            5 * TIB,
            7 * TB,
            1_024_000_000,
            u64::MAX,
            u64::MAX - 1,
            (u64::MAX / TIB) * TIB,
        ];
        for n in samples {
            let text = ByteSize(n).to_string();
            assert_eq!(parse(&text), n, "{text}");
        }
    }

    #[test]
    fn serde_round_trips_through_toml() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Doc {
            size: ByteSize,
        }
        for n in [0, 4097, 64 * MIB, 100 * MB, 64 * GIB] {
            let doc = Doc { size: ByteSize(n) };
            let text = toml::to_string(&doc).unwrap();
            assert!(text.contains('"'), "sizes serialize as strings: {text}");
            assert_eq!(toml::from_str::<Doc>(&text).unwrap(), doc);
        }
        let doc: Doc = toml::from_str("size = 4096").unwrap();
        assert_eq!(doc.size, ByteSize(4096));
        let err = toml::from_str::<Doc>("size = -1").unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        let err = toml::from_str::<Doc>("size = 1.5").unwrap_err();
        assert!(err.to_string().contains("\"1.5 GiB\""), "{err}");
        let err = toml::from_str::<Doc>("size = \"12 parsecs\"").unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }
}
