// tailsse viewer: a log picker and a live view of one log or of several
// merged, to the contract's "The viewer page".  Plain script, no build
// step; every URL it uses is relative to the page, so it works under a
// reverse-proxy subpath.  The whole state lives in the page's query.
//
// The stream is read with fetch() and parsed here (SSEParser), not with
// EventSource: the browser dispatches one DOM event per line, and a burst
// of 20,000 lines then blocks the tab for seconds (measured: 0.7-2.3 s
// without a frame, against 0.07-0.15 s reading the same stream with
// fetch).  It also shows every answer's status (401, 400 with PCRE2's
// message, 404, 503), sends the token as a header rather than in the URL,
// and sees the id-only events of filtered streams and the ": ping"
// comments.  What EventSource would do is done here: reconnect from the
// last id (?lastEventId=), after the server's retry: delay, growing and
// jittered while it fails.
"use strict";

(function () {
  const MAX_LINES = 10000;     // lines held; the oldest are dropped
  const DEFAULT_TAIL = 200;    // backlog when the query has no tail=
  const CONTEXT = 50;          // lines shown before a permalink's line
  const EARLIER = 200;         // lines per "load earlier lines"
  const CHUNK = 200;           // lines per block of the view (see addLines)
  const FRAME_LINES = 1000;    // lines put into the DOM per frame at most,
  const FRAME_MS = 8;          // and for about this long
  const BACKOFF_MAX = 30000;   // ms between two tries at most
  const STALE_HIDDEN = 30000;  // hidden this long: reconnect when shown
  const SILENT_MAX = 75000;    // no byte for this long (heartbeat is 15 s): reconnect

  const $ = (id) => document.getElementById(id);
  const root = document.documentElement;
  const enc = new TextEncoder();

  // ------------------------------------------------------------ state

  // The page's state, read from its query string.
  function readState(search) {
    const q = new URLSearchParams(search);
    const nonEmpty = (xs) => xs.filter((s) => s !== "");
    const tail = q.get("tail");
    const theme = q.get("theme");
    return {
      logs: nonEmpty(q.getAll("log")),
      grep: nonEmpty(q.getAll("grep")),
      exclude: nonEmpty(q.getAll("exclude")),
      icase: q.has("icase") && !/^(0|false|no|off)$/i.test(q.get("icase")),
      tail: tail !== null && /^\d{1,7}$/.test(tail) ? Number(tail) : null,
      at: q.get("at") || null,
      embed: q.get("embed") === "1",
      theme: theme === "light" || theme === "dark" ? theme : null,
    };
  }

  // The query string of a state (without token: it never goes there).
  function queryOf(st) {
    const q = [];
    const add = (k, v) => q.push(k + "=" + encodeURIComponent(v));
    for (const l of st.logs || []) add("log", l);
    for (const g of st.grep || []) add("grep", g);
    for (const x of st.exclude || []) add("exclude", x);
    if (st.icase) add("icase", "1");
    if (st.tail !== null && st.tail !== undefined) add("tail", st.tail);
    if (st.at) add("at", st.at);
    if (st.embed) add("embed", "1");
    if (st.theme) add("theme", st.theme);
    return "?" + q.join("&");
  }

  // An API URL relative to the page: path plus [name, value] pairs.  (The
  // token goes in a header, never in a URL.)
  function apiUrl(path, pairs) {
    const q = pairs.map(([k, v]) => k + "=" + encodeURIComponent(v));
    return path + (q.length ? "?" + q.join("&") : "");
  }

  function filterPairs(st) {
    const p = [];
    for (const g of st.grep) p.push(["grep", g]);
    for (const x of st.exclude) p.push(["exclude", x]);
    if (st.icase) p.push(["icase", "1"]);
    return p;
  }

  // ------------------------------------------------------------ token

  // Kept in memory (for iframes whose cookies the browser blocks) and in
  // the cookie tailsse_token, which the server reads too.
  let token = null;

  function setToken(t) {
    token = t;
    const dir = location.pathname.replace(/[^/]*$/, "") || "/";
    const v = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$/.test(t) ? t : encodeURIComponent(t);
    document.cookie = "tailsse_token=" + v + "; path=" + dir + "; max-age=2592000; SameSite=Strict" +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  // token= in the page's own query: taken, and removed from the address
  // bar of a top-level page (an iframe keeps its src as it was given).
  function takeQueryToken() {
    const parts = location.search.replace(/^\?/, "").split("&").filter((p) => p !== "");
    const rest = [];
    let found = null;
    for (const p of parts) {
      const kv = new URLSearchParams(p);
      if (kv.has("token")) found = kv.get("token");
      else rest.push(p);
    }
    if (found === null) return;
    if (found) setToken(found);
    let top = true;
    try { top = window.top === window.self; } catch (e) { top = false; }
    if (top) history.replaceState(history.state, "", (rest.length ? "?" + rest.join("&") : "?") + location.hash);
  }

  function authHeaders() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  // ------------------------------------------------------------ helpers

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function humanSize(n) {
    if (typeof n !== "number") return "—";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + u[i];
  }

  const fmt = new Intl.NumberFormat("en");
  const clock = () => new Date().toTimeString().slice(0, 8);

  // UTF-8 byte ranges (format=json "match") to UTF-16 string indexes.
  // TextEncoder gives the exact bytes the server counted; each byte that
  // starts a character moves the string index by that character's UTF-16
  // length (2 for the 4-byte ones, outside the BMP).  Offsets that fall
  // inside a character go to its end; offsets past the end clamp.
  function byteRangesToIndexes(text, ranges) {
    const ascii = !/[^\x00-\x7f]/.test(text);
    const pts = [];
    for (const r of ranges) {
      if (Array.isArray(r) && r.length >= 2 && r[0] >= 0 && r[1] >= r[0]) pts.push(r[0], r[1]);
    }
    if (ascii) {
      return ranges.filter((r) => Array.isArray(r) && r[1] >= r[0])
        .map((r) => [Math.min(r[0], text.length), Math.min(r[1], text.length)]);
    }
    pts.sort((a, b) => a - b);
    const bytes = enc.encode(text);
    const map = new Map();
    let u = 0, k = 0;
    for (let b = 0; b <= bytes.length && k < pts.length; b++) {
      if (b < bytes.length && (bytes[b] & 0xc0) === 0x80) continue;
      while (k < pts.length && pts[k] <= b) map.set(pts[k++], u);
      if (b < bytes.length) u += bytes[b] >= 0xf0 ? 2 : 1;
    }
    while (k < pts.length) map.set(pts[k++], u);
    return ranges.filter((r) => map.has(r[0]) && map.has(r[1]))
      .map((r) => [map.get(r[0]), map.get(r[1])]);
  }

  // text into parent, with <mark> around the matched ranges.
  function fillText(parent, text, match) {
    if (!match || !match.length) {
      parent.appendChild(document.createTextNode(text));
      return;
    }
    const idx = byteRangesToIndexes(text, match).sort((a, b) => a[0] - b[0]);
    let pos = 0;
    for (const [s, e] of idx) {
      if (s < pos || e <= s) continue;
      if (s > pos) parent.appendChild(document.createTextNode(text.slice(pos, s)));
      parent.appendChild(el("mark", null, text.slice(s, e)));
      pos = e;
    }
    if (pos < text.length) parent.appendChild(document.createTextNode(text.slice(pos)));
  }

  // The body of a failed answer: its status and first line.
  async function failure(r) {
    let text = "";
    try { text = (await r.text()).split("\n")[0].trim(); } catch (e) { /* none */ }
    return { status: r.status, text, retryAfter: Number(r.headers.get("Retry-After")) || 0 };
  }

  // Server-Sent Events, incrementally (the HTML standard's parsing
  // rules): feed() decoded text; onEvent(type, data, lastId) for each
  // event.  lastId is kept across events, as EventSource keeps its last
  // event ID; an event without data (data null: the id-only events of a
  // filtered stream) only moves it.
  class SSEParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buf = "";
      this.data = null;
      this.type = "";
      this.lastId = "";
      this.idBuf = "";
      this.retry = 0;
      this.first = true;
    }

    feed(text) {
      let buf = this.buf + text;
      if (this.first && buf.length) {
        this.first = false;
        if (buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
      }
      let p = 0, nl;
      while ((nl = buf.indexOf("\n", p)) >= 0) {
        let end = nl;
        if (end > p && buf.charCodeAt(end - 1) === 13) end--;
        this.line(buf, p, end);
        p = nl + 1;
      }
      this.buf = p ? buf.slice(p) : buf;
    }

    line(buf, p, end) {
      if (p === end) {
        this.dispatch();
        return;
      }
      const c = buf.indexOf(":", p);
      if (c === p) return;   // a comment (": ping")
      let field, value;
      if (c < 0 || c > end) {
        field = buf.slice(p, end);
        value = "";
      } else {
        field = buf.slice(p, c);
        value = buf.slice(buf.charCodeAt(c + 1) === 32 ? c + 2 : c + 1, end);
      }
      if (field === "data") this.data = this.data === null ? value : this.data + "\n" + value;
      else if (field === "id") { if (value.indexOf("\0") < 0) this.idBuf = value; }
      else if (field === "event") this.type = value;
      else if (field === "retry") { if (/^\d+$/.test(value)) this.retry = Number(value); }
    }

    dispatch() {
      this.lastId = this.idBuf;
      const data = this.data, type = this.type || "message";
      this.data = null;
      this.type = "";
      this.onEvent(type, data, this.lastId);
    }
  }

  // ------------------------------------------------------------ status

  const statusEl = $("status"), stateEl = $("state"), detailEl = $("detail"), badge = $("badge");
  // state: the data-state (live, paused, reconnecting, offline, error,
  // connecting, idle); word: what the bar says; detail: a few words after
  // it; why: the longer story, in the tooltip.
  function setStatus(state, word, detail, why) {
    statusEl.dataset.state = state;
    stateEl.textContent = word || state;
    detailEl.textContent = detail ? " " + detail : "";
    statusEl.title = why || detail || "";
    badge.dataset.state = state;
    badge.textContent = word || state;
    badge.hidden = !root.classList.contains("embed") || state === "live" || state === "idle";
    statusEl.hidden = state === "idle";
    document.title = (pageTitle ? pageTitle + " · " : "") +
      (state === "live" || state === "idle" ? "" : (word || state) + " · ") + "tailsse";
  }

  function showFilterError(text) {
    const f = $("ferr");
    f.textContent = text || "";
    f.hidden = !text;
    for (const i of document.querySelectorAll("#filters input[type=search]")) {
      i.setAttribute("aria-invalid", text ? "true" : "false");
    }
  }

  // ------------------------------------------------------------ routing

  let current = null;   // the open view: { close(), keys(), wake(), ... }
  let userInputAt = 0;  // when the user last did something that scrolls
  let userScrollAt = 0; // when the page last scrolled because of the user
  let dragging = false; // a mouse button is down (the scroll bar dragged)
  let pageTitle = "";

  function show(section) {
    for (const id of ["picker", "auth", "view"]) $(id).hidden = id !== section;
  }

  function applyLook(st) {
    if (st.theme) root.dataset.theme = st.theme;
    else delete root.dataset.theme;
    root.classList.toggle("embed", st.embed);
    const t = $("theme");
    const name = st.theme || "system";
    t.setAttribute("aria-label", "Colour theme: " + name);
    t.title = "Colour theme: " + name + " (click to change)";
    t.textContent = st.theme === "dark" ? "☾" : st.theme === "light" ? "☀" : "◐";
  }

  // Open what the address says.
  function route() {
    if (current) current.close();
    current = null;
    const st = readState(location.search);
    applyLook(st);
    showFilterError("");
    $("retry").hidden = true;
    $("jump").hidden = true;
    if (st.logs.length > 0) current = openViewer(st);
    else if (!st.embed) current = openPicker(st);
    else {
      // embedded: no picker; say what is missing
      show("view");
      $("empty").textContent = "No log chosen: add log=NAME to this page's address.";
      setStatus("idle", "");
    }
  }

  // Move to another page state without reloading (keeps the token in
  // memory, which an iframe without cookies depends on).
  function go(search, replace) {
    if (replace) history.replaceState(null, "", search);
    else history.pushState(null, "", search);
    route();
  }

  // A plain click on an in-page link: handled here; others (new tab,
  // copy link) are the browser's.
  function internalClick(e) {
    return !(e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey);
  }

  // ------------------------------------------------------------ token form

  function askToken(why, again) {
    setStatus("error", "token needed");
    show("auth");
    const w = $("auth-why");
    w.textContent = why;
    w.classList.toggle("bad", !!token);
    const input = $("token");
    input.value = "";
    input.focus();
    $("authform").onsubmit = (e) => {
      e.preventDefault();
      if (!input.value) return;
      setToken(input.value);
      input.value = "";
      again();
    };
  }

  function tokenWhy() {
    return token ? "The token was not accepted. Enter the right one."
      : "This server asks for a token before it shows its logs.";
  }

  // ------------------------------------------------------------ picker

  function openPicker(st) {
    root.classList.add("picker");
    pageTitle = "logs";
    $("where").textContent = "";
    $("filters").hidden = true;
    $("pause").hidden = true;
    show("picker");
    setStatus("idle", "");
    const list = $("loglist"), msg = $("pick-msg"), merge = $("merge");
    let closed = false, timer = 0;
    const chosen = new Set();
    const look = { theme: st.theme };

    function updateMerge() {
      merge.disabled = chosen.size < 2;
      $("merge-hint").textContent = chosen.size < 2
        ? "Tick two or more logs to follow them in one view."
        : chosen.size + " logs, one connection.";
    }

    function render(logs) {
      const rows = [];
      for (const l of logs) {
        const tr = el("tr");
        const c = el("td");
        const box = el("input");
        box.type = "checkbox";
        box.value = l.name;
        box.checked = chosen.has(l.name);
        box.setAttribute("aria-label", "select " + l.name + " for a merged view");
        box.onchange = () => { if (box.checked) chosen.add(l.name); else chosen.delete(l.name); updateMerge(); };
        c.appendChild(box);
        const n = el("td", "name");
        const a = el("a", null, l.name);
        a.href = queryOf(Object.assign({ logs: [l.name] }, look));
        a.onclick = (e) => { if (internalClick(e)) { e.preventDefault(); go(a.getAttribute("href")); } };
        n.appendChild(a);
        const size = el("td", "num", l.exists ? humanSize(l.size) : "—");
        let state;
        if (l.error) state = el("td", "state bad", "cannot read: " + l.error);
        else if (!l.exists) state = el("td", "state wait", "not created yet");
        else state = el("td", "state ok", "exists");
        tr.append(c, n, size, state);
        rows.push(tr);
      }
      list.replaceChildren(...rows);
      msg.hidden = logs.length > 0;
      if (!logs.length) { msg.className = "msg"; msg.textContent = "No logs are configured."; }
    }

    async function load() {
      let r;
      try {
        r = await fetch("api/logs", { headers: authHeaders(), cache: "no-store" });
      } catch (e) {
        if (closed) return;
        setStatus("offline", navigator.onLine ? "no answer" : "offline", "", "api/logs: no answer; trying again every 5 s");
        return;
      }
      if (closed) return;
      if (r.status === 401) {
        clearInterval(timer);
        askToken(tokenWhy(), route);
        return;
      }
      if (!r.ok) {
        const f = await failure(r);
        msg.hidden = false;
        msg.className = "msg bad";
        msg.textContent = "api/logs: " + f.status + " " + f.text;
        return;
      }
      let logs;
      try { logs = await r.json(); } catch (e) { logs = null; }
      if (closed) return;
      if (!Array.isArray(logs)) {
        msg.hidden = false;
        msg.className = "msg bad";
        msg.textContent = "api/logs: not a list of logs";
        return;
      }
      setStatus("idle", "");
      show("picker");
      render(logs);
    }

    $("pick").onsubmit = (e) => {
      e.preventDefault();
      if (chosen.size < 2) return;
      const names = Array.from(list.querySelectorAll("input[type=checkbox]"))
        .filter((b) => b.checked).map((b) => b.value);
      go(queryOf(Object.assign({ logs: names }, look)));
    };
    updateMerge();
    load();
    // sizes change: look again now and then while the page is seen
    timer = setInterval(() => { if (!document.hidden) load(); }, 5000);

    return {
      close() { closed = true; clearInterval(timer); root.classList.remove("picker"); },
      keys() { return false; },
      wake() { load(); },
    };
  }

  // ------------------------------------------------------------ viewer

  const REASONS = {
    rotated: ["file rotated", "following the new file"],
    truncated: ["file truncated", "reading it again from its start"],
    deleted: ["file deleted", "waiting for it to come back"],
    created: ["file created", "following it"],
    lost: ["resume position lost", "the place this view had reached no longer exists (rotated away or cut); " +
      "reading the current file from its start, so lines may be missing or repeated here"],
  };

  function openViewer(st) {
    const merged = st.logs.length > 1;
    const single = merged ? null : st.logs[0];
    const colour = new Map(st.logs.map((l, i) => [l, "c" + (i % 8)]));
    const box = $("lines"), notes = $("notes"), earlier = $("earlier"), jump = $("jump");
    const pauseBtn = $("pause"), retryBtn = $("retry");
    const se = document.scrollingElement || root;

    let closed = false;
    let conn = null;          // the AbortController of the stream being read
    let live = false;         // that stream has answered 200 and is being read
    let retryBase = 1000;     // the stream's retry: field (ms)
    let openedAt = 0, lastByteAt = 0, watchTimer = 0;
    let lastId = null;        // id of the newest event received: where a reconnect resumes
    let paused = null;        // null, "user", or "held" (scrolled up and full)
    let following = !st.at;   // keep the newest line in view
    let holdOff = false;      // the user resumed while scrolled up: no more holds until following
    let attempt = 0;          // reconnects since the stream was last open
    let retryTimer = 0, tickTimer = 0, retryAt = 0;
    let pending = [];         // events not yet in the DOM, from pending[head]
    let head = 0;
    let clearFirst = false;   // the DOM's lines are all older than a gap in pending
    let raf = 0;
    let count = 0;            // lines (and separators) in the view
    let chunks = [];          // the view's blocks, oldest first: { el, n }
    let unseen = 0;           // lines arrived while not following
    let linesAbove = 0;       // while not following: lines above the block at the top of the screen
    let linesApi = null;      // whether the server has /lines (null: unknown)
    let atStart = false;      // "load earlier" reached the start of the file
    let hiddenSince = 0;
    let filterLimitSaid = false;
    let everOpen = false;

    // --- the bar
    const where = $("where");
    where.textContent = "";
    for (const l of st.logs) {
      const t = el("span", "logtag " + colour.get(l), l);
      t.title = l;
      where.appendChild(t);
    }
    $("home").href = queryOf({ theme: st.theme });
    $("filters").hidden = false;
    pauseBtn.hidden = false;
    fillFilterInputs(st);
    show("view");
    clearLines();
    notes.textContent = "";
    earlier.hidden = true;
    $("empty").textContent = st.grep.length || st.exclude.length
      ? "No matching lines yet. Matching lines appear here as they are written."
      : "No lines yet. New lines appear here as they are written.";
    pageTitle = st.logs.join(", ");
    // name tags as wide as the longest name, so that the lines' text
    // starts in one column
    box.style.setProperty("--tagw", merged ? Math.min(24, Math.max(...st.logs.map((l) => l.length))) + "ch" : "0");

    function note(text, key) {
      if (key && notes.querySelector('[data-key="' + key + '"]')) return;
      const n = el("div", "note");
      if (key) n.dataset.key = key;
      n.appendChild(el("span", null, text));
      const x = el("button", null, "×");
      x.type = "button";
      x.setAttribute("aria-label", "dismiss");
      x.onclick = () => n.remove();
      n.appendChild(x);
      notes.appendChild(n);
    }

    // --- the stream

    function streamPairs(resume) {
      const p = [];
      if (merged) for (const l of st.logs) p.push(["log", l]);
      else if (json) p.push(["format", "json"]);
      p.push(...filterPairs(st));
      if (resume) p.push(["lastEventId", resume]);
      else p.push(["tail", String(st.tail !== null ? st.tail : DEFAULT_TAIL)]);
      return p;
    }
    // JSON data only when there are matches to highlight (or merged, where
    // it always is): a plain line costs no JSON.parse
    const json = merged || st.grep.length > 0;
    const streamPath = merged ? "api/events" : "api/logs/" + encodeURIComponent(single) + "/events";

    function setPauseUi() {
      pauseBtn.textContent = paused ? "Resume" : "Pause";
      pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
    }

    function stopStream() {
      if (conn) { conn.abort(); conn = null; }
      live = false;
      clearTimeout(retryTimer);
      clearInterval(tickTimer);
      clearInterval(watchTimer);
      retryTimer = tickTimer = watchTimer = 0;
      retryBtn.hidden = true;
    }

    // Open the stream, from resume (an id) or with the backlog; read it
    // until it ends; then what EventSource would do, or say what is wrong
    // when trying again cannot help.
    async function connect(resume) {
      stopStream();
      if (closed || paused) return;
      const ctl = new AbortController();
      conn = ctl;
      const url = apiUrl(streamPath, streamPairs(resume));
      setStatus(everOpen ? "reconnecting" : "connecting", everOpen ? "reconnecting" : "connecting");
      let r;
      try {
        r = await fetch(url, { headers: Object.assign({ Accept: "text/event-stream" }, authHeaders()),
          cache: "no-store", signal: ctl.signal });
      } catch (e) {
        if (ctl === conn) backoff(0, navigator.onLine ? "no answer from the server" : "");
        return;
      }
      if (ctl !== conn) return;
      if (r.status !== 200) {
        refused(await failure(r));
        return;
      }
      if (!/^text\/event-stream/i.test(r.headers.get("Content-Type") || "") || !r.body) {
        backoff(0, "the answer is not an event stream");
        return;
      }
      everOpen = true;
      live = true;
      openedAt = lastByteAt = Date.now();
      showFilterError("");
      setStatus("live", "live");
      watchTimer = setInterval(() => {
        // a connection that died without a word (a laptop asleep, a NAT
        // that forgot it) sends no more pings
        if (Date.now() - lastByteAt > SILENT_MAX) connect(lastId);
      }, 5000);
      const parser = new SSEParser(onEvent);
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let why = "the server closed the stream";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (ctl !== conn) return;
          if (done) break;
          lastByteAt = Date.now();
          parser.feed(dec.decode(value, { stream: true }));
          if (parser.retry) retryBase = parser.retry;
          if (ctl !== conn) return;   // paused (or held) by what it read
        }
      } catch (e) {
        if (ctl !== conn) return;
        why = navigator.onLine ? "the connection broke" : "";
      }
      if (ctl !== conn) return;
      // a stream that stayed up a while starts the delays over
      if (Date.now() - openedAt > 10000) attempt = 0;
      backoff(0, why);
    }

    // A stream answered other than 200.
    function refused(f) {
      if (f.status === 401) {
        stopStream();
        askToken(tokenWhy(), () => { show("view"); connect(lastId); });
        return;
      }
      if (f.status === 400) {
        stopStream();
        setStatus("error", "error", "", f.text);
        showFilterError(f.text || "the server refused these filters");
        $("empty").textContent = "Nothing is shown until the filter is fixed (Enter applies it).";
        return;
      }
      if (f.status === 404) {
        stopStream();
        setStatus("error", "not found", "", f.text);
        if (merged && /endpoint/i.test(f.text)) {
          note("This server cannot merge logs on one connection (it has no api/events). Open them one at a time: " +
            st.logs.join(", ") + ".", "nomerge");
          const span = notes.querySelector('[data-key="nomerge"] span');
          for (const l of st.logs) {
            const a = el("a", "logtag " + colour.get(l), l);
            a.href = queryOf({ logs: [l], theme: st.theme });
            span.append(" ", a);
          }
        } else {
          note((f.text || "not found") + ". ", "404");
          const a = el("a", null, "All logs");
          a.href = queryOf({ theme: st.theme });
          notes.querySelector('[data-key="404"] span').append(a);
          $("empty").textContent = "";
        }
        return;
      }
      backoff(f.status === 503 ? f.retryAfter * 1000 : 0, "the server answered " + f.status +
        (f.text && f.text.length < 80 ? " (" + f.text + ")" : ""));
    }

    // Wait, then connect again from the last id: the server's retry:
    // delay at first, doubling each time (at most 30 s), each delay
    // between half and all of that, so that many pages do not come back
    // all at once.
    function backoff(minDelay, why) {
      stopStream();
      const base = Math.min(BACKOFF_MAX, retryBase * Math.pow(2, attempt));
      attempt++;
      const delay = Math.max(minDelay, base / 2 + Math.random() * base / 2);
      retryAt = Date.now() + delay;
      const tick = () => {
        const word = navigator.onLine ? "reconnecting" : "offline";
        const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        setStatus(word, word, "retry in " + s + " s", why ? why + "; retry in " + s + " s" : "");
      };
      tick();
      tickTimer = setInterval(tick, 1000);
      retryTimer = setTimeout(() => connect(lastId), delay);
      retryBtn.hidden = false;
    }

    // --- events

    function push(item) {
      pending.push(item);
      if (!raf) raf = requestAnimationFrame(flush);
      // more than the view holds: the DOM's lines and the oldest pending
      // ones would all be dropped, so drop them now (a hidden tab gets no
      // frames, and a burst need not be drawn line by line)
      if (following && pending.length - head >= 2 * MAX_LINES) trimPending();
    }

    // Whether one more line may come without dropping one that the user,
    // scrolled up, is reading.
    function room() {
      return following || holdOff || count + pending.length - head + 1 - MAX_LINES <= linesAbove;
    }

    function trimPending() {
      pending = pending.slice(pending.length - MAX_LINES);
      head = 0;
      clearFirst = true;
    }

    // Each event the parser dispatches; lastId is the parser's, which
    // id-only events move too (see the head of the stream's events).
    function onEvent(type, data, id) {
      if (paused || closed) return;   // held while reading a chunk: the rest comes again
      if (data !== null && type !== "filter-limit" && !room()) {
        hold();                       // this line comes again on resume
        return;
      }
      if (id) lastId = id;
      if (data === null) return;
      if (type === "message") {
        if (!json) {
          push({ id, log: single, text: data, match: null });
          return;
        }
        let d;
        try { d = JSON.parse(data); } catch (x) { d = { line: data }; }
        if (typeof d.line !== "string") return;
        const log = merged ? d.log : single;
        push({ id: lineId(log, id), log, text: d.line, match: d.match });
      } else if (type === "reset") {
        let d = {};
        try { d = JSON.parse(data); } catch (x) { /* keep {} */ }
        push({ sep: d.reason || "reset", log: merged ? d.log : null, time: clock() });
      } else if (type === "filter-limit" && !filterLimitSaid) {
        filterLimitSaid = true;
        note("A filter hit the server's time limit on some lines; those lines were counted as not matching.", "limit");
      }
    }

    // The INODE:OFFSET of one log's line: the id itself, or in a merged
    // view that log's entry in the cursor "A=I:O,B=I:O".
    function lineId(log, id) {
      if (!merged || !id) return id || "";
      for (const part of id.split(",")) {
        const eq = part.lastIndexOf("=");
        if (eq > 0 && part.slice(0, eq) === log) return part.slice(eq + 1);
      }
      return "";
    }

    // --- the DOM

    function permalink(item) {
      if (merged) return queryOf({ logs: [item.log], at: item.id, theme: st.theme });
      return queryOf({ logs: [single], grep: st.grep, exclude: st.exclude, icase: st.icase,
        at: item.id, theme: st.theme });
    }

    function render(item) {
      if (item.sep) {
        const r = REASONS[item.sep] || ["reset: " + item.sep, ""];
        const d = el("div", "sep");
        if (item.log) d.append(item.log + ": ");
        d.appendChild(el("b", null, r[0]));
        if (r[1]) d.append(" — " + r[1]);
        const t = el("time", null, "seen " + item.time);
        t.title = "when this page got the news, by this computer's clock";
        d.append(" ", t);
        return d;
      }
      const d = el("div", merged ? "ln m " + (colour.get(item.log) || "") : "ln");
      if (item.id) {
        d.dataset.id = item.id;
        const a = el("a", "pl", "#");
        a.href = permalink(item);
        a.tabIndex = -1;
        a.setAttribute("aria-label", "permalink");
        if (st.embed) { a.target = "_blank"; a.rel = "noopener"; }
        d.appendChild(a);
      }
      if (merged) {
        d.dataset.log = item.log;
        d.appendChild(el("span", "tag", item.log));
      }
      fillText(d, item.text, item.match);
      return d;
    }

    // The lines live in blocks of CHUNK lines, each content-visibility:
    // auto.  The browser then lays out only the blocks on the screen, and
    // dropping the oldest lines removes whole blocks, instead of moving
    // 10,000 siblings in every frame of a burst (measured: frames 4-5
    // times shorter).
    function newChunk() {
      return { el: el("div", "chunk"), n: 0 };
    }

    function addLines(nodes) {
      for (let i = 0; i < nodes.length;) {
        let c = chunks[chunks.length - 1];
        if (!c || c.n >= CHUNK) {
          c = newChunk();
          chunks.push(c);
          box.appendChild(c.el);
        }
        const k = Math.min(CHUNK - c.n, nodes.length - i);
        c.el.append(...nodes.slice(i, i + k));
        c.n += k;
        i += k;
        // a full block may be skipped when off the screen; the one being
        // filled, at the bottom, is always laid out for real
        if (c.n >= CHUNK) c.el.classList.add("full");
      }
      count += nodes.length;
      if (count > MAX_LINES) dropOldest(count - MAX_LINES);
    }

    function prependLines(nodes) {
      for (let end = nodes.length; end > 0; end -= CHUNK) {
        const c = newChunk();
        c.el.append(...nodes.slice(Math.max(0, end - CHUNK), end));
        c.n = Math.min(CHUNK, end);
        c.el.classList.add("full");
        chunks.unshift(c);
        box.insertBefore(c.el, box.firstChild);
      }
      count += nodes.length;
      linesAbove = 0;   // measured again when the user scrolls
    }

    function dropOldest(k) {
      count -= k;
      linesAbove = Math.max(0, linesAbove - k);
      while (k > 0) {
        const c = chunks[0];
        if (c.n <= k) {
          c.el.remove();
          chunks.shift();
          k -= c.n;
        } else {
          const r = document.createRange();
          r.setStart(c.el, 0);
          r.setEnd(c.el, k);
          r.deleteContents();
          c.n -= k;
          k = 0;
        }
      }
    }

    function clearLines() {
      box.textContent = "";
      chunks = [];
      count = 0;
    }

    function flush() {
      raf = 0;
      if (closed) return;
      if (following && pending.length - head > MAX_LINES) trimPending();
      if (clearFirst) {
        clearLines();
        clearFirst = false;
      }
      // a bounded part of what is pending: the rest in the next frames
      const t0 = performance.now();
      const end = Math.min(pending.length, head + FRAME_LINES);
      const nodes = [];
      while (head < end) {
        nodes.push(render(pending[head++]));
        if ((nodes.length & 63) === 0 && performance.now() - t0 > FRAME_MS) break;
      }
      const n = nodes.length;
      if (head < pending.length) {
        raf = requestAnimationFrame(flush);
      } else {
        pending = [];
        head = 0;
      }
      if (!n) return;
      addLines(nodes);
      if (following) {
        se.scrollTop = se.scrollHeight;   // the one layout of the frame
      } else {
        unseen += n;
        showJump();
      }
      if (linesApi === null && !merged) probeLinesApi();
      else if (!merged) earlier.hidden = !linesApi;
    }

    function showJump() {
      // (one layout read, once per frame at most)
      jump.hidden = following || st.embed || se.scrollHeight <= window.innerHeight + 16;
      jump.textContent = unseen ? "↓ " + fmt.format(unseen) + " new line" + (unseen === 1 ? "" : "s") : "↓ newest";
    }

    function follow(on) {
      if (following === on) return;
      following = on;
      if (on) { unseen = 0; holdOff = false; }
      showJump();
    }

    function toEnd() {
      follow(true);
      se.scrollTop = se.scrollHeight;
      if (paused === "held") resume();
    }

    // Only the user starts or stops following, by scrolling to the
    // bottom or up from it (or with End): a scroll that comes from the
    // layout (a block laid out for real, a font loaded, the window
    // resized, lines added under a permalink's line) changes nothing, and
    // while following the view is kept at the bottom.
    function onScroll() {
      if (closed) return;
      const bottom = se.scrollTop + window.innerHeight >= se.scrollHeight - 16;
      const now = Date.now();
      // a drag of the scroll bar, a flick still gliding: the user's too
      const user = dragging || now - userInputAt < 1000 || now - userScrollAt < 250;
      if (user) userScrollAt = now;
      if (bottom && user) follow(true);
      else if (!bottom && following && user) follow(false);
      else if (following) pin();
      if (!following) measureTop();
    }

    // How many lines are above the block at the top of the screen: the
    // lines that may be dropped without taking what the user reads.
    function measureTop() {
      const bar = $("bar");
      const y = root.classList.contains("embed") ? 2 : bar.getBoundingClientRect().bottom + 2;
      const e = document.elementFromPoint(Math.min(40, window.innerWidth - 1), y);
      const c = e && e.closest(".chunk");
      let n = 0;
      if (c) {
        for (const ch of chunks) {
          if (ch.el === c) break;
          n += ch.n;
        }
      }
      linesAbove = n;
    }

    function pin() {
      if (following) se.scrollTop = se.scrollHeight;
    }
    const sizes = new ResizeObserver(pin);
    sizes.observe(box);

    // --- pause

    function hold() {
      paused = "held";
      stopStream();
      setPauseUi();
      setStatus("paused", "paused", "End goes on", "The view holds " + fmt.format(MAX_LINES) +
        " lines: the next would push out what you are reading. End or Space goes on.");
    }

    function pause() {
      paused = "user";
      stopStream();
      setPauseUi();
      setStatus("paused", "paused", "Space resumes", "Paused: the stream is closed; Space or Resume goes on from the last line.");
    }

    function resume() {
      if (!following) holdOff = true;
      paused = null;
      setPauseUi();
      attempt = 0;
      connect(lastId);
    }

    // --- lines before a position (/lines)

    function linesUrl(before, n) {
      return apiUrl("api/logs/" + encodeURIComponent(single) + "/lines",
        [["before", before], ["n", String(n)]].concat(filterPairs(st)));
    }

    async function fetchLines(before, n) {
      let r;
      try {
        r = await fetch(linesUrl(before, n), { headers: authHeaders(), cache: "no-store" });
      } catch (e) {
        return { status: 0, text: "no answer from the server" };
      }
      if (r.status !== 200) return await failure(r);
      try {
        const j = await r.json();
        if (!Array.isArray(j.lines)) throw new Error("no lines");
        return { status: 200, lines: j.lines };
      } catch (e) {
        return { status: 0, text: "bad answer from api/logs/…/lines" };
      }
    }

    async function probeLinesApi() {
      const first = box.querySelector(".ln[data-id]");
      if (!first) return;
      linesApi = false;   // until known: no button
      const r = await fetchLines(first.dataset.id, 1);
      if (closed) return;
      linesApi = r.status !== 404 && r.status !== 0;
      earlier.hidden = !linesApi;
    }

    function lineNodes(lines) {
      const nodes = [];
      for (const l of lines) {
        if (typeof l.line === "string") nodes.push(render({ id: l.id, log: single, text: l.line, match: l.match }));
      }
      return nodes;
    }

    async function loadEarlier() {
      const first = box.querySelector(".ln[data-id]");
      if (!first || atStart) return;
      const room = MAX_LINES - count;
      if (room <= 0) {
        earlier.textContent = "This view holds " + fmt.format(MAX_LINES) + " lines, the most it keeps";
        earlier.disabled = true;
        return;
      }
      const want = Math.min(EARLIER, room);
      earlier.disabled = true;
      earlier.textContent = "Loading…";
      const r = await fetchLines(first.dataset.id, want + 1);
      if (closed) return;
      earlier.disabled = false;
      earlier.textContent = "Load earlier lines";
      if (r.status === 401) { askToken(tokenWhy(), () => { show("view"); loadEarlier(); }); return; }
      if (r.status === 404) { linesApi = false; earlier.hidden = true; return; }
      if (r.status !== 200) { note("Earlier lines: " + (r.text || "the server answered " + r.status), "earlier"); return; }
      const lines = r.lines;
      if (lines.length && lines[lines.length - 1].id === first.dataset.id) lines.pop();
      if (lines.length < want) {
        atStart = true;
        earlier.textContent = "Start of the file";
        earlier.disabled = true;
      }
      if (!lines.length) return;
      const y0 = first.getBoundingClientRect().top;
      prependLines(lineNodes(lines));
      // keep the line that was first where it was on the screen
      window.scrollBy(0, first.getBoundingClientRect().top - y0);
    }

    // --- a permalink: the line marked, context before it, live after it

    async function openAt() {
      setStatus("connecting", "connecting");
      const r = await fetchLines(st.at, CONTEXT + 1);
      if (closed) return;
      if (r.status === 200) {
        linesApi = true;
        addLines(lineNodes(r.lines));
        const mark = box.querySelector('.ln[data-id="' + CSS.escape(st.at) + '"]');
        if (mark) {
          mark.classList.add("at");
          mark.setAttribute("aria-current", "true");
          mark.scrollIntoView({ block: "center" });
        } else {
          note("The linked line does not match the filters; the lines before its place are shown.", "nomatch");
        }
        earlier.hidden = false;
        if (r.lines.length < CONTEXT + 1) { atStart = true; earlier.textContent = "Start of the file"; earlier.disabled = true; }
        lastId = st.at;
        showJump();
        connect(st.at);
        return;
      }
      if (r.status === 401) { askToken(tokenWhy(), () => { show("view"); openAt(); }); return; }
      if (r.status === 404 && !/unknown log/i.test(r.text)) {
        linesApi = false;
        note("This server cannot show the lines before a position (it has no api/logs/…/lines), so this " +
          "permalink opens with the lines after its line.", "nolines");
        follow(true);   // no marked line to keep in view
        lastId = st.at;
        showJump();
        connect(st.at);
        return;
      }
      if (r.status === 410 || r.status === 400) {
        note((r.status === 410 ? "This permalink's line is no longer in the log (" : "This permalink is not valid (") +
          (r.text || r.status) + "). Showing the log as it is now.", "gone");
        follow(true);
        connect(null);
        return;
      }
      // anything else: the stream says what is wrong, or goes on from the line
      lastId = st.at;
      connect(st.at);
    }

    // --- keys and wake-ups (called by the page's handlers)

    function keys(e) {
      if (e.key === " " || e.key === "Spacebar") {
        e.preventDefault();
        if (paused) resume(); else pause();
        return true;
      }
      if (e.key === "End") {
        e.preventDefault();
        toEnd();
        return true;
      }
      return false;
    }

    // Online again, or the tab shown again: connect at once (from the
    // last id) unless the stream is up; after being offline or hidden a
    // long time, it may be up only in name.
    function wake(why) {
      if (closed || paused) return;
      const long = why === "online" || (hiddenSince && Date.now() - hiddenSince > STALE_HIDDEN);
      hiddenSince = 0;
      if (live && !long) return;
      attempt = 0;
      connect(lastId);
    }

    function hidden() { hiddenSince = Date.now(); }

    pauseBtn.onclick = () => { if (paused) resume(); else pause(); };
    retryBtn.onclick = () => { attempt = 0; connect(lastId); };
    jump.onclick = toEnd;
    earlier.onclick = loadEarlier;
    earlier.disabled = false;
    earlier.textContent = "Load earlier lines";
    window.addEventListener("scroll", onScroll, { passive: true });
    window.addEventListener("resize", pin);
    setPauseUi();
    if (st.at && !merged) openAt();
    else connect(null);
    if (!merged) describeFile();

    // What api/logs says of this log's file: not there yet, or unreadable
    async function describeFile() {
      let logs;
      try {
        const r = await fetch("api/logs", { headers: authHeaders(), cache: "no-store" });
        logs = r.ok ? await r.json() : null;
      } catch (e) { logs = null; }
      if (closed || !Array.isArray(logs)) return;
      const me = logs.find((l) => l.name === single);
      if (!me) return;
      if (me.error) note("The server cannot read this file: " + me.error + ".", "unreadable");
      else if (!me.exists) $("empty").textContent = "The file does not exist yet. It is watched: its lines appear here when it is created.";
    }

    return {
      close() {
        closed = true;
        stopStream();
        cancelAnimationFrame(raf);
        window.removeEventListener("scroll", onScroll);
        window.removeEventListener("resize", pin);
        sizes.disconnect();
        pending = [];
        head = 0;
        clearLines();
        notes.textContent = "";
        jump.hidden = true;
      },
      keys,
      wake,
      hidden,
      offline() { if (!paused && !closed) setStatus("offline", "offline", "", "waiting for the network"); },
    };
  }

  // ------------------------------------------------------------ filters

  function fieldFor(kind, value, i, n) {
    const lab = el("label", "fld");
    const word = kind === "grep" ? "include" : "exclude";
    lab.appendChild(el("span", null, n > 1 ? word + " " + (i + 1) : word));
    const input = el("input");
    input.type = "search";
    input.name = kind;
    input.value = value;
    input.placeholder = "regex";
    input.autocomplete = "off";
    input.spellcheck = false;
    input.dataset.applied = value;
    input.setAttribute("autocapitalize", "off");
    input.setAttribute("enterkeyhint", "search");
    if (kind === "grep" && i === 0) {
      input.id = "grep";
      input.setAttribute("aria-keyshortcuts", "/");
    }
    if (kind === "exclude" && i === 0) input.id = "exclude";
    input.setAttribute("aria-describedby", "ferr");
    lab.appendChild(input);
    return lab;
  }

  function fillFilterInputs(st) {
    for (const kind of ["grep", "exclude"]) {
      const values = st[kind].length ? st[kind] : [""];
      $(kind + "-fields").replaceChildren(...values.map((v, i) => fieldFor(kind, v, i, values.length)));
    }
    $("icase").checked = st.icase;
  }

  function applyFilters() {
    const st = readState(location.search);
    const vals = (kind) => Array.from(document.querySelectorAll('#filters input[name="' + kind + '"]'))
      .map((i) => i.value).filter((v) => v !== "");
    const next = Object.assign({}, st, {
      grep: vals("grep"), exclude: vals("exclude"), icase: $("icase").checked, at: null,
    });
    const focused = document.activeElement && document.activeElement.name;
    go(queryOf(next), true);
    // keep the cursor where it was, for the next edit
    if (focused === "grep" || focused === "exclude") {
      const i = document.querySelector('#filters input[name="' + focused + '"]');
      if (i) i.focus();
    }
  }

  $("filters").addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });
  $("icase").addEventListener("change", applyFilters);
  $("filters").addEventListener("keydown", (e) => {
    if (e.key === "Escape" && e.target.matches("input[type=search]")) {
      e.preventDefault();
      e.target.value = e.target.dataset.applied || "";   // Esc leaves without applying
      e.target.blur();
    }
  });

  // ------------------------------------------------------------ page-wide

  $("home").addEventListener("click", (e) => {
    if (internalClick(e)) { e.preventDefault(); go($("home").getAttribute("href")); }
  });

  $("theme").addEventListener("click", () => {
    const st = readState(location.search);
    st.theme = st.theme === null ? "dark" : st.theme === "dark" ? "light" : null;
    history.replaceState(null, "", queryOf(st));
    applyLook(st);
    $("home").href = queryOf({ theme: st.theme });
  });

  // A click on a line's permalink in a single view: mark it and put it in
  // the address bar, without reloading.  In a merged view it opens the
  // line's own log at that line.
  $("lines").addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a.pl");
    if (!a || !internalClick(e) || root.classList.contains("embed")) return;
    e.preventDefault();
    const line = a.parentNode;
    if (line.classList.contains("m")) { go(a.getAttribute("href")); return; }
    for (const m of document.querySelectorAll("#lines .ln.at")) {
      m.classList.remove("at");
      m.removeAttribute("aria-current");
    }
    line.classList.add("at");
    line.setAttribute("aria-current", "true");
    history.replaceState(null, "", a.getAttribute("href"));
  });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
    if (typing) return;
    if (e.key === "/" && !$("filters").hidden && !root.classList.contains("embed")) {
      e.preventDefault();
      const g = $("grep");
      g.focus();
      g.select();
      return;
    }
    // Space on a button is the button's (a link has no use for it)
    if (e.key === " " && t && /^(BUTTON|SUMMARY)$/.test(t.tagName)) return;
    if (current && current.keys) current.keys(e);
  });

  for (const t of ["wheel", "touchmove", "mousedown", "keydown"]) {
    window.addEventListener(t, () => { userInputAt = Date.now(); }, { passive: true, capture: true });
  }
  window.addEventListener("mousedown", () => { dragging = true; }, { capture: true });
  window.addEventListener("mouseup", () => { dragging = false; userInputAt = Date.now(); }, { capture: true });
  window.addEventListener("online", () => { if (current && current.wake) current.wake("online"); });
  window.addEventListener("offline", () => { if (current && current.offline) current.offline(); });
  document.addEventListener("visibilitychange", () => {
    if (!current) return;
    if (document.hidden) { if (current.hidden) current.hidden(); } else if (current.wake) current.wake("visible");
  });
  window.addEventListener("popstate", route);

  takeQueryToken();
  route();
})();
