// Browser tests of the tailsse viewer (www/): real headless Chromium
// driven by playwright-core, against real daemons on loopback ports.
//
//   node tests/browser/run.js [NAME-SUBSTRING]
//
// Environment: TAILSSE_BIN, TAILSSE_WWW (as in make check),
// TAILSSE_TEST_OUTPUT (screenshots; default ./test-output), CHROMIUM.
// Tests of what the daemon does not offer yet (api/events, /lines, the
// token) are reported as skipped until it does.
"use strict";

const fs = require("fs");
const L = require("./lib");
const { test, skip, assert, assertEqual, numbered, range, waitLine, waitState, lineTexts, viewRows,
  shownNumbers } = L;

// A few realistic lines, for the screenshots.
const SYSLOG = [
  "Nov 21 22:49:01 web1 systemd[1]: Started Session 4127 of User deploy.",
  "Nov 21 22:49:03 web1 sshd[4242]: Accepted publickey for deploy from 10.0.4.17 port 52144 ssh2: ED25519 SHA256:Qm9vYmFy",
  "Nov 21 22:49:05 web1 app[812]: INFO  worker 3 picked job 81723 (resize-image)",
  "Nov 21 22:49:07 web1 app[812]: WARN  slow query 1843 ms: SELECT * FROM orders WHERE customer_id = $1",
  "Nov 21 22:49:08 web1 nginx[990]: 192.168.1.23 - - \"GET /api/orders/5512 HTTP/1.1\" 502 157 \"-\" \"Mozilla/5.0\"",
  "Nov 21 22:49:08 web1 app[812]: ERROR payment gateway timeout after 30000 ms (order 55120), retrying 2/5",
  "Nov 21 22:49:09 web1 kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=203.0.113.7 DST=198.51.100.2 LEN=60 PROTO=TCP SPT=51234 DPT=23",
  "Nov 21 22:49:11 web1 app[812]: INFO  user Zoë Ångström logged in from Ålesund — 日本語のテスト 🎉",
  "Nov 21 22:49:12 web1 CRON[5001]: (root) CMD (   test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily ))",
  "Nov 21 22:49:14 web1 app[812]: ERROR could not connect to redis at 10.0.0.5:6379: Connection refused",
  "Nov 21 22:49:15 web1 app[812]: INFO  cache hit ratio 0.973 over 60 s",
  "Nov 21 22:49:15 web1 app[812]: DEBUG\tGET /healthz\t200\t0.4ms",
];
const syslogText = (k) => {
  let s = "";
  for (let i = 0; i < k; i++) s += SYSLOG[i % SYSLOG.length] + "\n";
  return s;
};

function blur(page) {
  return page.evaluate(() => { if (document.activeElement) document.activeElement.blur(); });
}

// Relative luminance of an element's background colour (0 dark .. 1 light).
function luminance(page, sel) {
  return page.evaluate((s) => {
    let e = document.querySelector(s);
    let c = "";
    while (e) {
      c = getComputedStyle(e).backgroundColor;
      if (c && c !== "rgba(0, 0, 0, 0)" && c !== "transparent") break;
      e = e.parentElement;
    }
    const m = (c || "rgb(255,255,255)").match(/[\d.]+/g).map(Number);
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]);
  }, sel);
}

// Whether the daemon has an endpoint (404 means it does not yet).
async function hasEndpoint(d, target) {
  return (await d.status(target)) !== 404;
}

// ---------------------------------------------------------------- tests

test("picker lists every log with its size and whether it exists", async (s) => {
  const d = await s.daemon({ logs: ["app", "web", "later"], missing: ["later"],
    content: { app: "0123456789\n", web: syslogText(40) } });
  const page = await s.open(d, "");
  await page.waitForSelector("#loglist tr", { timeout: 5000 });
  const rows = await page.$$eval("#loglist tr", (trs) => trs.map((tr) => Array.from(tr.querySelectorAll("td"))
    .slice(1).map((td) => td.textContent)));
  assertEqual(rows.map((r) => r[0]), ["app", "web", "later"], "names in the picker");
  assertEqual(rows[0][1], "11 B", "size of app");
  assert(/KiB/.test(rows[1][1]), "size of web in KiB: " + rows[1][1]);
  assert(/not created yet/.test(rows[2][2]), "the missing file said so: " + rows[2][2]);
  // every control has a name a screen reader can say
  assertEqual(await L.unlabelled(page), [], "controls without a label in the picker");
  // two ticked: the merged view's button
  assert(await page.isDisabled("#merge"), "merge button disabled with nothing ticked");
  await page.check('#loglist input[value="app"]');
  await page.check('#loglist input[value="web"]');
  assert(!(await page.isDisabled("#merge")), "merge button enabled with two ticked");
  await s.shot(page, "picker");
  // one click opens a log
  await page.click('#loglist a:text-is("web")');
  await page.waitForFunction(() => location.search === "?log=web");
  await waitLine(page, SYSLOG[(40 - 1) % SYSLOG.length]);
});

