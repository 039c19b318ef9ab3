// Browser tests of embedding and of HTTPS (issue 10): a page of another
// origin (tests/browser/dashboard/, served here on a port of its own)
// embeds the viewer in an iframe, opens EventSources to the daemon and
// fetch()es its API, with token, cors_origin and frame_ancestors set or
// not; and the viewer over TLS in a Chromium that takes the test's
// self-signed certificate.  Required by run.js.
"use strict";

const fs = require("fs");
const path = require("path");
const http = require("http");
const https = require("https");
const { execFileSync } = require("child_process");
const L = require("./lib");
const { test, assert, assertEqual, numbered, range, waitLine, waitState, shownNumbers } = L;

const DASHBOARD = path.join(__dirname, "dashboard");
const TOKEN = "emb3d-T0ken_x";

// The dashboard's files on a free loopback port: http://127.0.0.1:PORT and
// http://localhost:PORT are two origins of the same server.
async function startDashboard() {
  const types = { html: "text/html; charset=utf-8", js: "text/javascript", css: "text/css" };
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.replace(/^\/$/, "/index.html").slice(1);
    const m = /^[a-z]+\.(html|js|css)$/.exec(name);
    let body = null;
    try { body = m && fs.readFileSync(path.join(DASHBOARD, name)); } catch (e) { body = null; }
    if (!body) {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end("not found\n");
      return;
    }
    res.writeHead(200, { "Content-Type": types[m[1]], "Cache-Control": "no-store" });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  const origin = "http://127.0.0.1:" + port, other = "http://localhost:" + port;
  return {
    port, origin, other,
    // the page at origin o (default origin), with the viewer at viewer
    url: (viewer, o = origin) => o + "/" + (viewer ? "?viewer=" + encodeURIComponent(viewer) : ""),
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

// A page in a context of its own whose requests may go to any of origins
// (the dashboard's and the daemon's).  Its Content-Security-Policy
// refusals are kept in page.refusals for the test to judge (one is the
// point of some tests); page errors fail the test as usual.
async function crossPage(s, origins) {
  const ctx = await s.browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light",
    deviceScaleFactor: 1 });
  s.contexts.push(ctx);
  ctx.on("request", (r) => {
    const u = r.url();
    s.requests.push({ url: u, type: r.resourceType(), origin: origins.find((o) => (u + "/").startsWith(o + "/")) || origins[0] });
  });
  const page = await ctx.newPage();
  page.refusals = [];
  page.responses = [];
  page.on("pageerror", (e) => s.errors.push(String(e)));
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) page.refusals.push(m.text());
  });
  page.on("response", (r) => page.responses.push({ url: r.url(), status: r.status() }));
  return page;
}

// The frame of the dashboard's iframe.
async function viewerFrame(page) {
  return (await page.$("#viewer")).contentFrame();
}

const waitDash = (page, fn, arg, timeout = 5000) => page.waitForFunction(fn, arg, { timeout, polling: 50 });

// Wait until the dashboard's EventSource i has n lines; its record.
async function esLines(page, i, n, timeout = 5000) {
  await waitDash(page, ([j, k]) => window.dash.rec(j).lines.length >= k, [i, n], timeout);
  return page.evaluate((j) => window.dash.rec(j), i);
}

const nums = (lines) => lines.map((t) => { const m = /^n=(\d+) payload/.exec(t); return m ? Number(m[1]) : t; });

// ---------------------------------------------------------------- tests

