// Helpers for the browser tests of the tailsse viewer (node >= 18, plain
// CommonJS, no dependency but playwright-core).
//
// * Daemon: the real tailsse ($TAILSSE_BIN) in a temp dir of its own on a
//   free loopback port, like tests/integration/tsutil.py's Daemon: waits
//   for /healthz; stop() sends SIGTERM and fails when it does not exit 0
//   or when a sanitizer reported anything.  It can be stopped and started
//   again on the same port.
// * a tiny test runner: test(name, fn), skip(reason), the final line
//   "N passed, N failed, N skipped".
// * Session: one browser context per test that records every request (a
//   request to another origin fails the test) and every page error.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const net = require("net");
const http = require("http");
const { spawn } = require("child_process");

const HERE = __dirname;
const TOP = path.resolve(HERE, "..", "..");

function tailsseBin() {
  if (process.env.TAILSSE_BIN) return process.env.TAILSSE_BIN;
  for (const c of ["build-test/src/tailsse", "build/src/tailsse", "src/tailsse"]) {
    const p = path.join(TOP, c);
    if (fs.existsSync(p)) return p;
  }
  throw new Error("set TAILSSE_BIN to the tailsse binary");
}

function tailsseWww() {
  return process.env.TAILSSE_WWW || path.join(TOP, "www");
}

const SANITIZER_MARKS = ["AddressSanitizer", "LeakSanitizer", "runtime error"];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// One GET: resolves with {status, headers, body} once the head is in
// (whole: false, the request is then dropped: for streams) or the whole
// body (whole: true).
function get(port, target, { headers = {}, whole = true, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: target, headers, agent: false }, (res) => {
      if (!whole) {
        resolve({ status: res.statusCode, headers: res.headers, body: "" });
        req.destroy();
        return;
      }
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers,
        body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error("GET " + target + ": no answer in " + timeout + " ms")));
    req.on("error", reject);
  });
}

class Daemon {
  // logs: names, each the file DIR/NAME.log (created empty unless in
  // missing, or with content[name]); server: [server] keys, written to a
  // config file (the logs then go there too).
  constructor({ logs = ["app"], server = null, missing = [], content = {} } = {}) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "tailsse-br-"));
    this.logs = logs;
    this.server = server;
    this.port = null;
    this.proc = null;
    this.exited = null;
    this.stderrPath = path.join(this.dir, "stderr.txt");
    for (const n of logs) if (!missing.includes(n)) fs.writeFileSync(this.path(n), content[n] || "");
  }

  path(name) { return path.join(this.dir, name + ".log"); }
  write(name, data) { fs.appendFileSync(this.path(name), data); }
  ino(name) { return fs.statSync(this.path(name)).ino; }
  stderr() { try { return fs.readFileSync(this.stderrPath, "utf8"); } catch (e) { return ""; } }
  url(rel = "") { return "http://127.0.0.1:" + this.port + "/" + rel; }
  get origin() { return "http://127.0.0.1:" + this.port; }

  argv(port) {
    const a = ["-l", "127.0.0.1:" + port, "-w", tailsseWww()];
    if (this.server) {
      const lines = ["# written by tests/browser/lib.js", "[server]"];
      for (const [k, v] of Object.entries(this.server)) lines.push(k + " = " + v);
      for (const n of this.logs) lines.push("", "[log " + n + "]", "path = " + this.path(n));
      const cfg = path.join(this.dir, "tailsse.conf");
      fs.writeFileSync(cfg, lines.join("\n") + "\n");
      return a.concat(["-c", cfg]);
    }
    return a.concat(this.logs.map((n) => n + "=" + this.path(n)));
  }

  // Start, on `port` when given (a restart), else on a free one.  Throws
  // with the daemon's stderr when it does not become healthy.
  async start(port) {
    let last = "";
    for (let attempt = 0; attempt < 5; attempt++) {
      const p = port || await freePort();
      const err = fs.openSync(this.stderrPath, "w");
      this.proc = spawn(tailsseBin(), this.argv(p), { cwd: this.dir, stdio: ["ignore", err, err] });
      fs.closeSync(err);
      this.exited = new Promise((r) => this.proc.once("exit", (code, sig) => r({ code, sig })));
      this.port = p;
      this.returncode = undefined;
      if (await this.waitHealthy()) return this;
      last = this.stderr();
      const gone = this.proc.exitCode !== null;
      if (!gone) this.proc.kill("SIGKILL");
      await this.exited;
      if (!(gone && /Address already in use/.test(last)) || port) break;
    }
    this.proc = null;   // it did not start: nothing to stop or check
    const e = new Error("tailsse did not become healthy; stderr:\n" + last);
    e.stderr = last;
    throw e;
  }

  async waitHealthy() {
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) return false;
      try {
        const r = await get(this.port, "/healthz", { timeout: 1000 });
        if (r.status === 200) return true;
      } catch (e) { /* not yet */ }
      await sleep(20);
    }
    return false;
  }

  // SIGTERM; fails unless it exits 0 within 5 s with a clean stderr.
  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode) {
      if (this.proc) this.checkExit(await this.exited);
      return;
    }
    this.proc.kill("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
    const r = await this.exited;
    clearTimeout(t);
    this.checkExit(r);
  }

  checkExit(r) {
    const err = this.stderr();
    const bad = SANITIZER_MARKS.find((m) => err.includes(m));
    if (r.code !== 0 || bad) {
      throw new Error("tailsse exit " + (r.code === null ? "by signal " + r.sig : r.code) +
        (bad ? ", " + bad + " report" : "") + "; stderr:\n" + err);
    }
  }

  async restart() {
    await this.stop();
    await this.start(this.port);
  }

  cleanup() {
    if (this.proc && this.proc.exitCode === null && !this.proc.signalCode) this.proc.kill("SIGKILL");
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // The status of a request (the head only; a stream is dropped at once)
  async status(target, headers) {
    return (await get(this.port, target, { whole: false, headers })).status;
  }
}

