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

pub async fn run(api: &Api, report: &str, params: &[(&str, Option<String>)], format: StatsFormat) -> anyhow::Result<()> {
    if report.is_empty() || !report.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        bail!("`{report}` is not a report name (summary, customers, types, volume, processing, usage)");
    }
    let wire = match format {
        StatsFormat::Json => "json",
        StatsFormat::Csv | StatsFormat::Table => "csv",
    };
    let mut query: Vec<(&str, String)> = params.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect();
    query.push(("format", wire.to_string()));
    let res = api.send(api.request(Method::GET, &format!("/v1/stats/{report}")).query(&query)).await?;
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
    print!("{}", render_table(&text)?);
    Ok(())
}

/// CSV as an aligned table; numbers right-aligned. One wide row reads better
/// transposed, as `column value` lines.
pub fn render_table(csv_text: &str) -> anyhow::Result<String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().context("the report's CSV has no header")?.iter().map(str::to_string).collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
        .collect::<Result<_, _>>()
        .context("the report's CSV is malformed")?;
    let is_number = |s: &str| !s.is_empty() && s.parse::<f64>().is_ok();
    let mut out = String::new();
    if rows.len() == 1 && header.len() > 4 {
        let mut t = plain_table(&["COLUMN", "VALUE"]);
        for (h, v) in header.iter().zip(&rows[0]) {
            t.add_row(vec![h.clone(), if v.is_empty() { "-".into() } else { v.clone() }]);
        }
        for line in table_lines(&t) {
            out.push_str(&line);
            out.push('\n');
        }
        return Ok(out);
    }
    let mut t = plain_table(&header.iter().map(String::as_str).collect::<Vec<_>>());
    for r in &rows {
        t.add_row(r.iter().map(|v| if v.is_empty() { "-".to_string() } else { v.clone() }).collect::<Vec<_>>());
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
        let t = super::render_table("format,uploads,bytes\njpeg,12,3400\npng,3,10\n").unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].contains("format") && lines[1].contains("jpeg"), "{t}");
        let one = super::render_table("a,b,c,d,e\n1,2,,4,x\n").unwrap();
        assert!(one.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["c", "-"]), "{one}");
    }
}
