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
        let out_of_range = || format!("size `{s}` is out of range");
        // A whole number is counted exactly: an f64 holds integers up to 2^53 only.
        if let Ok(whole) = num.parse::<u64>() {
            return whole.checked_mul(mult).map(ByteSize).ok_or_else(out_of_range);
        }
        let v = n * mult as f64;
        // `u64::MAX as f64` is 2^64, one past the largest u64.
        if !v.is_finite() || v < 0.0 || v >= u64::MAX as f64 {
            return Err(out_of_range());
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
        // Found by `sizes_round_trip`: whole numbers went through an f64, which rounded
        // sizes past 2^53 bytes (9 PB) and took 2^64 as u64::MAX.
        assert_eq!("17732352359151811".parse::<ByteSize>().unwrap().0, 17_732_352_359_151_811);
        assert_eq!("9007199254740993".parse::<ByteSize>().unwrap().0, 9_007_199_254_740_993);
        assert_eq!("18446744073709551615".parse::<ByteSize>().unwrap().0, u64::MAX);
        assert!("18446744073709551616".parse::<ByteSize>().is_err());
        assert!("16384PiB".parse::<ByteSize>().is_err());
        assert_eq!("1.5GB".parse::<ByteSize>().unwrap().0, 1_500_000_000);
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

    use proptest::prelude::*;

    const SIZE_UNITS: &[(&str, u64)] = &[
        ("", 1),
        ("B", 1),
        ("k", 1_000),
        ("KB", 1_000),
        ("MB", 1_000_000),
        ("m", 1_000_000),
        ("GB", 1_000_000_000),
        ("TB", 1_000_000_000_000),
        ("PB", 1_000_000_000_000_000),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("gib", 1 << 30),
        ("TiB", 1 << 40),
        ("PiB", 1 << 50),
    ];

    /// A number and a unit whose product fits in a u64.
    fn sized() -> impl Strategy<Value = (u64, usize)> {
        (0..SIZE_UNITS.len()).prop_flat_map(|u| (0..=u64::MAX / SIZE_UNITS[u].1, Just(u)))
    }

    fn spaced(s: &str, n: u8) -> String {
        match n % 4 {
            0 => s.to_string(),
            1 => format!(" {s} "),
            2 => s.to_ascii_lowercase(),
            _ => s.to_ascii_uppercase(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// A size as it is shown (bytes) reads back as itself, as text and through serde.
        #[test]
        fn sizes_round_trip(n in any::<u64>()) {
            prop_assert_eq!(ByteSize(n).to_string().parse::<ByteSize>(), Ok(ByteSize(n)));
            let json = serde_json::to_string(&ByteSize(n)).unwrap();
            prop_assert_eq!(serde_json::from_str::<ByteSize>(&json).unwrap(), ByteSize(n));
            let quoted = serde_json::to_string(&ByteSize(n).to_string()).unwrap();
            prop_assert_eq!(serde_json::from_str::<ByteSize>(&quoted).unwrap(), ByteSize(n));
        }

        /// A whole number of any unit is exactly that many units, however it is spaced or cased.
        #[test]
        fn sizes_with_units((n, u) in sized(), style in any::<u8>(), gap in any::<bool>()) {
            let (unit, mult) = SIZE_UNITS[u];
            let text = spaced(&format!("{n}{}{unit}", if gap { " " } else { "" }), style);
            prop_assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(n * mult)), "{}", text);
        }

        /// A decimal fraction of a unit is the nearest byte.
        #[test]
        fn sizes_with_fractions(int in 0..100_000u64, milli in 0..1000u64, u in 3..SIZE_UNITS.len()) {
            let (unit, mult) = SIZE_UNITS[u];
            let exact = int as f64 * mult as f64 + milli as f64 * mult as f64 / 1000.0;
            prop_assume!(exact < u64::MAX as f64 / 2.0);
            let got = format!("{int}.{milli:03}{unit}").parse::<ByteSize>().unwrap().0 as f64;
            prop_assert!((got - exact).abs() <= 1.0 + exact * 1e-12, "{got} for {exact}");
        }

        /// Past a u64, a size is refused, never wrapped or saturated.
        #[test]
        fn sizes_out_of_range_are_refused(extra in prop_oneof![1..=16u128, 1..u64::MAX as u128], u in 0..SIZE_UNITS.len()) {
            let (unit, mult) = SIZE_UNITS[u];
            let n = (u64::MAX as u128 + extra) / mult as u128 + 1;
            prop_assume!(n * mult as u128 > u64::MAX as u128);
            prop_assert!(format!("{n}{unit}").parse::<ByteSize>().is_err(), "{n}{unit}");
        }

        /// Any text: no panic, and a size only when it has a number, which shows as itself.
        #[test]
        fn any_size_text(s in prop_oneof![any::<String>(), "[ 0-9.]{0,24}[ a-zA-Z]{0,4}"]) {
            if let Ok(v) = s.parse::<ByteSize>() {
                prop_assert!(s.bytes().any(|b| b.is_ascii_digit()), "{s:?} gave {v:?}");
                prop_assert_eq!(v.to_string().parse::<ByteSize>(), Ok(v));
            }
        }

        /// A duration as it is written to the configuration reads back as itself.
        #[test]
        fn durations_round_trip(secs in 0..10_000_000_000u64, nanos in prop_oneof![Just(0u32), 0..1_000_000_000u32]) {
            let d = Dur(Duration::new(secs, nanos));
            let text = humantime::format_duration(d.0).to_string();
            prop_assert_eq!(text.parse::<Dur>(), Ok(d), "{}", text);
            let json = serde_json::to_string(&d).unwrap();
            prop_assert_eq!(serde_json::from_str::<Dur>(&json).unwrap(), d);
        }

        /// A number with a unit is that many units.
        #[test]
        fn durations_with_units(n in 0..1_000_000u64, u in 0..5usize, gap in any::<bool>()) {
            let (unit, secs) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 7 * 86_400)][u];
            let text = format!("{n}{}{unit}", if gap { " " } else { "" });
            prop_assert_eq!(text.parse::<Dur>(), Ok(Dur(Duration::from_secs(n * secs))), "{}", text);
        }

        /// A bare number is refused unless it is zero, as text (whatever its digits) or as
        /// a TOML/JSON number.
        #[test]
        fn bare_numbers_need_a_unit(digits in "[0-9]{1,40}", pad in "[ \t]{0,2}") {
            let text = format!("{pad}{digits}{pad}");
            let zero = digits.bytes().all(|b| b == b'0');
            match text.parse::<Dur>() {
                Ok(d) => prop_assert!(zero && d == Dur(Duration::ZERO), "{text:?} gave {d:?}"),
                Err(e) => prop_assert!(!zero, "{text:?}: {e}"),
            }
            if let Ok(n) = digits.parse::<u64>() {
                let from_number = serde_json::from_str::<Dur>(&n.to_string());
                prop_assert_eq!(from_number.is_ok(), n == 0);
                if n != 0 {
                    prop_assert!(text.parse::<Dur>().unwrap_err().contains("needs a unit"));
                }
            }
        }

        /// Any text: no panic, and without a letter (so without a unit) only zero is a duration.
        #[test]
        fn any_duration_text(s in prop_oneof![any::<String>(), "[ 0-9+.:,-]{0,24}", "[0-9]{1,6} ?[a-zµ]{0,6}"]) {
            if let Ok(d) = s.parse::<Dur>() {
                prop_assert!(s.chars().any(char::is_alphabetic) || d.0.is_zero(), "{s:?} gave {d:?}");
            }
        }
    }
}
