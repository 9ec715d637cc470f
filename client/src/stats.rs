//! `imagelake stats REPORT`: `GET /v1/stats/{report}`. CSV and JSON are the server's
//! bytes as they are; the table is rendered from the server's CSV (which keeps the
//! report's column order).

use crate::api::Api;
use crate::images::{plain_table, right_align, table_lines};
use crate::StatsFormat;
use anyhow::{bail, Context as _};
use futures::StreamExt;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

/// The reports the server has, for messages.
const REPORTS: &str = "summary, customers, types, volume, processing, usage, engagement";

pub async fn run(api: &Api, report: &str, params: &[(&str, Option<String>)], format: StatsFormat) -> anyhow::Result<()> {
    if report.is_empty() || !report.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        bail!("`{report}` is not a report name ({REPORTS})");
    }
    let wire = match format {
        StatsFormat::Json => "json",
        StatsFormat::Csv | StatsFormat::Table => "csv",
    };
    let mut query: Vec<(&str, String)> = params.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect();
    query.push(("format", wire.to_string()));
    let res = match api.send(api.request(Method::GET, &format!("/v1/stats/{report}")).query(&query)).await {
        Err(e) if e.downcast_ref::<crate::ApiError>().is_some_and(|a| a.status == 404) => {
            bail!("{e}: is `{report}` a report? ({REPORTS})")
        }
        other => other?,
    };
    if format != StatsFormat::Table {
        let mut out = tokio::io::stdout();
        let mut body = res.bytes_stream();
        let mut last = b'\n';
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| api.transport_error(e))?;
            if let Some(&b) = chunk.last() {
                last = b;
            }
            out.write_all(&chunk).await?;
        }
        if last != b'\n' {
            out.write_all(b"\n").await?;
        }
        out.flush().await?;
        return Ok(());
    }
    let text = res.text().await.map_err(|e| api.transport_error(e))?;
    // The summary is one row of many figures: it reads better as `column value` lines.
    print!("{}", render_table(&text, report == "summary")?);
    Ok(())
}

/// A figure for reading: integers as they are, fractions to 3 decimals (or 4 significant
/// digits when tiny); anything else unchanged.
fn readable(v: &str) -> String {
    if v.is_empty() {
        return "-".into();
    }
    if !v.contains(['.', 'e', 'E']) {
        return v.to_string();
    }
    match v.parse::<f64>() {
        Ok(x) if x != 0.0 && x.abs() < 0.001 => format!("{x:.3e}"),
        Ok(x) if x.is_finite() => {
            let s = format!("{x:.3}");
            let s = s.trim_end_matches('0');
            s.strip_suffix('.').map(|i| format!("{i}.0")).unwrap_or_else(|| s.to_string())
        }
        _ => v.to_string(),
    }
}

/// CSV as an aligned table; numeric columns right-aligned. `transpose`: one
/// `column value` line per column of each row instead.
pub fn render_table(csv_text: &str, transpose: bool) -> anyhow::Result<String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().context("the report's CSV has no header")?.iter().map(str::to_string).collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
        .collect::<Result<_, _>>()
        .context("the report's CSV is malformed")?;
    let is_number = |s: &str| !s.is_empty() && s.parse::<f64>().is_ok();
    let mut out = String::new();
    if transpose {
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let mut t = plain_table(&["COLUMN", "VALUE"]);
            for (h, v) in header.iter().zip(row) {
                t.add_row(vec![h.clone(), readable(v)]);
            }
            for line in table_lines(&t) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        if rows.is_empty() {
            out.push_str("(no rows)\n");
        }
        return Ok(out);
    }
    let mut t = plain_table(&header.iter().map(String::as_str).collect::<Vec<_>>());
    for r in &rows {
        t.add_row(r.iter().map(|v| readable(v)).collect::<Vec<_>>());
    }
    let numeric: Vec<usize> = (0..header.len())
        .filter(|&i| !rows.is_empty() && rows.iter().all(|r| r.get(i).is_some_and(|v| v.is_empty() || is_number(v))))
        .collect();
    right_align(&mut t, &numeric);
    for line in table_lines(&t) {
        out.push_str(&line);
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no rows)\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_rows_aligned_and_one_row_transposed() {
        let t = super::render_table("format,uploads,bytes\njpeg,12,3400\npng,3,10\n", false).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].contains("format") && lines[1].contains("jpeg"), "{t}");
        let one = super::render_table("a,b,c,d,e\n1,2.50000001,,4,x\n", true).unwrap();
        assert!(one.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["c", "-"]), "{one}");
        assert!(one.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["b", "2.5"]), "{one}");
        assert_eq!(super::readable("9.547425e-6"), "9.547e-6");
        assert_eq!(super::readable("31.302799999999998"), "31.303");
        assert_eq!(super::readable("0.0"), "0.0");
        assert_eq!(super::readable("123"), "123");
    }
}
