// imagelake dashboard. Plain JavaScript, no dependencies, no build step: it reads the
// statistics API (/v1/stats/*) with the analyst key kept in sessionStorage and draws its
// charts as SVG. Every card shows a loading, an empty or an error state (the API's
// problem+json `detail`) until its data is there.
"use strict";

(function () {
  const KEY_STORE = "imagelake.analystKey";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // ---------------------------------------------------------------- formatting
  const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const fmtInt = (n) => (n == null ? "–" : intFmt.format(n));

  /** Decimal units (kB = 1000 B), three significant digits: "6.82 GB". */
  function fmtBytes(n) {
    if (n == null) return "–";
    const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let v = Math.abs(n), i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    const s = i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
    return (n < 0 ? "-" : "") + s + " " + units[i];
  }
  function fmtPct(p) {
    if (p == null) return "–";
    if (p === 0) return "0%";
    if (p < 0.01) return "<0.01%";
    return (p < 10 ? p.toFixed(2) : p.toFixed(1)) + "%";
  }
  function fmtMs(v) {
    if (v == null) return "–";
    return v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(2) + " s";
  }
  function fmtCompact(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return +(v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return +(v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return +(v / 1e3).toFixed(1) + "k";
    return String(+v.toFixed(2));
  }
  function fmtDays(d) {
    if (d == null) return "–";
    if (d >= 730) return "≈ " + intFmt.format(Math.round(d / 365.25)) + " years";
    return intFmt.format(Math.round(d)) + " days";
  }
  /** "2026-11-03" or "2026-11-03T00:00:00" → "Nov 3". */
  function fmtDay(s) {
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}))?/.exec(s || "");
    if (!m) return String(s);
    return MONTHS[+m[2] - 1] + " " + +m[3] + (m[4] && m[4] !== "00" ? " " + m[4] + ":00" : "");
  }

  // ---------------------------------------------------------------- the API
  class ApiError extends Error {
    constructor(message, status, code) { super(message); this.status = status; this.code = code; }
  }

  function getKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

  async function api(report, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
    const url = "/v1/stats/" + report + (q.toString() ? "?" + q : "");
    let res;
    try {
      res = await fetch(url, {
        headers: { Authorization: "Bearer " + getKey(), Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      throw new ApiError("Cannot reach the server: " + e.message, 0, "network");
    }
    if (res.ok) return res.json();
    let detail = res.statusText || "request failed", code = "";
    try {
      const text = await res.text();
      try {
        const p = JSON.parse(text);
        detail = p.detail || p.title || detail;
        code = p.code || "";
      } catch (_) {
        if (text) detail = text.slice(0, 300);
      }
    } catch (_) { /* keep the status text */ }
    throw new ApiError(detail, res.status, code);
  }

  // ---------------------------------------------------------------- card states
  function setState(card, state, message) {
    const el = typeof card === "string" ? $('[data-card="' + card + '"]') : card;
    el.dataset.state = state;
    const box = $(".state", el);
    box.textContent = state === "loading" ? "Loading…" : state === "ready" ? "" : message || "";
    if (state === "error") box.setAttribute("role", "alert"); else box.removeAttribute("role");
  }
  function errorText(e) {
    const where = e.status ? " (HTTP " + e.status + (e.code ? ", " + e.code : "") + ")" : "";
    return e.message + where;
  }

  // ---------------------------------------------------------------- SVG helpers
  function el(tag, attrs, parent, text) {
    const n = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v != null) n.setAttribute(k, v);
    if (text != null) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }
  /** 0 and about `count` round steps up to at least `max`. */
  function niceTicks(max, count) {
    if (!(max > 0)) return [0, 1];
    const raw = max / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const ticks = [];
    for (let v = 0; v < max + step * 0.999; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }

  const tooltip = () => $("#tooltip");
  function showTip(evt, text) {
    const t = tooltip();
    t.textContent = text;
    t.hidden = false;
    const pad = 14, w = t.offsetWidth, h = t.offsetHeight;
    let x = evt.clientX + pad, y = evt.clientY + pad;
    if (x + w > window.innerWidth - 4) x = evt.clientX - w - pad;
    if (y + h > window.innerHeight - 4) y = evt.clientY - h - pad;
    t.style.left = x + "px";
    t.style.top = y + "px";
  }
  function hideTip() { tooltip().hidden = true; }

  /**
   * A time-series chart into `box`: `rows` in time order, `x` the time field, `series`
   * [{key, label, cls, kind: "bar" | "line" | "area"}], `fmt` for values.
   */
  function timeChart(box, rows, opt) {
    box.textContent = "";
    const width = Math.max(box.clientWidth || 600, 280), height = opt.height || 210;
    const m = { top: 10, right: 12, bottom: 26, left: 58 };
    const iw = width - m.left - m.right, ih = height - m.top - m.bottom;
    const svg = el("svg", { viewBox: "0 0 " + width + " " + height, width, height, role: "img",
      "aria-label": opt.label }, box);
    const max = Math.max(0, ...rows.flatMap((r) => opt.series.map((s) => +r[s.key] || 0)));
    const ticks = niceTicks(max, 4), top = ticks[ticks.length - 1] || 1;
    const y = (v) => m.top + ih - (v / top) * ih;
    const band = iw / Math.max(rows.length, 1);
    const cx = (i) => m.left + band * (i + 0.5);

    const axis = el("g", { class: "axis" }, svg);
    for (const t of ticks) {
      el("line", { class: "gridline", x1: m.left, x2: m.left + iw, y1: y(t), y2: y(t) }, axis);
      el("text", { x: m.left - 8, y: y(t) + 4, "text-anchor": "end" }, axis, opt.axisFmt ? opt.axisFmt(t) : fmtCompact(t));
    }
    el("line", { class: "baseline", x1: m.left, x2: m.left + iw, y1: y(0), y2: y(0) }, axis);
    const every = Math.max(1, Math.ceil(rows.length / Math.max(2, Math.floor(iw / 70))));
    rows.forEach((r, i) => {
      if (i % every === 0) {
        el("text", { x: cx(i), y: height - 8, "text-anchor": "middle" }, axis, fmtDay(r[opt.x]));
      }
    });

    const plot = el("g", {}, svg);
    const bars = opt.series.filter((s) => s.kind === "bar");
    bars.forEach((s, si) => {
      const bw = Math.max(1, (band * 0.72) / bars.length);
      rows.forEach((r, i) => {
        const v = +r[s.key] || 0;
        el("rect", { class: "bar " + (s.cls || ""), x: cx(i) - (bw * bars.length) / 2 + si * bw, y: y(v),
          width: bw, height: Math.max(0, y(0) - y(v)), rx: Math.min(2, bw / 3) }, plot);
      });
    });
    for (const s of opt.series.filter((s) => s.kind !== "bar")) {
      const pts = rows.map((r, i) => [cx(i), y(+r[s.key] || 0)]);
      const d = pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join("");
      if (s.kind === "area" && pts.length) {
        el("path", { class: "area", d: d + "L" + pts[pts.length - 1][0].toFixed(1) + " " + y(0) + "L" + pts[0][0].toFixed(1) + " " + y(0) + "Z" }, plot);
      }
      el("path", { class: "line " + (s.cls || "s3"), d }, plot);
      if (rows.length <= 45) {
        pts.forEach((p) => el("circle", { class: s.cls || "s3", cx: p[0], cy: p[1], r: 2.5 }, plot));
      }
    }

    // One invisible column per point: hover shows every series' value; the data-*
    // attributes carry the raw values (what the browser test compares with the API).
    const hover = el("line", { class: "hover-line", y1: m.top, y2: m.top + ih, visibility: "hidden" }, svg);
    const hits = el("g", {}, svg);
    rows.forEach((r, i) => {
      const attrs = { class: "hit", "data-testid": opt.testid + "-point", "data-x": r[opt.x],
        x: m.left + band * i, y: m.top, width: band, height: ih };
      for (const s of opt.series) attrs["data-" + s.key.replace(/_/g, "-")] = r[s.key] == null ? "" : String(r[s.key]);
      const hit = el("rect", attrs, hits);
      hit.addEventListener("mousemove", (evt) => {
        hover.setAttribute("x1", cx(i)); hover.setAttribute("x2", cx(i)); hover.setAttribute("visibility", "visible");
        showTip(evt, fmtDay(r[opt.x]) + "\n" + opt.series.map((s) => s.label + ": " + opt.fmt(r[s.key])).join("\n"));
      });
      hit.addEventListener("mouseleave", () => { hover.setAttribute("visibility", "hidden"); hideTip(); });
    });
  }

  function legend(box, items) {
    box.textContent = "";
    for (const it of items) {
      const span = document.createElement("span");
      const i = document.createElement("i");
      i.className = it.cls;
      span.appendChild(i);
      span.appendChild(document.createTextNode(it.label + (it.value != null ? " " : "")));
      if (it.value != null) {
        const b = document.createElement("b");
        b.textContent = it.value;
        if (it.testid) b.dataset.testid = it.testid;
        if (it.raw != null) b.dataset.value = String(it.raw);
        span.appendChild(b);
      }
      box.appendChild(span);
    }
  }

  // ---------------------------------------------------------------- cards
  function setValue(testid, text, raw) {
    const n = $('[data-testid="' + testid + '"]');
    n.textContent = text;
    if (raw === undefined) delete n.dataset.value; else n.dataset.value = raw == null ? "" : String(raw);
  }

  function renderSummary(rows) {
    const s = rows[0];
    setValue("kpi-images", fmtInt(s.images), s.images);
    setValue("kpi-bytes", fmtBytes(s.bytes), s.bytes);
    setValue("kpi-processed", fmtInt(s.processed), s.processed);
    setValue("kpi-failed", fmtInt(s.failed), s.failed);
    setValue("kpi-failure-rate", s.failure_rate == null ? "" : fmtPct(100 * s.failure_rate) + " failure rate", s.failure_rate);
    setValue("kpi-expired", fmtInt(s.expired), s.expired);
    setValue("kpi-expired-bytes", fmtBytes(s.expired_bytes) + " freed", s.expired_bytes);
    setState("summary", "ready");
  }

  function gauge(box, pct) {
    box.textContent = "";
    const svg = el("svg", { viewBox: "0 0 220 130", role: "img", "aria-label": "capacity used " + fmtPct(pct) }, box);
    const arc = "M 20 110 A 90 90 0 0 1 200 110";
    el("path", { class: "track", d: arc, fill: "none", "stroke-width": 18, "stroke-linecap": "round" }, svg);
    const shown = Math.max(0, Math.min(100, pct || 0));
    const cls = shown >= 90 ? "fill bad" : shown >= 80 ? "fill warn" : "fill";
    if (shown > 0) {
      el("path", { class: cls, d: arc, fill: "none", "stroke-width": 18, "stroke-linecap": "round",
        pathLength: 100, "stroke-dasharray": Math.max(shown, 0.6) + " 100" }, svg);
    }
    for (const t of [80, 90]) {  // the warning thresholds
      const a = Math.PI * (1 - t / 100);
      el("line", { class: "tick", x1: 110 + 78 * Math.cos(a), y1: 110 - 78 * Math.sin(a),
        x2: 110 + 102 * Math.cos(a), y2: 110 - 102 * Math.sin(a) }, svg);
    }
    el("text", { class: "pct", x: 110, y: 98, "text-anchor": "middle", "data-testid": "capacity-percent" }, svg, fmtPct(pct));
    el("text", { class: "cap", x: 110, y: 122, "text-anchor": "middle" }, svg, "of capacity used");
  }

  function renderCapacity(rows) {
    const t = rows.find((r) => r.customer_id == null);
    if (!t) return setState("capacity", "empty", "No usage figures yet.");
    gauge($("#gauge"), t.used_percent);
    $('[data-testid="capacity-percent"]').dataset.value = t.used_percent == null ? "" : String(t.used_percent);
    setValue("capacity-used", fmtBytes(t.used_bytes), t.used_bytes);
    setValue("capacity-total", fmtBytes(t.capacity_bytes), t.capacity_bytes);
    const growth = t.growth_bytes_per_day;
    setValue("capacity-growth", growth == null ? "no trend yet" : (growth >= 0 ? "+" : "") + fmtBytes(growth) + " / day", growth);
    let days;
    if (t.days_until_full != null) days = fmtDays(t.days_until_full);
    else if (growth == null) days = "not enough history";
    else days = "not growing";
    setValue("capacity-days", days, t.days_until_full);
    $('[data-testid="capacity-days"]').title = t.trend_source ? "trend from " + t.trend_source + " in the range" : "";
    setState("capacity", "ready");
  }

  function renderVolume(rows) {
    const sum = (k) => rows.reduce((a, r) => a + (+r[k] || 0), 0);
    for (const name of ["uploads", "bytes", "outcomes", "social"]) {
      if (!rows.length) setState(name, "empty", "No activity in this range.");
    }
    setValue("uploads-total", rows.length ? fmtInt(sum("uploads")) + " in range" : "", rows.length ? sum("uploads") : null);
    setValue("bytes-total", rows.length ? fmtBytes(sum("bytes")) + " in range" : "", rows.length ? sum("bytes") : null);
    if (!rows.length) {
      for (const id of ["#chart-uploads", "#chart-bytes", "#chart-outcomes", "#legend-outcomes", "#chart-social",
        "#legend-social"]) $(id).textContent = "";
      return;
    }
    timeChart($("#chart-uploads"), rows, { x: "bucket", label: "uploads per day", testid: "uploads", fmt: fmtInt,
      series: [{ key: "uploads", label: "Uploads", kind: "bar" }] });
    setState("uploads", "ready");
    timeChart($("#chart-bytes"), rows, { x: "bucket", label: "bytes uploaded per day", testid: "bytes", fmt: fmtBytes,
      axisFmt: (v) => fmtBytes(v).replace(".00", ""),
      series: [{ key: "bytes", label: "Bytes", kind: "area", cls: "s3" }] });
    setState("bytes", "ready");
    const series = [
      { key: "processed", label: "Processed", kind: "line", cls: "s0" },
      { key: "failed", label: "Failed", kind: "line", cls: "s1" },
      { key: "expired", label: "Expired", kind: "line", cls: "s2" },
    ];
    legend($("#legend-outcomes"), series.map((s) => ({ cls: s.cls, label: s.label, value: fmtInt(sum(s.key)),
      raw: sum(s.key), testid: "outcomes-total-" + s.key })));
    timeChart($("#chart-outcomes"), rows, { x: "bucket", label: "processed, failed and expired per day",
      testid: "outcomes", fmt: fmtInt, series });
    setState("outcomes", "ready");
    const social = [
      { key: "posts", label: "Posts published", kind: "bar", cls: "s3" },
      { key: "comments", label: "Comments", kind: "line", cls: "s0" },
    ];
    legend($("#legend-social"), social.map((s) => ({ cls: s.cls, label: s.label, value: fmtInt(sum(s.key)),
      raw: sum(s.key), testid: "social-total-" + s.key })));
    timeChart($("#chart-social"), rows, { x: "bucket", label: "posts and comments per day", testid: "social",
      fmt: fmtInt, height: 190, series: social });
    setState("social", "ready");
  }

  // The most-commented posts of the range (the engagement report, first ten).
  function renderEngagement(rows) {
    const body = $("#engagement-body");
    body.textContent = "";
    if (!rows.length) return setState("engagement", "empty", "No comments in this range.");
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.dataset.testid = "engagement-row";
      tr.dataset.post = r.post_id;
      tr.title = "published " + (r.published_at || "") + (r.comments_deleted ? ", " + fmtInt(r.comments_deleted) +
        " comments deleted in the range" : "");
      const cells = [[r.post_id, ""], [r.customer_id, ""], [r.author == null ? "–" : r.author, ""],
        [fmtInt(r.comments), "num"]];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      tr.lastChild.dataset.testid = "engagement-comments";
      tr.lastChild.dataset.value = String(r.comments);
      body.appendChild(tr);
    }
    setState("engagement", "ready");
  }

  function renderLatency(rows) {
    if (!rows.length) {
      $("#chart-latency").textContent = "";
      $("#legend-latency").textContent = "";
      return setState("latency", "empty", "No processing attempts in this range.");
    }
    const series = [
      { key: "p50_processing_ms", label: "p50", kind: "line", cls: "s3" },
      { key: "p95_processing_ms", label: "p95", kind: "line", cls: "s4" },
    ];
    const last = rows[rows.length - 1];
    legend($("#legend-latency"), series.map((s) => ({ cls: s.cls, label: s.label + " on " + fmtDay(last.day),
      value: fmtMs(last[s.key]), raw: last[s.key], testid: "latency-last-" + s.label })));
    timeChart($("#chart-latency"), rows, { x: "day", label: "processing latency", testid: "latency", fmt: fmtMs,
      axisFmt: (v) => fmtMs(v), height: 190, series });
    setState("latency", "ready");
  }

  function renderFormats(rows) {
    const box = $("#formats");
    box.textContent = "";
    if (!rows.length) return setState("formats", "empty", "No uploads in this range.");
    const total = rows.reduce((a, r) => a + r.images, 0);
    const max = Math.max(...rows.map((r) => r.images));
    for (const r of rows) {
      const row = document.createElement("div");
      row.className = "fmt";
      row.dataset.testid = "format-row";
      row.dataset.type = r.type;
      row.dataset.images = r.images;
      row.dataset.bytes = r.bytes;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = r.type;
      const meter = document.createElement("span");
      meter.className = "meter";
      const svg = el("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none" }, meter);
      el("rect", { x: 0, y: 0, height: 10, width: max ? (100 * r.images) / max : 0 }, svg);
      const nums = document.createElement("span");
      nums.className = "nums";
      const b = document.createElement("b");
      b.textContent = fmtInt(r.images);
      b.dataset.testid = "format-images";
      nums.appendChild(b);
      nums.appendChild(document.createTextNode(" · " + fmtPct((100 * r.images) / total) + " · " + fmtBytes(r.bytes)));
      row.title = r.type + ": " + fmtInt(r.images) + " images, " + fmtBytes(r.bytes) +
        (r.failure_rate == null ? "" : ", " + fmtPct(100 * r.failure_rate) + " failed");
      row.append(name, meter, nums);
      box.appendChild(row);
    }
    setState("formats", "ready");
  }

  // Customers: sortable by any column, filtered by the search box, all in the browser.
  const table = { rows: [], key: "uploads", dir: -1 };
  const CELLS = [
    ["customer_id", (v) => v], ["uploads", fmtInt], ["bytes_uploaded", fmtBytes], ["processed", fmtInt],
    ["failed", fmtInt], ["failure_rate", (v) => (v == null ? "–" : fmtPct(100 * v))],
    ["p50_processing_ms", fmtMs], ["p95_processing_ms", fmtMs], ["bytes_stored", fmtBytes],
    ["posts", fmtInt], ["comments", fmtInt],
  ];
  function renderCustomers() {
    const body = $("#customers-body");
    const q = $("#customer-search").value.trim().toLowerCase();
    const shown = table.rows.filter((r) => !q || String(r.customer_id).toLowerCase().includes(q));
    const { key, dir } = table;
    shown.sort((a, b) => {
      const x = a[key], y = b[key];
      if (x == null && y == null) return 0;
      if (x == null) return 1;  // missing values last, whichever the direction
      if (y == null) return -1;
      const c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return c * dir || String(a.customer_id).localeCompare(String(b.customer_id));
    });
    body.textContent = "";
    for (const r of shown) {
      const tr = document.createElement("tr");
      tr.dataset.testid = "customer-row";
      tr.dataset.customer = r.customer_id;
      for (const [k, f] of CELLS) {
        const td = document.createElement("td");
        td.textContent = f(r[k]);
        td.dataset.key = k;
        td.dataset.value = r[k] == null ? "" : String(r[k]);
        if (k !== "customer_id") td.className = "num";
        if (k === "failed" && r[k] > 0) td.className = "num bad";
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    if (!shown.length && table.rows.length) {
      const tr = document.createElement("tr");
      tr.className = "none";
      const td = document.createElement("td");
      td.colSpan = CELLS.length;
      td.textContent = "No customer matches “" + q + "”.";
      tr.appendChild(td);
      body.appendChild(tr);
    }
    for (const th of $$(".customers th")) {
      if (th.dataset.key === key) th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    setValue("customers-count", q ? shown.length + " of " + table.rows.length : fmtInt(table.rows.length), shown.length);
  }

  /** Forgets what a card shows: an error must not leave the last figures (possibly of
   * another key) behind it. */
  function clearCard(name) {
    const card = $('[data-card="' + name + '"]');
    for (const n of $$("[data-value]", card)) { n.textContent = "–"; n.dataset.value = ""; }
    for (const n of $$(".sub, .total", card)) n.textContent = "";
    for (const n of $$(".chart, .legend, .bars, .gauge, tbody", card)) n.textContent = "";
    if (name === "customers") table.rows = [];
  }

  // ---------------------------------------------------------------- loading
  let generation = 0;
  const last = {};  // the last data of each report, to redraw on resize

  function rangeParams() {
    return { from: $("#from").value, to: $("#to").value };
  }

  function load() {
    const my = ++generation;
    const p = rangeParams();
    history.replaceState(null, "", "#" + new URLSearchParams(Object.entries(p).filter(([, v]) => v)).toString());
    markPreset();
    $("#banner").hidden = true;
    const cards = {
      summary: ["summary"], usage: ["capacity"], volume: ["uploads", "bytes", "outcomes", "social"],
      processing: ["latency"], types: ["formats"], customers: ["customers"], engagement: ["engagement"],
    };
    const render = {
      summary: renderSummary, usage: renderCapacity, volume: renderVolume, processing: renderLatency,
      types: renderFormats, engagement: renderEngagement, customers: (rows) => {
        table.rows = rows;
        renderCustomers();
        setState("customers", rows.length ? "ready" : "empty", "No customers in this range.");
      },
    };
    for (const names of Object.values(cards)) for (const n of names) setState(n, "loading");
    for (const report of Object.keys(cards)) {
      const params = report === "volume" ? Object.assign({ interval: "day" }, p)
        : report === "engagement" ? Object.assign({ limit: "10" }, p) : p;
      api(report, params).then((rows) => {
        if (my !== generation) return;
        last[report] = rows;
        render[report](rows);
      }, (e) => {
        if (my !== generation) return;
        delete last[report];
        for (const n of cards[report]) { clearCard(n); setState(n, "error", errorText(e)); }
        if (e.status === 401 || e.status === 403) {
          const b = $("#banner");
          b.textContent = "The API refused this key: " + e.message + ". Sign out and sign in with an analyst key.";
          b.hidden = false;
        }
      });
    }
  }

  // ---------------------------------------------------------------- range picker
  const isoDay = (d) => d.toISOString().slice(0, 10);
  function setPreset(days) {
    if (days === 0) {
      $("#from").value = "";
      $("#to").value = "";
    } else {
      const today = new Date();
      const from = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (days - 1)));
      $("#from").value = isoDay(from);
      $("#to").value = isoDay(today);
    }
  }
  function markPreset() {
    const { from, to } = rangeParams();
    for (const b of $$(".presets button")) {
      const days = +b.dataset.days;
      let on;
      if (days === 0) on = !from && !to;
      else {
        const today = new Date();
        const f = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (days - 1)));
        on = from === isoDay(f) && to === isoDay(today);
      }
      b.classList.toggle("active", on);
    }
  }

  // ---------------------------------------------------------------- sign in / out
  function showBoard() {
    $("#login").hidden = true;
    $("#board").hidden = false;
    $("#range").hidden = false;
    $("#signout").hidden = false;
    load();
  }
  function showLogin() {
    generation++;
    for (const card of $$("[data-card]")) clearCard(card.dataset.card);
    for (const k of Object.keys(last)) delete last[k];
    $("#board").hidden = true;
    $("#range").hidden = true;
    $("#signout").hidden = true;
    $("#login").hidden = false;
    $("#key").value = "";
    $("#key").focus();
  }

  function init() {
    const hash = new URLSearchParams(location.hash.slice(1));
    if (hash.has("from") || hash.has("to")) {
      $("#from").value = hash.get("from") || "";
      $("#to").value = hash.get("to") || "";
    } else {
      setPreset(30);
    }
    $("#login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("#key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORE, key);
      showBoard();
    });
    $("#signout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      showLogin();
    });
    $("#range").addEventListener("submit", (e) => { e.preventDefault(); load(); });
    for (const b of $$(".presets button")) {
      b.addEventListener("click", () => { setPreset(+b.dataset.days); load(); });
    }
    for (const th of $$(".customers th")) {
      const sortBy = () => {
        const k = th.dataset.key;
        if (table.key === k) table.dir = -table.dir;
        else { table.key = k; table.dir = th.dataset.type === "text" ? 1 : -1; }
        renderCustomers();
      };
      th.tabIndex = 0;  // sortable from the keyboard too
      th.title = "Sort by " + th.textContent.toLowerCase();
      th.addEventListener("click", sortBy);
      th.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(); }
      });
    }
    $("#customer-search").addEventListener("input", renderCustomers);
    let t;
    window.addEventListener("resize", () => {
      clearTimeout(t);
      t = setTimeout(() => {
        if (last.volume && last.volume.length) renderVolume(last.volume);
        if (last.processing && last.processing.length) renderLatency(last.processing);
      }, 150);
    });
    if (getKey()) showBoard(); else showLogin();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