test("embedded in another origin with a token: the viewer in an iframe, EventSource, fetch with Bearer", async (s) => {
  const dash = await startDashboard();
  try {
    const d = await s.daemon({ server: { token: TOKEN, cors_origin: dash.origin, frame_ancestors: dash.origin,
      retry: 300 }, content: { app: numbered(1, 3) } });
    const viewer = d.url("?log=app&embed=1&tail=10&token=" + TOKEN);
    const page = await crossPage(s, [dash.origin, d.origin]);

    // (d first, in a context with no cookie yet) fetch() with Authorization
    // needs a preflight; the answer and its body are readable
    await page.goto(dash.url(null));
    let f = await page.evaluate((u) => window.dash.fetch(u, { credentials: "include" }), d.url("api/logs"));
    assertEqual([f.status, f.type], [401, "cors"], "no token, no cookie: a 401 this origin may read (" + f.error + ")");
    f = await page.evaluate(([u, t]) => window.dash.fetch(u, { headers: { Authorization: "Bearer " + t } }),
      [d.url("api/logs"), TOKEN]);
    assertEqual([f.status, f.type, f.ctype], [200, "cors", "application/json"], "Bearer: " + (f.error || f.body));
    assertEqual(JSON.parse(f.body).map((l) => l.name), ["app"], "the list, read by the other origin");
    f = await page.evaluate(([u, t]) => window.dash.fetch(u, { headers: { Authorization: "Bearer " + t } }),
      [d.url("api/logs"), "wrong"]);
    assertEqual(f.status, 401, "a wrong Bearer token: " + (f.error || f.body));
    const g = await L.get(d.port, "/api/logs", { headers: { Origin: dash.origin, Authorization: "Bearer " + TOKEN } });
    assertEqual([g.status, g.headers["access-control-allow-origin"], g.headers["access-control-allow-credentials"]],
      [200, dash.origin, "true"], "the CORS headers of that answer");
    // what the browser asked first (Playwright does not show preflights)
    const opt = await new Promise((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port: d.port, path: "/api/logs", method: "OPTIONS", agent: false,
        headers: { Origin: dash.origin, "Access-Control-Request-Method": "GET",
          "Access-Control-Request-Headers": "authorization" } }, (res) => { res.resume(); resolve(res); });
      req.on("error", reject);
      req.end();
    });
    assertEqual([opt.statusCode, opt.headers["access-control-allow-origin"]], [204, dash.origin], "the preflight's answer");
    assert(/authorization/i.test(opt.headers["access-control-allow-headers"] || ""), "Authorization allowed: " +
      opt.headers["access-control-allow-headers"]);

    // (a) the viewer in the iframe, its token in the iframe's address
    await page.goto(dash.url(viewer));
    const frame = await viewerFrame(page);
    await waitLine(frame, "n=000003 payload");
    await waitState(frame, "live");
    d.write("app", numbered(4, 8));
    await waitLine(frame, "n=000008 payload");
    assertEqual(await shownNumbers(frame), range(1, 8), "lines in the iframe");
    assert(await frame.evaluate(() => document.documentElement.classList.contains("embed") &&
      getComputedStyle(document.getElementById("bar")).display === "none"), "embed=1: no header in the iframe");
    assertEqual(frame.url(), viewer, "the iframe keeps its address (token= too)");

    // (b) an EventSource of this origin, the token in its URL: lines live
    const es = await page.evaluate((u) => window.dash.stream(u, "api/logs/app/events?token=…"),
      d.url("api/logs/app/events?token=" + TOKEN));
    await waitDash(page, (i) => window.dash.rec(i).opens === 1, es);
    d.write("app", numbered(9, 12));
    let r = await esLines(page, es, 4);
    assertEqual(nums(r.lines), range(9, 12), "EventSource lines");
    await waitLine(frame, "n=000012 payload");
    // the daemon restarted: EventSource comes back from the last id by
    // itself (Last-Event-ID, a header that needs a preflight cross-origin)
    await d.stop();
    d.write("app", numbered(13, 20));
    await d.start(d.port);
    d.write("app", numbered(21, 22));
    r = await esLines(page, es, 14, 15000);
    assertEqual(nums(r.lines), range(9, 22), "EventSource lines across the restart, each once");
    assertEqual(r.opens, 2, "opened again once");
    assertEqual(r.ids[r.ids.length - 1], d.ino("app") + ":" + Buffer.byteLength(numbered(1, 22)), "the last id");
    await waitLine(frame, "n=000022 payload", 20000);
    assertEqual(await shownNumbers(frame), range(1, 22), "iframe lines across the restart, each once");

    // (c) no token: 401, EventSource gives up (CLOSED)
    const es2 = await page.evaluate((u) => window.dash.stream(u, "api/logs/app/events, no token"),
      d.url("api/logs/app/events"));
    await waitDash(page, (i) => window.dash.rec(i).errors > 0 && window.dash.rec(i).state === 2, es2);
    r = await page.evaluate((i) => window.dash.rec(i), es2);
    assertEqual([r.opens, r.lines.length, r.errorStates], [0, 0, [2]], "the EventSource without token");
    assert(page.responses.some((x) => x.url === d.url("api/logs/app/events") && x.status === 401),
      "the stream without token answered 401: " + JSON.stringify(page.responses.filter((x) => L.isStream(x.url))));

    // the cookie the viewer set is sent with a credentialed fetch of this
    // (same-site) origin, which the daemon allows (Allow-Credentials)
    f = await page.evaluate((u) => window.dash.fetch(u, { credentials: "include" },
      "api/logs with the viewer's cookie"), d.url("api/logs"));
    assertEqual(f.status, 200, "credentialed fetch with the viewer's cookie: " + (f.error || f.body));

    await page.evaluate((i) => window.dash.close(i), es);
    d.write("app", "Nov 21 22:49:14 web1 app[812]: ERROR could not connect to redis at 10.0.0.5:6379\n");
    await waitLine(frame, "Nov 21 22:49:14 web1 app[812]: ERROR could not connect to redis at 10.0.0.5:6379");
    await s.shot(page, "embed-dashboard");
    assertEqual(page.refusals, [], "Content-Security-Policy refusals");
  } finally {
    await dash.close();
  }
});

