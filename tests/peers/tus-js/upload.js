// Uploads one file to imagelake's tus endpoint with tus-js-client (the tus project's
// JavaScript client) under Node. tus-js-client comes from package-lock.json, installed by
// scripts/install.sh into $IMAGELAKE_CACHE/tus-js/node_modules: run with NODE_PATH set to it.
//
//   node upload.js ENDPOINT KEY FILE --store STORE.json [--chunk BYTES] [--pause-ms MS]
//                  [--filename NAME] [--terminate-after N]
//
// The upload URL is kept in STORE (tus.FileUrlStorage, fingerprint: path, size, mtime,
// endpoint), so a second run with the same STORE resumes the upload the first one left
// (findPreviousUploads + resumeFromPreviousUpload; the client asks HEAD for the offset).
// --pause-ms waits before each PATCH, so that a caller can kill the process mid-way.
// --terminate-after N: after N acknowledged chunks, abort(true) — the client's
// termination (DELETE) — and exit.
//
// Prints one JSON object a line (tests/tus_clients.rs reads them while the upload runs):
//   {"event":"start","url":URL|null,"resumed":BOOL}     before the first request
//   {"event":"url","url":URL}                             the upload URL (created or resumed)
//   {"event":"head","offset":N,"status":S}                what HEAD answered (a resume)
//   {"event":"chunk","offset":N}                          after each acknowledged PATCH
//   {"event":"done","url":URL,"offset":N,"image":PATH|null}  PATH: the last PATCH's Imagelake-Image
//   {"event":"terminated","url":URL}                      after abort(true) resolved
// Exits non-zero (with the error on stderr) when the upload fails.
'use strict'

const fs = require('fs')
const path = require('path')
const tus = require('tus-js-client')

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`)
}

function parseArgs(argv) {
  const opts = { chunk: 256 * 1024, pauseMs: 0, filename: null, store: null, terminateAfter: 0 }
  const pos = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--chunk') opts.chunk = Number(argv[++i])
    else if (a === '--pause-ms') opts.pauseMs = Number(argv[++i])
    else if (a === '--filename') opts.filename = argv[++i]
    else if (a === '--store') opts.store = argv[++i]
    else if (a === '--terminate-after') opts.terminateAfter = Number(argv[++i])
    else pos.push(a)
  }
  if (pos.length !== 3 || !opts.store) {
    throw new Error('usage: upload.js ENDPOINT KEY FILE --store STORE.json [--chunk N] [--pause-ms MS] [--filename NAME] [--terminate-after N]')
  }
  ;[opts.endpoint, opts.key, opts.file] = pos
  return opts
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const filename = opts.filename || path.basename(opts.file)
  const size = fs.statSync(opts.file).size
  // FileUrlStorage locks its file (proper-lockfile), which must exist.
  if (!fs.existsSync(opts.store)) fs.writeFileSync(opts.store, '{}')
  let chunks = 0
  let lastImage = null
  let upload = null
  let terminating = null
  const finished = new Promise((resolve, reject) => {
    upload = new tus.Upload(fs.createReadStream(opts.file), {
      endpoint: opts.endpoint,
      headers: { Authorization: `Bearer ${opts.key}` },
      chunkSize: opts.chunk,
      metadata: { filename, filetype: 'image/jpeg' },
      urlStorage: new tus.FileUrlStorage(opts.store),
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: false,
      // A failure is the test's business: report it, do not retry it away.
      retryDelays: null,
      onBeforeRequest: (req) =>
        req.getMethod() === 'PATCH' && opts.pauseMs > 0 ? new Promise((r) => setTimeout(r, opts.pauseMs)) : undefined,
      onAfterResponse: (req, res) => {
        if (req.getMethod() === 'HEAD') {
          emit({ event: 'head', offset: Number(res.getHeader('Upload-Offset')), status: res.getStatus() })
        }
        if (req.getMethod() === 'PATCH' && res.getHeader('Imagelake-Image')) {
          lastImage = res.getHeader('Imagelake-Image')
        }
      },
      onUploadUrlAvailable: () => emit({ event: 'url', url: upload.url }),
      onChunkComplete: (_size, accepted) => {
        emit({ event: 'chunk', offset: accepted })
        chunks += 1
        if (opts.terminateAfter > 0 && chunks === opts.terminateAfter && terminating === null) {
          const url = upload.url
          terminating = upload.abort(true).then(() => {
            emit({ event: 'terminated', url })
            resolve()
          }, reject)
        }
      },
      onSuccess: () => {
        emit({ event: 'done', url: upload.url, offset: size, image: lastImage })
        resolve()
      },
      onError: reject,
    })
  })
  const previous = await upload.findPreviousUploads()
  if (previous.length > 0) {
    upload.resumeFromPreviousUpload(previous[0])
  }
  emit({ event: 'start', url: previous.length > 0 ? previous[0].uploadUrl : null, resumed: previous.length > 0 })
  upload.start()
  await finished
}

main().catch((err) => {
  process.stderr.write(`upload.js: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
