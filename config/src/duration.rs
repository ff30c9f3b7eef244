//! [`Duration`]: a span of time written with a unit ("3s", "500ms", "10m",
//! "1h", "2d"), as config files and CLI flags take it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time with millisecond resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn secs(n: u64) -> Self {
        Duration(std::time::Duration::from_secs(n))
    }

    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: write a number and a unit, such as \"3s\", \"500ms\", \"10m\", \"1h\" or \"2d\"")]
pub struct ParseDurationError {
    pub input: String,
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurationError {
            input: s.to_owned(),
        };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| err())?;
        let ms = match unit.trim() {
            "ms" => n,
            "s" => n.checked_mul(1000).ok_or_else(err)?,
            "m" | "min" => n.checked_mul(60_000).ok_or_else(err)?,
            "h" => n.checked_mul(3_600_000).ok_or_else(err)?,
            "d" => n.checked_mul(86_400_000).ok_or_else(err)?,
            _ => return Err(err()),
        };
        Ok(Duration(std::time::Duration::from_millis(ms)))
    }
}

impl fmt::Display for Duration {
    /// In the largest unit that states it exactly: "500ms", "3s", "10m", "30d".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let unit = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1000, "s"),
        ]
        .into_iter()
        .find(|&(size, _)| ms != 0 && ms % size == 0);
        match unit {
            Some((size, name)) => write!(f, "{}{name}", ms / size),
            None if ms == 0 => f.write_str("0s"),
            None => write!(f, "{ms}ms"),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_round_trips() {
        for (s, ms) in [
            ("3s", 3000),
            ("500ms", 500),
            ("10m", 600_000),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
        ] {
            let d: Duration = s.parse().unwrap();
            assert_eq!(d.0.as_millis(), ms);
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
        for bad in ["", "3", "s", "3 weeks", "-1s", "1.5s"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad} parsed");
        }
    }
}