test("frame_ancestors 'self' (the default): another origin's iframe does not get the viewer", async (s) => {
  const dash = await startDashboard();
  try {
    const d = await s.daemon({ server: { token: TOKEN, cors_origin: dash.origin }, content: { app: numbered(1, 3) } });
    const viewer = d.url("?log=app&embed=1&token=" + TOKEN);
    const page = await crossPage(s, [dash.origin, d.origin]);
    const refused = page.waitForEvent("console", { predicate: (m) => /frame-ancestors/.test(m.text()), timeout: 5000 });
    await page.goto(dash.url(viewer));
    const msg = (await refused).text();
    assert(/violates/.test(msg) && msg.includes(d.origin) && /'self'/.test(msg), "the refusal: " + msg);
    await waitDash(page, () => window.dash.frameLoads >= 1);
    const frame = await viewerFrame(page);
    const seen = await frame.evaluate(() => !!document.getElementById("lines")).catch((e) => "error: " + e.message);
    assert(seen !== true && frame.url() !== viewer, "the iframe holds no viewer (" + frame.url() + ")");
    await L.sleep(300);   // anything the viewer would have asked for by now
    const api = s.requests.filter((x) => x.url.startsWith(d.origin + "/api/") || x.url === d.url("app.js"));
    assertEqual(api.map((x) => x.url), [], "requests of a viewer that must not run");
    await s.shot(page, "embed-refused");
  } finally {
    await dash.close();
  }
});

test("an origin not in cors_origin nor frame_ancestors: no iframe, no stream, no API", async (s) => {
  const dash = await startDashboard();
  try {
    const d = await s.daemon({ server: { token: TOKEN, cors_origin: dash.origin, frame_ancestors: dash.origin },
      content: { app: numbered(1, 3) } });
    // http://localhost:PORT: the same server, another origin
    const page = await crossPage(s, [dash.other, d.origin]);
    const refused = page.waitForEvent("console", { predicate: (m) => /frame-ancestors/.test(m.text()), timeout: 5000 });
    await page.goto(dash.url(d.url("?log=app&embed=1&token=" + TOKEN), dash.other));
    await refused;
    // the stream is answered (the token is right) but this origin may not read it
    const es = await page.evaluate((u) => window.dash.stream(u, "api/logs/app/events?token=…"),
      d.url("api/logs/app/events?token=" + TOKEN));
    await waitDash(page, (i) => window.dash.rec(i).errors > 0 && window.dash.rec(i).state === 2, es);
    const r = await page.evaluate((i) => window.dash.rec(i), es);
    assertEqual([r.opens, r.lines.length, r.errorStates], [0, 0, [2]], "the EventSource of an origin not listed");
    const f = await page.evaluate(([u, t]) => window.dash.fetch(u, { headers: { Authorization: "Bearer " + t } }),
      [d.url("api/logs"), TOKEN]);
    assert(f.error && /Failed to fetch/.test(f.error), "fetch() from an origin not listed fails: " + JSON.stringify(f));
    const plain = await page.evaluate((u) => window.dash.fetch(u), d.url("api/logs?token=" + TOKEN));
    assert(plain.error, "even without a preflight the answer is not readable: " + JSON.stringify(plain));
  } finally {
    await dash.close();
  }
});

