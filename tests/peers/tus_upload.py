"""Uploads one file to imagelake's tus endpoint with tuspy, the tus project's Python client.

    tus_upload.py ENDPOINT KEY FILE --store STORE.json [--chunk BYTES] [--pause SECONDS]
                  [--filename NAME] [--checksum]

ENDPOINT is the creation URL (http://host:port/v1/uploads), KEY an API key (sent as
`Authorization: Bearer KEY`). tuspy keeps the upload URL in STORE (its FileStorage,
store_url=True), keyed by the file's fingerprint, so a second run with the same STORE
resumes the upload the first one left (at the offset HEAD tells) instead of starting
over. --pause sleeps before each chunk, so a caller can kill the process mid-way.

Prints one JSON object a line, flushed at once (tests/tus_clients.rs reads them while
the upload runs):
  {"event": "start", "url": URL, "offset": N, "resumed": BOOL}  before the first chunk
  {"event": "chunk", "offset": N}                                  after each acknowledged PATCH
  {"event": "done", "url": URL, "offset": N, "image": PATH|null}   PATH: the last PATCH's
                                                                   Imagelake-Image header
Exits non-zero (with the error on stderr) when the upload fails.
"""

import argparse
import json
import sys
import time

from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage


def emit(**event):
    print(json.dumps(event), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("key")
    ap.add_argument("file")
    ap.add_argument("--store", required=True, help="tuspy FileStorage file (the upload URLs)")
    ap.add_argument("--chunk", type=int, default=256 * 1024)
    ap.add_argument("--pause", type=float, default=0.0)
    ap.add_argument("--filename", help="Upload-Metadata filename (default: the file's name)")
    ap.add_argument("--checksum", action="store_true", help="send Upload-Checksum (sha1) with each chunk")
    args = ap.parse_args()

    client = tus_client.TusClient(args.endpoint, headers={"Authorization": f"Bearer {args.key}"})
    storage = FileStorage(args.store)
    name = args.filename or args.file.rsplit("/", 1)[-1]
    # The constructor looks the file's fingerprint up in STORE; when a URL is there it asks
    # the server (HEAD) for the offset to resume from.
    uploader = client.uploader(
        args.file,
        chunk_size=args.chunk,
        metadata={"filename": name, "filetype": "image/jpeg" if name.lower().endswith((".jpg", ".jpeg")) else "application/octet-stream"},
        store_url=True,
        url_storage=storage,
        upload_checksum=args.checksum,
    )
    resumed = uploader.url is not None
    if not resumed:
        uploader.set_url(uploader.create_url())  # POST, and the URL into STORE
        uploader.offset = 0
    emit(event="start", url=uploader.url, offset=uploader.offset, resumed=resumed)
    size = uploader.get_file_size()
    while uploader.offset < size:
        if args.pause:
            time.sleep(args.pause)
        uploader.upload_chunk()
        emit(event="chunk", offset=uploader.offset)
    headers = uploader.request.response_headers if uploader.request else {}
    emit(event="done", url=uploader.url, offset=uploader.offset, image=headers.get("imagelake-image"))
    storage.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the caller reads the message
        detail = getattr(e, "response_content", None)
        print(f"tus_upload.py: {type(e).__name__}: {e} {detail!r}", file=sys.stderr)
        sys.exit(1)
