"""tus-js-client's browser bundle, in a real headless Chromium, uploads a file to imagelake
from a page of another origin: what a web app does through CORS.

    python tus_browser.py --port PORT --bundle .../tus-js-client/dist/tus.min.js --file IMAGE
                          --upload http://127.0.0.1:SERVER/v1/uploads KEY [--upload ENDPOINT KEY ...]
                          [--chunk 65536] [--chromium /usr/bin/chromium]
                          [--chromedriver /usr/bin/chromedriver]

Serves the page, the bundle and the file on http://127.0.0.1:PORT (the page's origin, which
the imagelake server may or may not list in `[http] cors_origins`). For each --upload, in
the same browser: loads the page, which fetches the file as a Blob and uploads it with
`tus.Upload` in `--chunk` byte chunks, without retries. The page records every answer's
`Location`, `Upload-Offset` and `Imagelake-Image` as the page can read them (null unless the
server exposes them through CORS), and tus-js-client's outcome (onSuccess / onError).

Prints one JSON line per endpoint: {"endpoint", "origin", "ok", "url" | "error", "size",
"responses": [{"method", "status", "location", "offset", "image"}], "console": [...]}.
The test judges them; this script exits non-zero only when the browser could not be driven
or the page never reported.
"""
import argparse
import http.server
import json
import os
import shutil
import signal
import sys
import tempfile
import threading

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>tus upload</title>
<script src="/tus.min.js"></script>
<script>
window.result = null;
window.startUpload = async function (endpoint, key, chunkSize) {
  const responses = [];
  const finish = (r) => { window.result = Object.assign({ origin: location.origin, responses }, r); };
  try {
    const blob = await (await fetch("/image")).blob();
    const upload = new tus.Upload(blob, {
      endpoint,
      chunkSize,
      retryDelays: null,
      headers: { Authorization: "Bearer " + key },
      metadata: { filename: "from-the-browser", filetype: blob.type },
      onAfterResponse(req, res) {
        responses.push({
          method: req.getMethod(),
          status: res.getStatus(),
          location: res.getHeader("Location") || null,
          offset: res.getHeader("Upload-Offset") || null,
          image: res.getHeader("Imagelake-Image") || null,
        });
      },
      onSuccess() { finish({ ok: true, url: upload.url, size: blob.size }); },
      onError(err) { finish({ ok: false, error: String(err), size: blob.size }); },
    });
    upload.start();
  } catch (e) {
    finish({ ok: false, error: "the page failed: " + e });
  }
};
</script>
<p>tus-js-client upload page</p>
"""


def serve(port, files):
    """The page's origin: a plain HTTP server on 127.0.0.1:port, in a thread."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body, ctype = files.get(self.path.split("?")[0], (None, None))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--upload", nargs=2, action="append", required=True, metavar=("ENDPOINT", "KEY"))
    ap.add_argument("--chunk", type=int, default=64 * 1024)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    a = ap.parse_args()
    # SIGTERM (the test's timeout) still quits the browser: the `finally` below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    ctype = "image/png" if a.file.endswith(".png") else "image/jpeg"
    with open(a.bundle, "rb") as f:
        bundle = f.read()
    with open(a.file, "rb") as f:
        image = f.read()
    site = serve(a.port, {"/": (PAGE, "text/html; charset=utf-8"),
                          "/tus.min.js": (bundle, "text/javascript"),
                          "/image": (image, ctype)})
    page = f"http://127.0.0.1:{a.port}/"

    profile = tempfile.mkdtemp(prefix="imagelake-tus-chromium-")
    opts = Options()
    opts.binary_location = a.chromium
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=a.chromedriver), options=opts)
        driver.set_page_load_timeout(30)
        for endpoint, key in a.upload:
            driver.get(page)
            WebDriverWait(driver, 10).until(lambda d: d.execute_script("return typeof tus !== 'undefined'"))
            driver.execute_script("window.startUpload(arguments[0], arguments[1], arguments[2])",
                                  endpoint, key, a.chunk)
            result = WebDriverWait(driver, 90).until(lambda d: d.execute_script("return window.result"))
            result["endpoint"] = endpoint
            result["console"] = [entry["message"] for entry in driver.get_log("browser")]
            print(json.dumps(result), flush=True)
    finally:
        if driver is not None:
            driver.quit()
        site.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