// A reverse proxy on a free loopback port that serves the daemon under
// PREFIX (e.g. "/logs/"), streaming (no buffering), like nginx with
// proxy_buffering off.  Anything outside PREFIX is a 404.  .seen: paths
// asked for.
async function startProxy(daemon, prefix) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url);
    if (!req.url.startsWith(prefix)) {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end("outside " + prefix + "\n");
      return;
    }
    const up = http.request({ host: "127.0.0.1", port: daemon.port, method: req.method, agent: false,
      path: "/" + req.url.slice(prefix.length), headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on("error", () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    res.on("close", () => up.destroy());   // the browser went away
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    seen, port, origin: "http://127.0.0.1:" + port,
    url: (rel = "") => "http://127.0.0.1:" + port + prefix + rel,
    close: () => new Promise((r) => { server.closeAllConnections && server.closeAllConnections(); server.close(() => r()); }),
  };
}

// Whether a request is for an event stream (api/logs/NAME/events or
// api/events).
function isStream(r) {
  return /\/events$/.test(new URL(typeof r === "string" ? r : r.url()).pathname);
}

// Resolves when the page's stream request ends (closed or failed).
function streamEnded(page, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const h = (r) => {
      if (!isStream(r)) return;
      page.off("requestfailed", h);
      page.off("requestfinished", h);
      clearTimeout(t);
      resolve(r);
    };
    const t = setTimeout(() => {
      page.off("requestfailed", h);
      page.off("requestfinished", h);
      reject(new Error("the stream did not end within " + timeout + " ms"));
    }, timeout);
    page.on("requestfailed", h);
    page.on("requestfinished", h);
  });
}

// "n=000123 payload" lines, like tsutil's Writer.
const numbered = (from, to, extra = "") => {
  let s = "";
  for (let i = from; i <= to; i++) s += "n=" + String(i).padStart(6, "0") + " payload" + extra + "\n";
  return s;
};

class Skip extends Error {}
function skip(why) { throw new Skip(why); }

function assert(cond, msg) {
  if (!cond) throw new Error("assertion failed: " + msg);
}

function assertEqual(a, b, msg) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) {
    const cut = (s) => (s.length > 600 ? s.slice(0, 300) + " … " + s.slice(-300) : s);
    throw new Error((msg || "not equal") + ":\n  got      " + cut(ja) + "\n  expected " + cut(jb));
  }
}

const LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// One test's browser contexts, daemons and records.
class Session {
  constructor(browser, outDir) {
    this.browser = browser;
    this.outDir = outDir;
    this.contexts = [];
    this.daemons = [];
    this.requests = [];   // {url, type, page origin}
    this.errors = [];
  }

  async daemon(opts) {
    const d = new Daemon(opts);
    this.daemons.push(d);
    await d.start();
    return d;
  }

  // A new page in a context of its own, not yet navigated; its requests
  // are recorded against origin.
  async newPage(origin, opts = {}) {
    const ctx = await this.browser.newContext(Object.assign({
      viewport: { width: 1280, height: 800 }, colorScheme: "light", deviceScaleFactor: 1,
    }, opts));
    this.contexts.push(ctx);
    ctx.on("request", (r) => this.requests.push({ url: r.url(), type: r.resourceType(), origin }));
    const page = await ctx.newPage();
    page.on("pageerror", (e) => this.errors.push(String(e)));
    // the page's Content-Security-Policy refusing something is a bug too
    page.on("console", (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) this.errors.push("console: " + m.text());
    });
    return page;
  }

  // A new page at the daemon's page + query.
  async open(d, query = "", opts = {}) {
    const page = await this.newPage(d.origin, opts);
    await page.goto(d.url(query));
    return page;
  }

  shot(page, name) {
    fs.mkdirSync(this.outDir, { recursive: true });
    const p = path.join(this.outDir, name + ".png");
    return page.screenshot({ path: p }).then(() => p);
  }

  // Every request of every page went to the page's own origin.
  checkOrigins() {
    const away = this.requests.filter((r) => !(r.url + "/").startsWith(r.origin + "/"));
    assert(away.length === 0, "requests left the page's origin: " + away.map((r) => r.url).join(", "));
  }

  async close() {
    for (const c of this.contexts) await c.close().catch(() => {});
    let err = null;
    for (const d of this.daemons) {
      try { await d.stop(); } catch (e) { err = err || e; }
      d.cleanup();
    }
    if (err) throw err;
  }
}