test("an appended line appears within a second", async (s) => {
  const d = await s.daemon({ content: { app: numbered(1, 3) } });
  const page = await s.open(d, "?log=app");
  await waitState(page, "live");
  await waitLine(page, "n=000003 payload");
  for (let i = 0; i < 3; i++) {
    const text = "fresh line " + i + " at " + Date.now();
    const t0 = Date.now();
    d.write("app", text + "\n");
    await waitLine(page, text, 1000);
    console.log("#   line shown " + (Date.now() - t0) + " ms after its write");
  }
  const st = await page.textContent("#status");
  assert(/live/.test(st), "status says live: " + st);
  assertEqual(await L.unlabelled(page), [], "controls without a label in the view");
});

test("a filter that hits the server's time limit says so, once", async (s) => {
  const d = await s.daemon({ content: { app: "a".repeat(5000) + "b\nplain aaa\n" } });
  const page = await s.open(d, "?log=app&grep=" + encodeURIComponent("(a+)+$"));
  await page.waitForSelector('.note[data-key="limit"]', { timeout: 5000 });
  assert(/time limit/.test(await page.textContent("#notes")), "the note");
  assertEqual(await page.$$eval(".note", (n) => n.length), 1, "one note");
  await waitState(page, "live");
});

test("filters typed with the keyboard go to the query and the stream; matches highlighted", async (s) => {
  const content = [
    "alpha error one",
    "beta fine",
    "gamma ERROR two",
    "ünïcödé error 日本語 error 🎉 error",
    "",
  ].join("\n");
  const d = await s.daemon({ content: { app: content } });
  const page = await s.open(d, "?log=app");
  await waitLine(page, "ünïcödé error 日本語 error 🎉 error");
  await blur(page);
  await page.keyboard.press("/");
  assertEqual(await page.evaluate(() => document.activeElement.id), "grep", "/ focuses the include filter");
  await page.keyboard.type("error");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => location.search === "?log=app&grep=error", null, { timeout: 3000 });
  await waitState(page, "live");
  await waitLine(page, "ünïcödé error 日本語 error 🎉 error");
  d.write("app", "delta error three\nepsilon fine\nzeta error ÄÖÜ 𝄞 error\n");
  await waitLine(page, "zeta error ÄÖÜ 𝄞 error");
  assertEqual(await lineTexts(page), ["alpha error one", "ünïcödé error 日本語 error 🎉 error", "delta error three",
    "zeta error ÄÖÜ 𝄞 error"], "only matching lines");
  const marks = await page.$$eval("#lines .ln", (ls) => ls.map((l) => Array.from(l.querySelectorAll("mark"))
    .map((m) => m.textContent)));
  assertEqual(marks, [["error"], ["error", "error", "error"], ["error"], ["error", "error"]],
    "highlighted ranges (UTF-8 byte offsets to string indexes)");
  // Esc leaves the input without applying what was typed
  await page.keyboard.press("/");
  await page.keyboard.type("zzz");
  await page.keyboard.press("Escape");
  assertEqual(await page.evaluate(() => [document.activeElement === document.body || document.activeElement === null,
    document.getElementById("grep").value, location.search]), [true, "error", "?log=app&grep=error"], "after Esc");
  // ignore case: the checkbox, then an exclude filter typed
  await page.check("#icase");
  await page.waitForFunction(() => location.search === "?log=app&grep=error&icase=1", null, { timeout: 3000 });
  await waitLine(page, "gamma ERROR two");
  await page.click("#exclude");
  await page.keyboard.type("ZETA|alpha");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => location.search === "?log=app&grep=error&exclude=ZETA%7Calpha&icase=1",
    null, { timeout: 3000 });
  await waitLine(page, "delta error three");
  assertEqual(await lineTexts(page), ["gamma ERROR two", "ünïcödé error 日本語 error 🎉 error", "delta error three"],
    "with exclude, case-insensitive");
  assertEqual(await page.$$eval("#lines .ln mark", (ms) => ms.map((m) => m.textContent)),
    ["ERROR", "error", "error", "error", "error"], "case-insensitive highlights");
  // a reload keeps the view: it lives in the query
  await page.reload();
  await waitLine(page, "delta error three");
  assertEqual(await page.evaluate(() => [document.getElementById("grep").value,
    document.getElementById("exclude").value, document.getElementById("icase").checked]),
  ["error", "ZETA|alpha", true], "inputs filled from the query");
  // a bad pattern: the server's message, next to the inputs
  await page.fill("#grep", "(unclosed");
  await page.press("#grep", "Enter");
  await page.waitForSelector("#ferr:not([hidden])", { timeout: 5000 });
  const msg = await page.textContent("#ferr");
  assert(/grep/.test(msg) && /parenthes/.test(msg), "the 400's message is shown: " + msg);
  await waitState(page, "error");
});

