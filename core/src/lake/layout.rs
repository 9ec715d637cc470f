//! The lake's path layout, in one place: every file of the lake is
//! `lake/{dir}/dt=YYYY-MM-DD/{file}.parquet`, where `dir` is a fact table (`uploads`,
//! `jobs`, ...; [`super::Table`]) or an aggregate (`agg_uploads`, ...; [`super::agg::Agg`]),
//! and `dt` the UTC day of the fact's partition time ([`super::Event::time`]).
//! Writers, compaction, the aggregates, the generator and the reporting mirror build and
//! parse keys here and nowhere else.

use chrono::NaiveDate;

/// The lake's prefix in the object store.
pub const PREFIX: &str = "lake/";

/// `YYYY-MM-DD`.
pub fn day_str(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// A day as `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// `lake/{dir}/`.
pub fn dir_prefix(dir: &str) -> String {
    format!("{PREFIX}{dir}/")
}

/// `lake/{dir}/dt=YYYY-MM-DD/`.
pub fn partition_prefix(dir: &str, day: NaiveDate) -> String {
    format!("{PREFIX}{dir}/dt={}/", day_str(day))
}

/// `lake/{dir}/dt=YYYY-MM-DD/{file}` (`file` with its `.parquet`).
pub fn file_key(dir: &str, day: NaiveDate, file: &str) -> String {
    format!("{}{file}", partition_prefix(dir, day))
}

/// The key relative to the lake root (`{dir}/dt=.../{file}`), as a mirror stores it.
pub fn relative(key: &str) -> &str {
    key.strip_prefix(PREFIX).unwrap_or(key)
}

/// What a lake key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub dir: &'a str,
    pub day: NaiveDate,
    /// The file's name, with its `.parquet`.
    pub file: &'a str,
}

/// Splits a Parquet file's key (with or without `lake/`) into its parts; `None` for
/// anything else (a temporary file, a foreign object).
pub fn parse(key: &str) -> Option<Parsed<'_>> {
    let mut parts = relative(key).split('/');
    let (dir, part, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || dir.is_empty() || !file.ends_with(".parquet") || file.starts_with('.') {
        return None;
    }
    let day = parse_day(part.strip_prefix("dt=")?)?;
    Some(Parsed { dir, day, file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let k = file_key("uploads", d, "w-1.parquet");
        assert_eq!(k, "lake/uploads/dt=2026-11-30/w-1.parquet");
        assert_eq!(parse(&k), Some(Parsed { dir: "uploads", day: d, file: "w-1.parquet" }));
        assert_eq!(parse(relative(&k)), parse(&k));
        assert_eq!(partition_prefix("agg_jobs", d), "lake/agg_jobs/dt=2026-11-30/");
        for bad in [
            "lake/uploads/w.parquet",
            "lake/uploads/dt=2026-13-01/w.parquet",
            "uploads/dt=2026-11-30/x.json",
            "uploads/dt=2026-11-30/a/b.parquet",
            "uploads/dt=2026-11-30/.tmp.parquet",
            "uploads/dt=26-11-30/w.parquet",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