// ---------------------------------------------------------------- page helpers

// The text of each line in the view (without permalink and log tag), and
// "--sep: TEXT" for separators.
function viewRows(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll("#lines .ln, #lines .sep")).map((e) => {
    if (e.classList.contains("sep")) return "--sep: " + e.textContent;
    let t = "";
    for (const n of e.childNodes) {
      if (n.nodeType === 1 && (n.classList.contains("pl") || n.classList.contains("tag"))) continue;
      t += n.textContent;
    }
    return t;
  }));
}

function lineTexts(page) {
  return viewRows(page).then((rows) => rows.filter((r) => !r.startsWith("--sep: ")));
}

// Wait until the view holds a line equal to text (looked for from the
// newest line back, every 50 ms).
function waitLine(page, text, timeout = 5000) {
  return page.waitForFunction((t) => {
    const ls = document.querySelectorAll("#lines .ln");
    for (let i = ls.length - 1; i >= 0; i--) {
      let s = "";
      for (const n of ls[i].childNodes) {
        if (n.nodeType === 1 && (n.classList.contains("pl") || n.classList.contains("tag"))) continue;
        s += n.textContent;
      }
      if (s === t) return true;
    }
    return false;
  }, text, { timeout, polling: 50 });
}

function waitState(page, state, timeout = 5000) {
  return page.waitForFunction((s) => document.getElementById("status").dataset.state === s, state,
    { timeout, polling: 50 });
}

// The numbers of the "n=000123 payload" lines shown, in order.
async function shownNumbers(page) {
  return (await lineTexts(page)).map((t) => {
    const m = /^n=(\d+) payload/.exec(t);
    return m ? Number(m[1]) : t;
  });
}

// The controls shown (inputs, buttons, selects) that have no name a
// screen reader can say: no label, aria-label, text or title.
function unlabelled(page) {
  return page.$$eval("input, button, select", (es) => es.filter((e) => e.getClientRects().length > 0)
    .filter((e) => !(e.getAttribute("aria-label") || (e.labels && e.labels.length && e.labels[0].textContent.trim()) ||
      e.textContent.trim() || e.title)).map((e) => e.outerHTML));
}

const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

// ---------------------------------------------------------------- runner

const tests = [];
function test(name, fn, { timeout = 40000 } = {}) { tests.push({ name, fn, timeout }); }

async function runAll(filter) {
  const { chromium } = require("playwright-core");
  const outDir = process.env.TAILSSE_TEST_OUTPUT || path.join(process.cwd(), "test-output");
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: LAUNCH_ARGS,
  });
  let passed = 0, failed = 0, skipped = 0;
  const t00 = Date.now();
  for (const t of tests) {
    if (filter && !t.name.includes(filter)) continue;
    const s = new Session(browser, outDir);
    const t0 = Date.now();
    let outcome = "ok", detail = "";
    let timer;
    try {
      await Promise.race([
        t.fn(s),
        new Promise((_, rej) => { timer = setTimeout(() => rej(new Error("timed out after " + t.timeout + " ms")), t.timeout); }),
      ]);
      s.checkOrigins();
      assert(s.errors.length === 0, "errors in the page: " + s.errors.join("; "));
    } catch (e) {
      if (e instanceof Skip) { outcome = "skip"; detail = e.message; }
      else { outcome = "FAIL"; detail = (e && e.stack) || String(e); }
    } finally {
      clearTimeout(timer);
    }
    try {
      await s.close();
    } catch (e) {
      if (outcome !== "FAIL") { outcome = "FAIL"; detail = String(e && e.message); }
    }
    const ms = Date.now() - t0;
    if (outcome === "ok") passed++;
    else if (outcome === "skip") skipped++;
    else failed++;
    console.log(outcome + " - " + t.name + " (" + ms + " ms)" + (detail ? ": " + detail : ""));
  }
  await browser.close();
  console.log("# " + ((Date.now() - t00) / 1000).toFixed(1) + " s; screenshots in " + outDir);
  console.log(passed + " passed, " + failed + " failed" + (skipped ? ", " + skipped + " skipped" : ""));
  return failed === 0;
}

module.exports = {
  Daemon, Session, Skip, startProxy, streamEnded, isStream, skip, assert, assertEqual, sleep, get, numbered, range, test, runAll,
  viewRows, lineTexts, waitLine, waitState, shownNumbers, unlabelled, LAUNCH_ARGS,
};
