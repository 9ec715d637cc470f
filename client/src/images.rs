//! `imagelake status ID` and `imagelake list`, and the waiting of `upload --wait`.

use crate::api::Api;
use anyhow::bail;
use comfy_table::{presets, CellAlignment, Table};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Polls the record until it is `processed` or `failed`.
pub async fn wait_done(api: &Api, id: &str, timeout: Duration) -> anyhow::Result<Value> {
    let hint = format!("check later with `imagelake status {id}`");
    wait_for(api, &format!("/v1/images/{id}"), &["processed", "failed"], timeout, &format!("image {id}"), &hint).await
}

/// Polls `path` until its `status` is one of `done`, with backoff; `what` and `hint`
/// word the timeout's message.
pub async fn wait_for(api: &Api, path: &str, done: &[&str], timeout: Duration, what: &str, hint: &str) -> anyhow::Result<Value> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let status = match api.get_json(path, &[]).await {
            Ok(rec) => {
                let status = rec["status"].as_str().unwrap_or_default().to_string();
                if done.contains(&status.as_str()) {
                    return Ok(rec);
                }
                status
            }
            // A server restarting or briefly overloaded: keep waiting. A refusal is final.
            Err(e) if e.downcast_ref::<crate::ApiError>().is_none_or(|a| a.status >= 500) => {
                if start.elapsed() >= timeout {
                    return Err(e);
                }
                format!("unknown ({e})")
            }
            Err(e) => return Err(e),
        };
        if start.elapsed() >= timeout {
            bail!("{what} is still {status} after {} s (raise --timeout, or {hint})", timeout.as_secs());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(2));
    }
}

/// An aligned table with no borders: easy to read and to `awk`.
pub fn plain_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    t
}

/// The table's lines, without the outer padding and trailing blanks.
pub fn table_lines(t: &Table) -> Vec<String> {
    t.lines().map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_string()).collect()
}

pub fn right_align(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

pub fn dims(v: &Value) -> String {
    match (v["width"].as_u64(), v["height"].as_u64()) {
        (Some(w), Some(h)) => format!("{w}x{h}"),
        _ => "-".into(),
    }
}

pub fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The variants of a record as a table, each line prefixed by `indent`.
pub fn print_variants(api: &Api, rec: &Value, indent: &str) {
    let variants = rec["variants"].as_array().cloned().unwrap_or_default();
    if variants.is_empty() {
        println!("{indent}(no variants)");
        return;
    }
    let mut t = plain_table(&["VARIANT", "FORMAT", "SIZE", "BYTES", "STATE", "EXPIRES", "URL"]);
    for v in &variants {
        t.add_row(vec![
            s(&v["name"]),
            s(&v["format"]),
            dims(v),
            s(&v["bytes"]),
            s(&v["state"]),
            s(&v["expires_at"]),
            api.url(v["url"].as_str().unwrap_or("")),
        ]);
    }
    right_align(&mut t, &[3]);
    for line in table_lines(&t) {
        println!("{indent}{line}");
    }
}

pub async fn status(api: &Api, id: &str, json: bool) -> anyhow::Result<()> {
    let rec = api.get_json(&format!("/v1/images/{id}"), &[]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rec)?);
        return Ok(());
    }
    let mut fields = vec![
        ("id", s(&rec["id"])),
        ("customer", s(&rec["customer"])),
        ("status", s(&rec["status"])),
        ("format", format!("{} ({})", s(&rec["format"]), s(&rec["content_type"]))),
        ("bytes", s(&rec["bytes"])),
        ("dimensions", dims(&rec)),
        ("sha256", s(&rec["sha256"])),
        ("uploaded_at", s(&rec["uploaded_at"])),
        ("processed_at", s(&rec["processed_at"])),
        ("attempts", s(&rec["attempts"])),
    ];
    if let Some(req) = rec["requested_variants"].as_array() {
        fields.push(("requested", req.iter().map(s).collect::<Vec<_>>().join(",")));
    }
    if rec["error"].is_object() {
        fields.push(("error", format!("{} (code {})", s(&rec["error"]["message"]), s(&rec["error"]["code"]))));
    }
    if let Some(exif) = rec["exif"].as_object() {
        for (k, v) in exif.iter().filter(|(_, v)| !v.is_null()) {
            fields.push(match k.as_str() {
                "camera" => ("camera", s(v)),
                "taken_at" => ("taken_at", s(v)),
                "orientation" => ("orientation", s(v)),
                _ => continue,
            });
        }
    }
    for (k, v) in fields {
        println!("{:<13} {v}", format!("{k}:"));
    }
    println!("variants:");
    print_variants(api, &rec, "  ");
    Ok(())
}

/// Up to `limit` items of a paginated listing (`{"items": [...], "next_cursor": ...}`),
/// following the cursor `page_size` at a time; and whether more items remain.
pub async fn pages(
    api: &Api,
    path: &str,
    query: &[(&str, String)],
    limit: usize,
    page_size: usize,
) -> anyhow::Result<(Vec<Value>, bool)> {
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while items.len() < limit {
        let mut q = query.to_vec();
        q.push(("limit", page_size.min(limit - items.len()).to_string()));
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page = api.get_json(path, &q).await?;
        let got = page["items"].as_array().cloned().unwrap_or_default();
        let empty = got.is_empty();
        items.extend(got);
        cursor = page["next_cursor"].as_str().map(str::to_string);
        // An empty page with a cursor would loop for ever: stop there.
        if cursor.is_none() || empty {
            break;
        }
    }
    items.truncate(limit);
    Ok((items, cursor.is_some()))
}

pub async fn list(api: &Api, limit: usize, page_size: usize, json: bool) -> anyhow::Result<()> {
    if limit == 0 {
        bail!("--limit must be at least 1");
    }
    let (items, more) = pages(api, "/v1/images", &[], limit, page_size.clamp(1, 1000)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    let mut t = plain_table(&["ID", "STATUS", "FORMAT", "BYTES", "SIZE", "VARIANTS", "UPLOADED"]);
    for r in &items {
        // A variant stored in several formats has an entry per format: its name once.
        let mut names: Vec<String> =
            r["variants"].as_array().map(|v| v.iter().map(|v| s(&v["name"])).collect()).unwrap_or_default();
        names.dedup();
        let variants = names.join(",");
        t.add_row(vec![
            s(&r["id"]),
            s(&r["status"]),
            s(&r["format"]),
            s(&r["bytes"]),
            dims(r),
            if variants.is_empty() { "-".into() } else { variants },
            s(&r["uploaded_at"]),
        ]);
    }
    right_align(&mut t, &[3]);
    for line in table_lines(&t) {
        println!("{line}");
    }
    if more {
        eprintln!("(more images: raise --limit to see them)");
    }
    Ok(())
}
