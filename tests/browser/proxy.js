// The viewer behind a real nginx, configured from the shipped
// etc/nginx-tailsse.conf (only its ports, the certificate made here with
// openssl, the access log's directory changed, as
// tests/integration/tsutil.py's shipped_nginx_conf does): over TLS and
// HTTP/2 under the subpath /logs/, the page loads, the picker lists the
// logs, lines appear live and a filter works; every request stays under
// /logs/.  Required by run.js; skipped without nginx or openssl
// (scripts/setup.sh --test installs both), failed when
// TAILSSE_BROWSER_TESTS=required (scripts/test.sh, so CI).
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const net = require("net");
const { spawn, execFileSync } = require("child_process");
const L = require("./lib");
const { test, skip, assert, assertEqual, waitLine, waitState, lineTexts } = L;

const TOP = path.resolve(__dirname, "..", "..");
const SHIPPED = path.join(TOP, "etc", "nginx-tailsse.conf");

function which(name, dirs) {
  for (const d of (process.env.PATH || "").split(":").concat(dirs || [])) {
    const p = path.join(d, name);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch (e) { /* next */ }
  }
  return null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// Each substitution must match exactly `count` times: a change of the
// shipped file's shape fails the test instead of testing something else.
function subExactly(text, re, repl, count) {
  const n = (text.match(re) || []).length;
  assertEqual(n, count, "matches of " + re + " in " + SHIPPED);
  return text.replace(re, repl);
}

function shippedConf(upstream, httpsPort, httpPort, cert, key, logdir) {
  let t = fs.readFileSync(SHIPPED, "utf8");
  t = subExactly(t, /^[ \t]*listen \[::\]:(?:80|443)\b[^;]*;\n/gm, "", 2);
  t = subExactly(t, /^([ \t]*)listen 443 /gm, "$1listen 127.0.0.1:" + httpsPort + " ", 1);
  t = subExactly(t, /^([ \t]*)listen 80;/gm, "$1listen 127.0.0.1:" + httpPort + ";", 1);
  t = subExactly(t, /^([ \t]*ssl_certificate[ \t]+)\S+;/gm, (m, a) => a + cert + ";", 1);
  t = subExactly(t, /^([ \t]*ssl_certificate_key[ \t]+)\S+;/gm, (m, a) => a + key + ";", 1);
  t = subExactly(t, /^([ \t]*)proxy_pass http:\/\/127\.0\.0\.1:8080\/;/gm,
    "$1proxy_pass http://127.0.0.1:" + upstream + "/;", 1);
  t = subExactly(t, /^([ \t]*)access_log \/var\/log\/nginx\//gm, (m, a) => a + "access_log " + logdir + "/", 1);
  return t;
}

// nginx of the test's own in a temp dir, in the foreground, on free
// loopback ports, in front of daemon d.  .port: its HTTPS port.
async function startNginx(d, bin) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tailsse-br-nginx-"));
  fs.chmodSync(dir, 0o755);   // as root its workers are nobody
  const cert = path.join(dir, "cert.pem"), key = path.join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
  { stdio: "ignore" });
  const errLog = path.join(dir, "error.log");
  let last = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort(), port80 = await freePort();
    const conf = path.join(dir, "nginx.conf");
    fs.writeFileSync(conf, [
      "# written by tests/browser/proxy.js",
      "worker_processes 1;", "pid " + dir + "/nginx.pid;", "error_log " + errLog + " notice;",
      "events { worker_connections 256; }",
      "http {",
      "    default_type application/octet-stream;",
      "    client_body_temp_path " + dir + "/client_body;", "    proxy_temp_path " + dir + "/proxy;",
      "    fastcgi_temp_path " + dir + "/fastcgi;", "    uwsgi_temp_path " + dir + "/uwsgi;",
      "    scgi_temp_path " + dir + "/scgi;",
      shippedConf(d.port, port, port80, cert, key, dir),
      "}", ""].join("\n"));
    fs.writeFileSync(errLog, "");
    const proc = spawn(bin, ["-p", dir + "/", "-c", conf, "-e", errLog, "-g", "daemon off;"],
      { stdio: "ignore" });
    const exited = new Promise((r) => proc.once("exit", r));
    const deadline = Date.now() + 10000;
    let up = false;
    while (!up && proc.exitCode === null && Date.now() < deadline) {
      up = await new Promise((r) => {
        const s = net.connect(port, "127.0.0.1", () => { s.destroy(); r(true); });
        s.on("error", () => r(false));
      });
      if (!up) await L.sleep(20);
    }
    if (up) {
      return {
        port, dir, origin: "https://127.0.0.1:" + port,
        url: (rel = "") => "https://127.0.0.1:" + port + "/logs/" + rel,
        accessLog: () => fs.readFileSync(path.join(dir, "tailsse.access.log"), "utf8"),
        errors: () => fs.readFileSync(errLog, "utf8"),
        stop: async () => {
          if (proc.exitCode === null) proc.kill("SIGTERM");
          const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
          await exited;
          clearTimeout(t);
        },
        cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
      };
    }
    if (proc.exitCode === null) proc.kill("SIGKILL");
    await exited;
    last = fs.readFileSync(errLog, "utf8");
    if (!/Address already in use/.test(last)) break;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error("nginx did not start; its error log:\n" + last);
}