test("a page of another site (localhost) listed in frame_ancestors: the framed viewer goes on its token in memory", async (s) => {
  const dash = await startDashboard();
  try {
    const d = await s.daemon({ server: { token: TOKEN, frame_ancestors: "'self' " + dash.other, retry: 300 },
      content: { app: numbered(1, 3) } });
    const page = await crossPage(s, [dash.other, d.origin]);
    await page.goto(dash.url(d.url("?log=app&embed=1&token=" + TOKEN), dash.other));
    const frame = await viewerFrame(page);
    await waitLine(frame, "n=000003 payload");
    await waitState(frame, "live");
    // a SameSite=Strict cookie is not kept for a cross-site frame: the
    // viewer sends the token it holds in memory
    const cookies = (await page.context().cookies()).filter((c) => c.name === "tailsse_token");
    assertEqual(cookies.map((c) => c.domain), [], "tailsse_token cookies kept for the framed viewer");
    await d.restart();
    d.write("app", numbered(4, 6));
    await waitLine(frame, "n=000006 payload", 20000);
    assertEqual(await shownNumbers(frame), range(1, 6), "lines across the restart, each once");
    assertEqual(page.refusals, [], "Content-Security-Policy refusals");
  } finally {
    await dash.close();
  }
});

// ---------------------------------------------------------------- TLS

// A daemon on HTTPS (tls_cert, tls_key in server): its urls are https.
class TlsDaemon extends L.Daemon {
  url(rel = "") { return "https://127.0.0.1:" + this.port + "/" + rel; }
  get origin() { return "https://127.0.0.1:" + this.port; }

  async waitHealthy() {
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) return false;
      const ok = await new Promise((resolve) => {
        const req = https.get({ host: "127.0.0.1", port: this.port, path: "/healthz", agent: false,
          rejectUnauthorized: false, timeout: 1000 }, (res) => { res.resume(); resolve(res.statusCode === 200); });
        req.on("timeout", () => req.destroy());
        req.on("error", () => resolve(false));
      });
      if (ok) return true;
      await L.sleep(20);
    }
    return false;
  }
}

test("over HTTPS (self-signed, a Chromium that ignores certificate errors): live, and a restart loses nothing", async (s) => {
  const { chromium } = require("playwright-core");
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: L.LAUNCH_ARGS.concat(["--ignore-certificate-errors"]) });
  s.contexts.push({ close: () => browser.close() });   // closed with the session
  s.browser = browser;
  const d = new TlsDaemon({ content: { app: numbered(1, 5) } });
  s.daemons.push(d);
  const cert = path.join(d.dir, "cert.pem"), key = path.join(d.dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
  { stdio: "ignore" });
  d.server = { tls_cert: cert, tls_key: key, token: TOKEN, retry: 500 };
  await d.start();
  assert(/HTTPS/.test(d.stderr()), "the daemon says it speaks HTTPS: " + d.stderr());
  const page = await s.open(d, "?log=app&token=" + TOKEN);
  assert(page.url().startsWith("https://"), "over https: " + page.url());
  await waitLine(page, "n=000005 payload");
  await waitState(page, "live");
  const c = (await page.context().cookies()).find((x) => x.name === "tailsse_token");
  assert(c && c.secure && c.value === TOKEN, "the token's cookie, Secure on https: " + JSON.stringify(c));
  d.write("app", numbered(6, 20));
  await waitLine(page, "n=000020 payload");
  // the daemon restarted on the same port: the page reconnects from its
  // last id; lines written while it was down come once
  await d.stop();
  await page.waitForFunction(() => /reconnecting|offline/.test(document.getElementById("status").dataset.state),
    null, { timeout: 5000 });
  d.write("app", numbered(21, 40));
  await d.start(d.port);
  d.write("app", numbered(41, 45));
  await waitLine(page, "n=000045 payload", 20000);
  await waitState(page, "live");
  // a reload: the backlog again, then live, each line once
  await page.reload();
  await waitLine(page, "n=000045 payload");
  await waitState(page, "live");
  d.write("app", numbered(46, 50));
  await waitLine(page, "n=000050 payload");
  assertEqual(await shownNumbers(page), range(1, 50), "every line once, in order, after the restart and the reload");
  await s.shot(page, "tls-viewer");
});
