"""Drives the web dashboard (/dashboard) in a real headless Chromium and checks that what it
shows is what the statistics API answers, for the same key and the same date range.

    python dashboard_check.py --url http://127.0.0.1:PORT --key ANALYST_KEY --artifacts DIR
                              [--chromium /usr/bin/chromium] [--chromedriver /usr/bin/chromedriver]

What it checks, in order:
  1. the three static files answer without a key, with their content types and a strict
     Content-Security-Policy (no external source);
  2. sign-in: the key typed into the form is kept in sessionStorage only (no cookie, no
     localStorage) and sent as `Authorization: Bearer`;
  3. every card (KPIs, capacity gauge and forecast, uploads and bytes per day, processed /
     failed / expired per day, latency p50/p95, formats, customers) shows the API's numbers,
     read back from the DOM (text, and data-* attributes for the raw values);
  4. the customers table sorts by a column and filters by the search box; hovering a
     day shows its figures;
  5. a narrower date range shows every card's loading state, then changes every figure to the API's answer for that range, and
     the new totals equal the old daily series restricted to that range;
  6. a range with no data shows the empty states; a reversed range shows the API's
     problem+json `detail` in every card (error state);
  7. a wrong key shows the API's error (`unknown API key`) and a banner;
  8. the page fetched nothing but same-origin URLs and logged no CSP violation or
     script error.
Screenshots: DIR/dashboard.png (the full page after sign-in), DIR/dashboard-7d.png and
DIR/dashboard-error.png. Prints one JSON line of figures at the end.
"""
import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CARDS = ["summary", "capacity", "uploads", "bytes", "outcomes", "formats", "latency", "customers"]


# ------------------------------------------------------------------ the dashboard's formats
def fmt_int(n):
    return "–" if n is None else f"{n:,}"


def to_fixed(v, digits):
    """JavaScript's Number.prototype.toFixed: the exact double, ties away from zero."""
    return str(Decimal(v).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def fmt_bytes(n):
    if n is None:
        return "–"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    v, i = float(abs(n)), 0
    while v >= 1000 and i < len(units) - 1:
        v /= 1000
        i += 1
    s = str(int(v)) if i == 0 else to_fixed(v, 2 if v < 10 else 1 if v < 100 else 0)
    return ("-" if n < 0 else "") + s + " " + units[i]


# ------------------------------------------------------------------ helpers
class Check:
    def __init__(self):
        self.count = 0

    def eq(self, what, got, want):
        self.count += 1
        if got != want:
            raise AssertionError(f"{what}: dashboard shows {got!r}, the API says {want!r}")

    def close(self, what, got, want):
        self.count += 1
        if want is None or got is None:
            if got != want:
                raise AssertionError(f"{what}: dashboard shows {got!r}, the API says {want!r}")
            return
        if abs(got - want) > 1e-9 * max(abs(want), 1.0):
            raise AssertionError(f"{what}: dashboard shows {got!r}, the API says {want!r}")

    def true(self, what, cond):
        self.count += 1
        if not cond:
            raise AssertionError(what)


def num(s):
    """A data-value attribute back to a number (or None for '')."""
    if s is None or s == "":
        return None
    f = float(s)
    return int(f) if f.is_integer() and "e" not in s and "." not in s else f


def http_get(url, key=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def api(base, key, report, frm, to, **extra):
    q = {k: v for k, v in {"from": frm, "to": to, **extra}.items() if v}
    url = f"{base}/v1/stats/{report}" + ("?" + urllib.parse.urlencode(q) if q else "")
    status, _, body = http_get(url, key)
    if status != 200:
        raise AssertionError(f"GET {url}: {status} {body[:300]!r}")
    return json.loads(body)


def tid(driver, testid):
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def tids(driver, testid):
    return driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def card_states(driver):
    return driver.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('[data-card]'))"
        ".map(c => [c.dataset.card, [c.dataset.state, c.querySelector('.state').textContent]]))")


def settle(driver, timeout=90):
    """Waits until no card is loading; returns {card: (state, message)}."""
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: all(s != "loading" for s, _ in card_states(d).values()))
    return card_states(driver)


def set_range(driver, frm, to):
    driver.execute_script("document.getElementById('from').value = arguments[0];"
                          "document.getElementById('to').value = arguments[1];", frm, to)
    tid(driver, "range-apply").click()
    return settle(driver)