const APP = [
  "Nov 21 22:49:01 web1 systemd[1]: Started Session 4127 of User deploy.",
  "Nov 21 22:49:05 web1 app[812]: INFO  worker 3 picked job 81723 (resize-image)",
  "Nov 21 22:49:07 web1 app[812]: WARN  slow query 1843 ms: SELECT * FROM orders WHERE customer_id = $1",
  "Nov 21 22:49:08 web1 app[812]: ERROR payment gateway timeout after 30000 ms (order 55120), retrying 2/5",
  "Nov 21 22:49:11 web1 app[812]: INFO  user Zoë Ångström logged in from Ålesund",
  "Nov 21 22:49:14 web1 app[812]: ERROR could not connect to redis at 10.0.0.5:6379: Connection refused",
  "Nov 21 22:49:15 web1 app[812]: INFO  cache hit ratio 0.973 over 60 s",
];

test("behind nginx (the shipped config) under /logs/ over TLS and HTTP/2: picker, live lines, a filter", async (s) => {
  const bin = which("nginx", ["/usr/sbin", "/sbin", "/usr/local/sbin"]);
  for (const [tool, p] of [["nginx", bin], ["openssl", which("openssl")]]) {
    if (p) continue;
    const why = tool + " is not installed (sh scripts/setup.sh --test installs it)";
    // scripts/test.sh (CI) has installed it: missing is a failure there
    if (process.env.TAILSSE_BROWSER_TESTS === "required") throw new Error(why);
    skip(why);
  }
  const d = await s.daemon({ logs: ["app", "web"],
    content: { app: APP.join("\n") + "\n", web: "GET /index.html 200\n" } });
  const ngx = await startNginx(d, bin);
  try {
    const page = await s.newPage(ngx.origin, { ignoreHTTPSErrors: true });
    const resp = await page.goto(ngx.url(""));
    assertEqual(resp.status(), 200, "the page's status");
    // the picker
    await page.waitForSelector("#loglist tr", { timeout: 5000 });
    const names = await page.$$eval("#loglist tr", (trs) => trs.map((tr) => tr.querySelectorAll("td")[1].textContent));
    assertEqual(names, ["app", "web"], "logs in the picker");
    await s.shot(page, "proxy-nginx-picker");
    // one log, its lines, then live ones
    await page.click('#loglist a:text-is("app")');
    await page.waitForFunction(() => location.pathname === "/logs/" && location.search === "?log=app");
    await waitLine(page, APP[APP.length - 1]);
    await waitState(page, "live");
    for (let i = 0; i < 2; i++) {
      const text = "Nov 21 22:50:0" + i + " web1 app[812]: INFO  live line " + i + " through nginx";
      const t0 = Date.now();
      d.write("app", text + "\n");
      await waitLine(page, text, 2000);
      console.log("#   line shown " + (Date.now() - t0) + " ms after its write (through nginx, HTTP/2)");
    }
    // a filter: only ERROR lines, the old ones and a new one
    await page.fill("#grep", "ERROR");
    await page.press("#grep", "Enter");
    await page.waitForFunction(() => location.search === "?log=app&grep=ERROR", null, { timeout: 3000 });
    await waitState(page, "live");
    const err = "Nov 21 22:50:09 web1 app[812]: ERROR disk /var is 97% full";
    d.write("app", "Nov 21 22:50:08 web1 app[812]: INFO  not an error\n" + err + "\n");
    await waitLine(page, err);
    const shown = await lineTexts(page);
    assertEqual(shown, [APP[3], APP[5], err], "only the ERROR lines");
    assertEqual(await page.$$eval("#lines .ln mark", (ms) => ms.map((m) => m.textContent)),
      ["ERROR", "ERROR", "ERROR"], "the matches highlighted");
    await s.shot(page, "proxy-nginx");
    // HTTP/2 for everything, and every request under /logs/ (the access
    // log has a request once it ends: close the page first)
    const h2 = await page.evaluate(() => performance.getEntriesByType("navigation")
      .concat(performance.getEntriesByType("resource")).map((e) => e.nextHopProtocol));
    assert(h2.length > 2 && h2.every((p) => p === "h2"), "HTTP/2 for the page's requests: " + h2);
    await page.close();
    await L.sleep(200);
    const reqs = ngx.accessLog().split("\n").filter((x) => x).map((x) => /"(\S+) (\S+) (\S+)"/.exec(x));
    assert(reqs.every((m) => m && m[2].startsWith("/logs/") && m[3] === "HTTP/2.0"),
      "requests outside /logs/ or not HTTP/2: " + reqs.map((m) => m && m.slice(1).join(" ")).join("; "));
    assert(reqs.some((m) => m[2].startsWith("/logs/api/logs/app/events?")), "the stream went through nginx");
    assert(reqs.some((m) => m[2] === "/logs/app.js"), "app.js under /logs/");
  } finally {
    await ngx.stop();
    const bad = ngx.errors().split("\n").filter((x) => /\[(emerg|alert|crit)\]/.test(x));
    ngx.cleanup();
    assertEqual(bad, [], "nginx's error log");
  }
});