test("pause closes the stream, resume goes on from the last id: every line once", async (s) => {
  const d = await s.daemon();
  const page = await s.open(d, "?log=app");
  await waitState(page, "live");
  d.write("app", numbered(1, 5));
  await waitLine(page, "n=000005 payload");
  await blur(page);
  const closedStream = L.streamEnded(page);
  await page.keyboard.press(" ");
  await waitState(page, "paused");
  await closedStream;
  assertEqual(await page.getAttribute("#pause", "aria-pressed"), "true", "pause button pressed");
  d.write("app", numbered(6, 15));
  await L.sleep(400);   // a paused page shows nothing new
  assertEqual(await shownNumbers(page), range(1, 5), "nothing new while paused");
  const reopened = page.waitForRequest(L.isStream, { timeout: 5000 });
  await page.keyboard.press(" ");
  const req = await reopened;
  await waitState(page, "live");
  await waitLine(page, "n=000015 payload");
  d.write("app", numbered(16, 18));
  await waitLine(page, "n=000018 payload");
  assertEqual(await shownNumbers(page), range(1, 18), "every line once, in order");
  const id = d.ino("app") + ":" + Buffer.byteLength(numbered(1, 5));
  assert(req.url().includes("lastEventId=" + encodeURIComponent(id)), "resumed from the last id " + id + ": " + req.url());
});

test("daemon stopped and restarted: every line written meanwhile appears once", async (s) => {
  const d = await s.daemon();
  const page = await s.open(d, "?log=app");
  await waitState(page, "live");
  d.write("app", numbered(1, 10));
  await waitLine(page, "n=000010 payload");
  await d.stop();
  await page.waitForFunction(() => /reconnecting|offline/.test(document.getElementById("status").dataset.state),
    null, { timeout: 5000 });
  d.write("app", numbered(11, 30));
  await d.start(d.port);
  d.write("app", numbered(31, 40));
  await waitLine(page, "n=000040 payload", 20000);
  await waitState(page, "live");
  d.write("app", numbered(41, 42));
  await waitLine(page, "n=000042 payload");
  assertEqual(await shownNumbers(page), range(1, 42), "every line once, in order");
});

