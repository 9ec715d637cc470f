//! Human units in the configuration: sizes such as `100TB` or `10GiB`, and durations
//! such as `5m` or `7d`. Both also accept plain integers (bytes, seconds).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr, time::Duration};

/// A size in bytes. Decimal units (KB, MB, GB, TB, PB) are powers of 1000, binary units
/// (KiB .. PiB) powers of 1024, as storage vendors and capacity plans count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a size such as 500GB or 100TB"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "mb" | "m" => 1_000_000,
            "gb" | "g" => 1_000_000_000,
            "tb" | "t" => 1_000_000_000_000,
            "pb" | "p" => 1_000_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            "pib" => 1 << 50,
            other => return Err(format!("unknown size unit `{other}` in `{s}`")),
        };
        let v = n * mult as f64;
        if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
            return Err(format!("size `{s}` is out of range"));
        }
        Ok(ByteSize(v.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A duration written as `30s`, `5m`, `7d` or `1h 30m`. A number needs its unit
/// (`retention.processed = 7` would be seven seconds or seven days depending on who
/// reads it); only `0` stands alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u64>() {
            return bare(n);
        }
        humantime::parse_duration(t).map(Dur).map_err(|e| format!("`{s}` is not a duration such as 30s, 5m or 7d: {e}"))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => bare(n).map_err(de::Error::custom),
            Raw::S(s) => s.parse().map_err(de::Error::custom),
        }
    }
}

/// A number without a unit: only zero.
fn bare(n: u64) -> Result<Dur, String> {
    match n {
        0 => Ok(Dur(Duration::ZERO)),
        n => Err(format!("`{n}` needs a unit: \"{n}s\", \"{n}m\", \"{n}h\" or \"{n}d\"")),
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("100TB".parse::<ByteSize>().unwrap().0, 100_000_000_000_000);
        assert_eq!("10GiB".parse::<ByteSize>().unwrap().0, 10 << 30);
        assert_eq!("1MB".parse::<ByteSize>().unwrap().0, 1_000_000);
        assert_eq!("500 GB".parse::<ByteSize>().unwrap().0, 500_000_000_000);
        assert_eq!("42".parse::<ByteSize>().unwrap().0, 42);
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("TB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!("5m".parse::<Dur>().unwrap().0, Duration::from_secs(300));
        assert_eq!("7d".parse::<Dur>().unwrap().0, Duration::from_secs(7 * 86400));
        assert_eq!("90s".parse::<Dur>().unwrap().0, Duration::from_secs(90));
        assert!("90".parse::<Dur>().unwrap_err().contains("needs a unit"));
        assert_eq!("0".parse::<Dur>().unwrap().0, Duration::ZERO);
        assert!("soon".parse::<Dur>().is_err());
    }
}