def screenshot(driver, path):
    """The whole page, not just the viewport (Chrome DevTools Protocol)."""
    import base64
    driver.execute_script("window.scrollTo(0, 0)")  # the sticky header belongs at the top
    time.sleep(0.2)
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}", file=sys.stderr)


# ------------------------------------------------------------------ what the board must show
def check_board(driver, c, base, key, frm, to):
    """Every card against the API's answer for [frm, to]; returns the API's answers."""
    states = settle(driver)
    a = {r: api(base, key, r, frm, to) for r in ["summary", "usage", "processing", "types", "customers"]}
    a["volume"] = api(base, key, "volume", frm, to, interval="day")
    a["engagement"] = api(base, key, "engagement", frm, to, limit="10")
    s = a["summary"][0]

    # KPIs: the text as the user reads it, and the raw value.
    c.eq("summary state", states["summary"][0], "ready")
    for testid, col in [("kpi-images", "images"), ("kpi-processed", "processed"), ("kpi-failed", "failed"),
                        ("kpi-expired", "expired")]:
        e = tid(driver, testid)
        c.eq(f"{testid} text", e.text, fmt_int(s[col]))
        c.eq(f"{testid} value", num(e.get_attribute("data-value")), s[col])
    c.eq("kpi-bytes text", tid(driver, "kpi-bytes").text, fmt_bytes(s["bytes"]))
    c.eq("kpi-bytes value", num(tid(driver, "kpi-bytes").get_attribute("data-value")), s["bytes"])
    c.close("failure rate", num(tid(driver, "kpi-failure-rate").get_attribute("data-value")), s["failure_rate"])

    # Capacity: the whole-lake row of the usage report.
    total = next(r for r in a["usage"] if r["customer_id"] is None)
    c.eq("capacity state", states["capacity"][0], "ready")
    c.eq("capacity used", num(tid(driver, "capacity-used").get_attribute("data-value")), total["used_bytes"])
    c.eq("capacity used text", tid(driver, "capacity-used").text, fmt_bytes(total["used_bytes"]))
    c.eq("capacity total", num(tid(driver, "capacity-total").get_attribute("data-value")), total["capacity_bytes"])
    c.close("capacity percent", num(tid(driver, "capacity-percent").get_attribute("data-value")), total["used_percent"])
    c.close("days until full", num(tid(driver, "capacity-days").get_attribute("data-value")), total["days_until_full"])
    c.close("growth per day", num(tid(driver, "capacity-growth").get_attribute("data-value")),
            total["growth_bytes_per_day"])

    # The daily series: one chart point per API row, with the API's values.
    vol = a["volume"]
    want_state = "ready" if vol else "empty"
    for card in ["uploads", "bytes", "outcomes", "social"]:
        c.eq(f"{card} state", states[card][0], want_state)
    for chart, cols in [("uploads", ["uploads"]), ("bytes", ["bytes"]), ("outcomes", ["processed", "failed", "expired"]),
                        ("social", ["posts", "comments"])]:
        points = tids(driver, f"{chart}-point")
        c.eq(f"{chart} points", len(points), len(vol))
        for p, row in zip(points, vol):
            c.eq(f"{chart} x", p.get_attribute("data-x"), row["bucket"])
            for col in cols:
                c.eq(f"{chart} {row['bucket']} {col}", num(p.get_attribute(f"data-{col}")), row[col])
    if vol:
        c.eq("uploads total", num(tid(driver, "uploads-total").get_attribute("data-value")), s["images"])
        c.eq("bytes total", num(tid(driver, "bytes-total").get_attribute("data-value")), s["bytes"])
        for col in ["processed", "failed", "expired"]:
            c.eq(f"{col} total", num(tid(driver, f"outcomes-total-{col}").get_attribute("data-value")),
                 sum(r[col] for r in vol))
        for col in ["posts", "comments"]:
            c.eq(f"{col} total", num(tid(driver, f"social-total-{col}").get_attribute("data-value")),
                 sum(r[col] for r in vol))
        # The daily figures add up to the summary's (failed per day is volume's column).
        c.eq("failed per day adds up to the summary", sum(r["failed"] for r in vol), s["failed"])
        c.eq("expired per day adds up to the summary", sum(r["expired"] for r in vol), s["expired"])

    # Latency p50/p95 per day.
    proc = a["processing"]
    c.eq("latency state", states["latency"][0], "ready" if proc else "empty")
    points = tids(driver, "latency-point")
    c.eq("latency points", len(points), len(proc))
    for p, row in zip(points, proc):
        c.eq("latency day", p.get_attribute("data-x"), row["day"])
        for col in ["p50_processing_ms", "p95_processing_ms"]:
            c.close(f"latency {row['day']} {col}", num(p.get_attribute("data-" + col.replace("_", "-"))), row[col])

    # Formats.
    rows = tids(driver, "format-row")
    c.eq("formats state", states["formats"][0], "ready" if a["types"] else "empty")
    c.eq("formats", [(r.get_attribute("data-type"), num(r.get_attribute("data-images"))) for r in rows],
         [(t["type"], t["images"]) for t in a["types"]])
    for r, t in zip(rows, a["types"]):
        c.eq(f"format {t['type']} text", r.find_element(By.CSS_SELECTOR, '[data-testid="format-images"]').text,
             fmt_int(t["images"]))

    # The most-commented posts: the API's rows, in its order.
    eng = a["engagement"]
    c.eq("engagement state", states["engagement"][0], "ready" if eng else "empty")
    rows = tids(driver, "engagement-row")
    c.eq("engagement posts", [r.get_attribute("data-post") for r in rows], [e["post_id"] for e in eng])
    for r, e in zip(rows, eng):
        cell = r.find_element(By.CSS_SELECTOR, '[data-testid="engagement-comments"]')
        c.eq(f"engagement {e['post_id']} comments", num(cell.get_attribute("data-value")), e["comments"])
        c.eq(f"engagement {e['post_id']} comments text", cell.text, fmt_int(e["comments"]))

    # Customers: every cell's raw value, and the text of the counts.
    c.eq("customers state", states["customers"][0], "ready" if a["customers"] else "empty")
    want = {r["customer_id"]: r for r in a["customers"]}
    table = driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=customer-row]')).map(tr => "
        "Object.fromEntries(Array.from(tr.cells).map(td => [td.dataset.key, [td.dataset.value, td.textContent]])))")
    c.eq("customer ids", sorted(r["customer_id"][0] for r in table), sorted(want))
    for r in table:
        w = want[r["customer_id"][0]]
        for col, (raw, text) in r.items():
            if col == "customer_id":
                continue
            if isinstance(w[col], float) or col.endswith("_ms") or col == "failure_rate":
                c.close(f"customer {w['customer_id']} {col}", None if raw == "" else float(raw), w[col])
            else:
                c.eq(f"customer {w['customer_id']} {col}", num(raw), w[col])
            if col in ("uploads", "processed", "failed"):
                c.eq(f"customer {w['customer_id']} {col} text", text, fmt_int(w[col]))
            if col in ("bytes_uploaded", "bytes_stored"):
                c.eq(f"customer {w['customer_id']} {col} text", text, fmt_bytes(w[col]))
    # Sorted by uploads, most first, by default.
    shown = [r["customer_id"][0] for r in table]
    c.eq("default order", shown,
         [r["customer_id"] for r in sorted(a["customers"], key=lambda r: (-r["uploads"], r["customer_id"]))])
    return a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    a = ap.parse_args()
    base = a.url.rstrip("/")
    os.makedirs(a.artifacts, exist_ok=True)
    c = Check()
    t0 = time.time()

    # 1. The static files: no key needed, right types, a strict CSP.
    for path, ctype in [("/dashboard", "text/html"), ("/dashboard/app.js", "text/javascript"),
                        ("/dashboard/app.css", "text/css")]:
        status, headers, body = http_get(base + path)
        headers = {k.lower(): v for k, v in headers.items()}
        c.eq(f"GET {path}", status, 200)
        c.true(f"{path} content type {headers.get('content-type')}", headers.get("content-type", "").startswith(ctype))
        csp = headers.get("content-security-policy", "")
        c.true(f"{path} CSP: {csp}", "default-src 'none'" in csp and "script-src 'self'" in csp
               and "connect-src 'self'" in csp and "http" not in csp and "unsafe" not in csp and "*" not in csp)
        # (The SVG namespace is a name, not something fetched.)
        text = body.replace(b"http://www.w3.org/2000/svg", b"")
        c.true(f"{path} references nothing external", b"http://" not in text and b"https://" not in text)

    profile = tempfile.mkdtemp(prefix="imagelake-chromium-")
    opts = Options()
    opts.binary_location = a.chromium
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,1000", "--hide-scrollbars",
                 "--force-device-scale-factor=1", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=a.chromedriver), options=opts)
    figures = {}
    try:
        driver.set_page_load_timeout(60)
        # 2. Sign in.
        driver.get(base + "/dashboard")
        WebDriverWait(driver, 30).until(lambda d: tid(d, "login-form").is_displayed())
        c.true("board hidden before sign-in", not tid(driver, "card-summary").is_displayed())
        tid(driver, "login-key").send_keys(a.key)
        tid(driver, "login-submit").click()
        frm, to = tid(driver, "range-from").get_attribute("value"), tid(driver, "range-to").get_attribute("value")
        c.true(f"a default range is set ({frm}..{to})", bool(frm) and bool(to))
        c.eq("key in sessionStorage", driver.execute_script("return sessionStorage.getItem('imagelake.analystKey')"), a.key)
        c.eq("nothing in localStorage", driver.execute_script("return localStorage.length"), 0)
        c.eq("no cookie", driver.get_cookies(), [])

        # 3. Every card equals the API for the default range (the last 30 days).
        wide = check_board(driver, c, base, a.key, frm, to)
        figures["30d"] = {"from": frm, "to": to, "images": wide["summary"][0]["images"],
                          "days": len(wide["volume"]), "customers": len(wide["customers"])}
        c.true("the generated lake shows up", wide["summary"][0]["images"] > 0 and len(wide["volume"]) >= 7)
        time.sleep(0.3)  # let the last frame paint
        screenshot(driver, os.path.join(a.artifacts, "dashboard.png"))

        # 4. Sorting and searching the customers table.
        head = driver.find_element(By.CSS_SELECTOR, '.customers th[data-key="customer_id"]')
        head.click()
        ids = [e.get_attribute("data-customer") for e in tids(driver, "customer-row")]
        c.eq("sorted by customer, A to Z", ids, sorted(ids))
        head.click()
        ids = [e.get_attribute("data-customer") for e in tids(driver, "customer-row")]
        c.eq("sorted by customer, Z to A", ids, sorted(ids, reverse=True))
        driver.find_element(By.CSS_SELECTOR, '.customers th[data-key="bytes_stored"]').send_keys(Keys.ENTER)  # keyboard
        stored = [num(e.get_attribute("data-value")) for e in
                  driver.find_elements(By.CSS_SELECTOR, '[data-testid=customer-row] td[data-key=bytes_stored]')]
        c.eq("sorted by stored bytes, most first", stored, sorted(stored, reverse=True))
        target = sorted(ids)[1] if len(ids) > 1 else ids[0]
        box = tid(driver, "customer-search")
        box.send_keys(target)
        rows = [e.get_attribute("data-customer") for e in tids(driver, "customer-row")]
        c.eq(f"search {target}", rows, [target])
        c.true("count says 1 of N", tid(driver, "customers-count").text.startswith("1 of "))
        box.clear()
        driver.execute_script("arguments[0].dispatchEvent(new Event('input'))", box)
        c.eq("search cleared", len(tids(driver, "customer-row")), len(ids))
        driver.find_element(By.CSS_SELECTOR, '.customers th[data-key="uploads"]').click()  # back to the default

        # Hovering a day shows its figures.
        point = tids(driver, "uploads-point")[-1]
        ActionChains(driver).move_to_element(point).perform()
        tip = driver.find_element(By.ID, "tooltip")
        WebDriverWait(driver, 5).until(lambda d: tip.is_displayed())
        c.true(f"tooltip {tip.text!r}", f"Uploads: {fmt_int(wide['volume'][-1]['uploads'])}" in tip.text)
        ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, ".brand")).perform()
        WebDriverWait(driver, 5).until(lambda d: not tip.is_displayed())

        # 5. A narrower range: the last 7 days of the same series. Every card shows its
        # loading state from the submit until its answer is there.
        to_day = dt.date.fromisoformat(to)
        frm7 = (to_day - dt.timedelta(days=6)).isoformat()
        loading = driver.execute_script(
            "document.getElementById('from').value = arguments[0]; document.getElementById('to').value = arguments[1];"
            "document.getElementById('range').requestSubmit();"
            "return Array.from(document.querySelectorAll('[data-card]')).map(c => [c.dataset.state, "
            "c.querySelector('.state').textContent, getComputedStyle(c.querySelector('.state')).display]);", frm7, to)
        c.true(f"every card loading: {loading}", all(st == "loading" and txt == "Loading…" and disp != "none"
                                                    for st, txt, disp in loading))
        settle(driver)
        narrow = check_board(driver, c, base, a.key, frm7, to)
        s7 = narrow["summary"][0]
        in7 = [r for r in wide["volume"] if r["bucket"][:10] >= frm7]
        c.eq("7-day uploads = the 30-day series' last 7 days", s7["images"], sum(r["uploads"] for r in in7))
        c.eq("7-day bytes = the 30-day series' last 7 days", s7["bytes"], sum(r["bytes"] for r in in7))
        c.true(f"fewer images in 7 days ({s7['images']}) than in 30 ({wide['summary'][0]['images']})",
               0 < s7["images"] < wide["summary"][0]["images"])
        c.eq("7 daily points", len(tids(driver, "uploads-point")), len(narrow["volume"]))
        c.true("the range is in the address", f"from={frm7}" in driver.current_url)
        figures["7d"] = {"from": frm7, "to": to, "images": s7["images"], "days": len(narrow["volume"])}
        screenshot(driver, os.path.join(a.artifacts, "dashboard-7d.png"))

        # 6a. A range without data: empty states, zeros.
        states = set_range(driver, "2001-01-01", "2001-01-31")
        for card in ["uploads", "bytes", "outcomes", "formats", "latency"]:
            c.eq(f"{card} empty", states[card][0], "empty")
            c.true(f"{card} says why: {states[card][1]!r}", len(states[card][1]) > 5)
        c.eq("no images then", tid(driver, "kpi-images").text, "0")
        # 6b. A reversed range: the API's problem+json detail in every card.
        status, _, body = http_get(f"{base}/v1/stats/summary?from=2026-02-10&to=2026-02-01", a.key)
        detail = json.loads(body)["detail"]
        c.eq("reversed range is a 400", status, 400)
        states = set_range(driver, "2026-02-10", "2026-02-01")
        for card in CARDS:
            c.eq(f"{card} error state", states[card][0], "error")
            c.true(f"{card} shows the API's detail: {states[card][1]!r}", detail in states[card][1])
        figures["range_error"] = detail

        # 7. A wrong key: sign out, sign in again with it.
        tid(driver, "signout").click()
        WebDriverWait(driver, 10).until(lambda d: tid(d, "login-form").is_displayed())
        c.eq("sign-out forgets the key", driver.execute_script("return sessionStorage.length"), 0)
        tid(driver, "login-key").send_keys("ilk_" + "0" * 64)
        tid(driver, "login-submit").click()
        set_range(driver, frm, to)
        status, _, body = http_get(f"{base}/v1/stats/summary", "ilk_" + "0" * 64)
        detail = json.loads(body)["detail"]
        c.eq("wrong key is a 401", status, 401)
        states = card_states(driver)
        for card in CARDS:
            c.eq(f"{card} error state (wrong key)", states[card][0], "error")
            c.true(f"{card} shows {detail!r}: {states[card][1]!r}", detail in states[card][1] and "401" in states[card][1])
        banner = tid(driver, "banner")
        c.true(f"banner: {banner.text!r}", banner.is_displayed() and detail in banner.text)
        figures["key_error"] = detail
        screenshot(driver, os.path.join(a.artifacts, "dashboard-error.png"))

        # 8. Nothing but same-origin requests; no CSP violation, no script error.
        urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        origin = driver.execute_script("return location.origin")
        c.true("only same-origin requests: " + ", ".join(u for u in urls if not u.startswith(origin)),
               all(u.startswith(origin) for u in urls))
        logs = driver.get_log("browser")
        bad = [l["message"] for l in logs
               if "Content Security Policy" in l["message"] or "Uncaught" in l["message"]
               or (l["level"] == "SEVERE" and "the server responded with a status of" not in l["message"])]
        c.true("console errors: " + json.dumps(bad), not bad)
    except Exception:
        try:
            screenshot(driver, os.path.join(a.artifacts, "dashboard-failure.png"))
            print("browser log:", json.dumps(driver.get_log("browser"))[:4000], file=sys.stderr)
        except Exception as e:  # the report above matters more
            print(f"(no failure screenshot: {e})", file=sys.stderr)
        raise
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    figures["checks"] = c.count
    figures["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