test("a stream refused (502s): jittered growing retries from the last id, at once when online or shown again", async (s) => {
  const d = await s.daemon();
  const page = await s.open(d, "?log=app");
  await waitState(page, "live");
  d.write("app", numbered(1, 3));
  await waitLine(page, "n=000003 payload");
  // a proxy in front answers 502 from now on
  const tries = [];
  await page.route(/\/api\/logs\/app\/events/, (route) => {
    tries.push(Date.now());
    route.fulfill({ status: 502, contentType: "text/plain", body: "bad gateway\n" });
  });
  const t0 = Date.now();
  await d.stop();
  await page.waitForFunction(() => /answered 502/.test(document.getElementById("status").title) &&
    /retry in \d+ s/.test(document.getElementById("detail").textContent), null, { timeout: 10000 });
  assertEqual(await page.getAttribute("#status", "data-state"), "reconnecting", "state while refused");
  assert(await page.isVisible("#retry"), "a retry-now button while waiting");
  // one more try, later than the first was after the stream ended
  const deadline = Date.now() + 10000;
  while (tries.length < 2 && Date.now() < deadline) await L.sleep(20);
  assert(tries.length >= 2, "the page kept trying: " + tries.length + " tries");
  const gaps = [tries[0] - t0, tries[1] - tries[0]];
  console.log("#   delays before the tries: " + gaps.join(" ms, ") + " ms");
  // retry: 2000 from the server: the first delay 1-2 s (after the stream
  // ended), the second 2-4 s
  assert(gaps[0] >= 900 && gaps[0] <= 3500 && gaps[1] >= 1950, "growing delays: " + gaps);
  d.write("app", numbered(4, 6));
  await d.start(d.port);
  await page.unroute(/\/api\/logs\/app\/events/);
  // back online: at once, not after the next delay (4-8 s by now)
  const reopened = page.waitForRequest(L.isStream, { timeout: 1500 });
  await page.context().setOffline(true);
  await page.context().setOffline(false);
  const req = await reopened;
  const id = d.ino("app") + ":" + Buffer.byteLength(numbered(1, 3));
  assert(req.url().includes("lastEventId=" + encodeURIComponent(id)), "retry resumes from " + id + ": " + req.url());
  await waitLine(page, "n=000006 payload");
  await waitState(page, "live");
  assertEqual(await shownNumbers(page), range(1, 6), "every line once");
  // refused again, twice (the next try 4-8 s away): the tab shown again
  // tries at once
  const again = [];
  await page.route(/\/api\/logs\/app\/events/, (route) => {
    again.push(Date.now());
    route.fulfill({ status: 502, contentType: "text/plain", body: "bad gateway\n" });
  });
  await d.restart();
  const until = Date.now() + 10000;
  while (again.length < 2 && Date.now() < until) await L.sleep(20);
  assert(again.length >= 2, "tries while refused again: " + again.length);
  await page.unroute(/\/api\/logs\/app\/events/);
  d.write("app", numbered(7, 7));
  const shown = page.waitForRequest(L.isStream, { timeout: 1500 });
  await page.evaluate(() => {
    const set = (h) => {
      Object.defineProperty(document, "hidden", { value: h, configurable: true });
      Object.defineProperty(document, "visibilityState", { value: h ? "hidden" : "visible", configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    };
    set(true);
    set(false);
  });
  await shown;
  await waitLine(page, "n=000007 payload");
  assertEqual(await shownNumbers(page), range(1, 7), "every line once");
});

test("a rotation and a truncation show a separator naming them, then the new lines", async (s) => {
  const d = await s.daemon();
  const page = await s.open(d, "?log=app");
  await waitState(page, "live");
  d.write("app", numbered(1, 3));
  await waitLine(page, "n=000003 payload");
  fs.renameSync(d.path("app"), d.path("app") + ".1");
  fs.writeFileSync(d.path("app"), numbered(4, 6));
  await waitLine(page, "n=000006 payload");
  fs.truncateSync(d.path("app"), 0);
  d.write("app", numbered(7, 7));
  await waitLine(page, "n=000007 payload");
  const rows = (await viewRows(page)).map((r) => r.replace(/seen \d\d:\d\d:\d\d$/, "seen HH:MM:SS"));
  assertEqual(rows, ["n=000001 payload", "n=000002 payload", "n=000003 payload",
    "--sep: file rotated — following the new file seen HH:MM:SS",
    "n=000004 payload", "n=000005 payload", "n=000006 payload",
    "--sep: file truncated — reading it again from its start seen HH:MM:SS",
    "n=000007 payload"], "lines and separators");
});

test("a log whose file does not exist yet says so, then shows it created and its lines", async (s) => {
  const d = await s.daemon({ logs: ["later"], missing: ["later"] });
  const page = await s.open(d, "?log=later");
  await waitState(page, "live");
  await page.waitForFunction(() => /does not exist yet/.test(document.getElementById("empty").textContent) &&
    document.getElementById("empty").offsetParent !== null, null, { timeout: 5000 });
  fs.writeFileSync(d.path("later"), "first line of a new file\n");
  await waitLine(page, "first line of a new file");
  const rows = (await viewRows(page)).map((r) => r.replace(/seen \d\d:\d\d:\d\d$/, "seen HH:MM:SS"));
  assertEqual(rows, ["--sep: file created — following it seen HH:MM:SS", "first line of a new file"], "rows");
});

test("embed=1 shows the lines only", async (s) => {
  const d = await s.daemon({ content: { app: syslogText(30) } });
  const page = await s.open(d, "?log=app&embed=1", { viewport: { width: 900, height: 360 } });
  await waitLine(page, SYSLOG[29 % SYSLOG.length]);
  await waitState(page, "live");
  const visible = await page.evaluate(() => Array.from(document.querySelectorAll("header, input, button, select, a, #notes"))
    .filter((e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden").map((e) => e.outerHTML.slice(0, 60)));
  assertEqual(visible, [], "visible chrome in embed mode");
  assertEqual((await lineTexts(page)).length, 30, "the lines");
  await s.shot(page, "embed");
  // not silently dead there either: a badge says when it is not live
  await d.stop();
  await page.waitForSelector("#badge:not([hidden])", { timeout: 5000 });
  assert(/reconnecting|offline/.test(await page.textContent("#badge")), "embed badge says it");
  await d.start(d.port);
  await page.waitForSelector("#badge", { state: "hidden", timeout: 15000 });
});

test("theme: follows the system, theme=dark and theme=light override it", async (s) => {
  const cases = [["", "light", "light"], ["", "dark", "dark"], ["&theme=dark", "light", "dark"],
    ["&theme=light", "dark", "light"]];
  for (const [q, scheme, want] of cases) {
    const d = await s.daemon({ content: { app: syslogText(40) } });
    // the system's theme: the whole view (a separator, a marked line);
    // theme=: a filtered view, with its highlights
    const page = await s.open(d, "?log=app" + (q ? "&grep=ERROR|WARN|502" + q : ""), { colorScheme: scheme });
    await waitState(page, "live");
    await waitLine(page, q ? SYSLOG[9] : SYSLOG[3]);
    if (!q) {
      fs.renameSync(d.path("app"), d.path("app") + ".1");
      fs.writeFileSync(d.path("app"), syslogText(4));
      await page.waitForSelector("#lines .sep", { timeout: 5000 });
      await waitLine(page, SYSLOG[3]);
    }
    const lum = await luminance(page, "#lines");
    assert(want === "dark" ? lum < 0.05 : lum > 0.8, q + " with a " + scheme + " system: " + want + " (luminance " + lum + ")");
    // text stays readable: contrast of line text against the background
    const contrast = await page.evaluate(() => {
      const parse = (c) => c.match(/[\d.]+/g).map(Number);
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      const lum = (c) => 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
      const ln = document.querySelector("#lines .ln");
      const a = lum(parse(getComputedStyle(ln).color)), b = lum(parse(getComputedStyle(document.documentElement).backgroundColor));
      return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    });
    assert(contrast >= 7, "line text contrast " + contrast.toFixed(1));
    if (!q) {
      // a line's permalink clicked: marked, and in the address bar
      const lines = await page.$$("#lines .ln");
      const ln = lines[lines.length - 9];
      await ln.hover();
      await (await ln.$("a.pl")).click();
      await page.waitForFunction(() => /&at=\d+%3A\d+$/.test(location.search));
      assertEqual(await page.$$eval("#lines .ln.at", (e) => e.length), 1, "one marked line");
      await page.mouse.move(900, 300);
      await s.shot(page, want);
    } else {
      await s.shot(page, "filter-" + want);
    }
  }
});

test("a 20,000-line burst keeps frames flowing and the newest 10,000 lines; memory stays flat", async (s) => {
  const d = await s.daemon();
  const page = await s.open(d, "?log=app");
  await waitState(page, "live");
  await page.evaluate(() => {
    window.__frames = { max: 0, n: 0 };
    let last = performance.now();
    const f = (t) => {
      const g = t - last;
      if (g > window.__frames.max) window.__frames.max = g;
      last = t;
      window.__frames.n++;
      requestAnimationFrame(f);
    };
    requestAnimationFrame(f);
  });
  const t0 = Date.now();
  for (let k = 0; k < 20; k++) {   // 20,000 lines within a second
    d.write("app", numbered(k * 1000 + 1, k * 1000 + 1000));
    await L.sleep(45);
  }
  await waitLine(page, "n=020000 payload", 30000);
  const shownAfter = Date.now() - t0;
  await L.sleep(300);
  const f = await page.evaluate(() => window.__frames);
  const held = await shownNumbers(page);
  console.log("#   20,000 lines: all in after " + shownAfter + " ms; longest frame gap " + f.max.toFixed(0) +
    " ms over " + f.n + " frames");
  assertEqual(held.length, 10000, "lines held");
  assertEqual([held[0], held[held.length - 1]], [10001, 20000], "the newest 10,000");
  assert(f.max < 600, "longest gap between frames " + f.max.toFixed(0) + " ms (bound 600 ms)");
  assert(await page.evaluate(() => {
    const se = document.scrollingElement;
    return se.scrollTop + innerHeight >= se.scrollHeight - 20;
  }), "still following the newest line");
  // memory stays flat: another 20,000 lines, then the same DOM and heap
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const metrics = async () => {
    await cdp.send("HeapProfiler.collectGarbage");
    const m = (await cdp.send("Performance.getMetrics")).metrics;
    const get = (n) => m.find((x) => x.name === n).value;
    return { nodes: get("Nodes"), heap: get("JSHeapUsedSize") };
  };
  const m1 = await metrics();
  for (let k = 20; k < 40; k++) {
    d.write("app", numbered(k * 1000 + 1, k * 1000 + 1000));
    await L.sleep(45);
  }
  await waitLine(page, "n=040000 payload", 30000);
  await L.sleep(200);
  const m2 = await metrics();
  console.log("#   after 20,000 and 40,000 lines: " + m1.nodes + " and " + m2.nodes + " DOM nodes, " +
    (m1.heap / 1e6).toFixed(1) + " and " + (m2.heap / 1e6).toFixed(1) + " MB of JS heap");
  assert(m2.nodes <= m1.nodes * 1.05 + 100, "DOM nodes grew: " + m1.nodes + " → " + m2.nodes);
  assert(m2.heap <= m1.heap * 1.25 + 2e6, "JS heap grew: " + m1.heap + " → " + m2.heap);
}, { timeout: 60000 });

test("following stops when scrolled up; End follows again", async (s) => {
  const d = await s.daemon({ content: { app: numbered(1, 300) } });
  const page = await s.open(d, "?log=app&tail=300");
  await waitLine(page, "n=000300 payload");
  await waitState(page, "live");
  await page.mouse.move(600, 400);
  await page.mouse.wheel(0, -1500);
  await page.waitForSelector("#jump:not([hidden])", { timeout: 3000 });
  const y = await page.evaluate(() => document.scrollingElement.scrollTop);
  d.write("app", numbered(301, 320));
  await waitLine(page, "n=000320 payload");
  await page.waitForFunction(() => /20 new lines/.test(document.getElementById("jump").textContent), null, { timeout: 3000 });
  const y2 = await page.evaluate(() => document.scrollingElement.scrollTop);
  assert(Math.abs(y2 - y) < 2, "the view stayed where the reader is (" + y + " → " + y2 + ")");
  await blur(page);
  await page.keyboard.press("End");
  await page.waitForSelector("#jump", { state: "hidden", timeout: 3000 });
  d.write("app", numbered(321, 340));
  await waitLine(page, "n=000340 payload");
  await page.waitForFunction(() => {
    const se = document.scrollingElement;
    return se.scrollTop + innerHeight >= se.scrollHeight - 20;
  }, null, { timeout: 3000 });
});

test("a full view read from its top holds new lines instead of dropping the reader's; End goes on", async (s) => {
  const d = await s.daemon({ content: { app: numbered(1, 10000) } });
  const page = await s.open(d, "?log=app&tail=10000");
  await waitLine(page, "n=010000 payload", 15000);
  await waitState(page, "live");
  await blur(page);
  await page.keyboard.press("Home");
  // Home scrolls smoothly: a line that comes while the view is still on
  // its way up finds the lines above it free to drop (once failed so on a
  // loaded machine). Write once the view is at the top and the page has
  // had its scroll event there.
  await page.waitForFunction(() => document.scrollingElement.scrollTop === 0, null,
    { timeout: 5000, polling: 50 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.waitForSelector("#jump:not([hidden])", { timeout: 3000 });
  d.write("app", numbered(10001, 10100));
  await waitState(page, "paused");
  assert(/End goes on/.test(await page.textContent("#detail")), "says how to go on");
  assert(/push out what you are reading/.test(await page.getAttribute("#status", "title")), "says why it paused");
  let nums = await shownNumbers(page);
  assertEqual([nums.length, nums[0], nums[nums.length - 1]], [10000, 1, 10000], "nothing dropped while held");
  await page.keyboard.press("End");
  await waitLine(page, "n=010100 payload");
  await waitState(page, "live");
  nums = await shownNumbers(page);
  assertEqual(nums, range(101, 10100), "the newest 10,000, each once");
}, { timeout: 60000 });

test("usable at phone width (390 px): no sideways scrolling, controls on screen", async (s) => {
  const d = await s.daemon({ content: { app: syslogText(80) } });
  const page = await s.open(d, "?log=app", { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    deviceScaleFactor: 2 });
  await waitState(page, "live");
  await waitLine(page, SYSLOG[79 % SYSLOG.length]);
  const m = await page.evaluate(() => {
    const out = [];
    for (const e of document.querySelectorAll("#bar input, #bar button, #status")) {
      const r = e.getBoundingClientRect();
      if (r.width && (r.left < 0 || r.right > innerWidth + 0.5)) out.push(e.id || e.outerHTML.slice(0, 40));
    }
    const bar = document.getElementById("bar").getBoundingClientRect().height;
    return { over: out, sw: document.scrollingElement.scrollWidth, w: innerWidth, bar };
  });
  assertEqual(m.over, [], "controls off screen");
  assert(m.sw <= m.w, "page wider than the screen: " + m.sw + " > " + m.w);
  assert(m.bar < 844 / 4, "the bar takes " + m.bar + " px of 844");
  await s.shot(page, "phone");
});

test("a permalink opens at its line, with context before it, and goes on live", async (s) => {
  const d = await s.daemon({ content: { app: numbered(1, 100) } });
  if (!(await hasEndpoint(d, "/api/logs/app/lines?before=" + d.ino("app") + ":0&n=1"))) {
    skip("the daemon has no api/logs/NAME/lines yet (404)");
  }
  const at = d.ino("app") + ":" + Buffer.byteLength(numbered(1, 60));
  const page = await s.open(d, "?log=app&at=" + encodeURIComponent(at));
  await page.waitForSelector("#lines .ln.at", { timeout: 5000 });
  assertEqual(await page.$eval("#lines .ln.at", (e) => e.dataset.id), at, "marked line's id");
  await waitLine(page, "n=000100 payload");
  let nums = await shownNumbers(page);
  const mark = nums.indexOf(60);
  assert(mark >= 20, "at least 20 lines of context: " + mark);
  assertEqual(nums.slice(mark - 20), range(40, 100), "context, the line, the lines after it");
  const where = await page.evaluate(() => {
    const r = document.querySelector("#lines .ln.at").getBoundingClientRect();
    return [Math.round(r.top), Math.round(r.bottom), innerHeight, Math.round(document.scrollingElement.scrollTop)];
  });
  assert(where[0] >= 0 && where[1] <= where[2], "the marked line is in view: top, bottom, height, scroll " + where);
  d.write("app", numbered(101, 101));
  await waitLine(page, "n=000101 payload");
  // load earlier lines, up to the start of the file
  await page.click("#earlier");
  await waitLine(page, "n=000001 payload");
  nums = await shownNumbers(page);
  assertEqual(nums, range(1, 101), "after loading earlier lines");
});

test("without api/logs/NAME/lines a permalink opens quietly with what follows its line", async (s) => {
  const d = await s.daemon({ content: { app: numbered(1, 100) } });
  if (await hasEndpoint(d, "/api/logs/app/lines?before=" + d.ino("app") + ":0&n=1")) {
    skip("the daemon has api/logs/NAME/lines: the permalink test covers it");
  }
  const at = d.ino("app") + ":" + Buffer.byteLength(numbered(1, 60));
  const page = await s.open(d, "?log=app&at=" + encodeURIComponent(at));
  await waitLine(page, "n=000100 payload");
  assertEqual(await shownNumbers(page), range(61, 100), "the lines after the permalink's line");
  assert(/cannot show the lines before/.test(await page.textContent("#notes")), "a note says why");
  assert(await page.isHidden("#earlier"), "no load-earlier button");
  await waitState(page, "live");
});

test("a merged view of two logs on one connection: colour, name tag, link to each line", async (s) => {
  const d = await s.daemon({ logs: ["api", "db"] });
  if (!(await hasEndpoint(d, "/api/events?log=api&log=db"))) skip("the daemon has no api/events yet (404)");
  const page = await s.open(d, "?log=api&log=db");
  await waitState(page, "live");
  d.write("api", "GET /orders 200 12ms\n");
  await waitLine(page, "GET /orders 200 12ms");
  d.write("db", "checkpoint complete: wrote 812 buffers\n");
  await waitLine(page, "checkpoint complete: wrote 812 buffers");
  d.write("api", "POST /pay 502 30001ms\n");
  await waitLine(page, "POST /pay 502 30001ms");
  const rows = await page.$$eval("#lines .ln", (ls) => ls.map((l) => ({
    log: l.dataset.log, tag: l.querySelector(".tag").textContent, colour: getComputedStyle(l.querySelector(".tag")).color,
    href: l.querySelector("a.pl").getAttribute("href"),
  })));
  assertEqual(rows.map((r) => r.tag), ["api", "db", "api"], "name tags");
  assert(rows[0].colour === rows[2].colour && rows[0].colour !== rows[1].colour, "a colour per log");
  const idApi = d.ino("api") + ":" + Buffer.byteLength("GET /orders 200 12ms\n");
  const idDb = d.ino("db") + ":" + Buffer.byteLength("checkpoint complete: wrote 812 buffers\n");
  assertEqual(rows[0].href, "?log=api&at=" + encodeURIComponent(idApi), "link of an api line");
  assertEqual(rows[1].href, "?log=db&at=" + encodeURIComponent(idDb), "link of a db line");
  const streams = s.requests.filter((r) => L.isStream(r.url));
  assertEqual(streams.map((r) => new URL(r.url).pathname), ["/api/events"], "one connection");
  await s.shot(page, "merged");
  // restarted daemon: exact resume of each log
  await d.stop();
  d.write("db", "after restart db\n");
  d.write("api", "after restart api\n");
  await d.start(d.port);
  await waitLine(page, "after restart api", 20000);
  await waitLine(page, "after restart db", 5000);
  assertEqual((await lineTexts(page)).length, 5, "every line once");
});

test("without api/events a merged view says so and links each log", async (s) => {
  const d = await s.daemon({ logs: ["api", "db"] });
  if (await hasEndpoint(d, "/api/events?log=api&log=db")) skip("the daemon has api/events: the merged test covers it");
  const page = await s.open(d, "?log=api&log=db");
  await page.waitForSelector('.note[data-key="nomerge"]', { timeout: 8000 });
  assertEqual(await page.$$eval('.note[data-key="nomerge"] a', (as) => as.map((a) => a.getAttribute("href"))),
    ["?log=api", "?log=db"], "links to each log");
  assertEqual(await page.getAttribute("#status", "data-state"), "error", "state");
});

test("token: the page asks on 401, keeps it in the cookie; token= in the query is taken and hidden", async (s) => {
  const d = new (L.Daemon)({ server: { token: "s3cret-T0ken" }, content: { app: "secret line\n" } });
  s.daemons.push(d);
  try {
    await d.start();
  } catch (e) {
    if (/token/.test(e.stderr || "")) skip("the daemon does not support token = yet");
    throw e;
  }
  if ((await d.status("/api/logs")) !== 401) skip("the daemon does not ask for its token yet");
  const page = await s.open(d, "");
  await page.waitForSelector("#auth:not([hidden])", { timeout: 5000 });
  await page.fill("#token", "wrong");
  await page.press("#token", "Enter");
  await page.waitForFunction(() => /not accepted/.test(document.getElementById("auth-why").textContent), null,
    { timeout: 5000 });
  await page.fill("#token", "s3cret-T0ken");
  await page.press("#token", "Enter");
  await page.waitForSelector("#loglist tr", { timeout: 5000 });
  const cookies = await page.context().cookies();
  assert(cookies.some((c) => c.name === "tailsse_token" && c.value === "s3cret-T0ken"), "cookie set");
  await page.click('#loglist a:text-is("app")');
  await waitLine(page, "secret line");
  // a dashboard's link: token= in the query
  const p2 = await s.open(d, "?log=app&token=s3cret-T0ken&tail=5");
  await waitLine(p2, "secret line");
  assertEqual(await p2.evaluate(() => location.search), "?log=app&tail=5", "token= removed from the address");
  // an iframe whose cookies are blocked: the token in memory does it
  const p3 = await s.newPage(d.origin);
  await p3.route("**/*", (r) => {
    const h = Object.assign({}, r.request().headers());
    delete h.cookie;
    r.continue({ headers: h });
  });
  await p3.goto(d.url("?log=app&token=s3cret-T0ken&embed=1"));
  await waitLine(p3, "secret line");
});

test("no request leaves the page's origin, under a subpath too", async (s) => {
  const d = await s.daemon({ content: { app: syslogText(20) } });
  const page = await s.open(d, "");
  await page.waitForSelector("#loglist tr");
  await page.click('#loglist a:text-is("app")');
  await waitState(page, "live");
  await page.fill("#grep", "ERROR");
  await page.press("#grep", "Enter");
  await waitState(page, "live");
  await page.click("#pause");
  await page.click("#pause");
  await waitState(page, "live");
  // every URL relative: behind a reverse proxy under /logs/, every
  // request stays under /logs/
  const proxy = await L.startProxy(d, "/logs/");
  try {
    const p2 = await s.newPage(proxy.origin);
    await p2.goto(proxy.url(""));
    await p2.waitForSelector("#loglist tr");
    await p2.click('#loglist a:text-is("app")');
    await waitLine(p2, SYSLOG[19 % SYSLOG.length]);
    await waitState(p2, "live");
    const outside = proxy.seen.filter((p) => !p.startsWith("/logs/"));
    assertEqual(outside, [], "requests outside the subpath");
    assert(proxy.seen.some((p) => p.startsWith("/logs/api/logs/app/events?")), "the stream went through: " + proxy.seen);
    await p2.close();
  } finally {
    await proxy.close();
  }
  s.checkOrigins();
  assert(s.requests.length > 5, "requests recorded: " + s.requests.length);
});

// ---------------------------------------------------------------- main

L.runAll(process.argv[2]).then((ok) => process.exit(ok ? 0 : 1), (e) => {
  console.error(e);
  console.log("0 passed, 1 failed");
  process.exit(1);
});
require("./embed");   // embedding in another origin, CORS, HTTPS (embed.js)
require("./proxy");   // tests behind nginx (registered before runAll starts them)
