// The dashboard of another origin (see index.html): an iframe with the
// viewer, and window.dash for the tests: EventSources and fetch() to the
// daemon, each shown on the page too.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const q = new URLSearchParams(location.search);
  const dash = { frameLoads: 0, streams: [] };
  window.dash = dash;
  $("origin").textContent = "served from " + location.origin;
  const frame = $("viewer");
  frame.addEventListener("load", () => { dash.frameLoads++; });
  if (q.get("viewer")) frame.src = q.get("viewer");
  else $("framed").hidden = true;

  const STATES = ["connecting", "open", "closed"];
  function showState(st) {
    st.p.textContent = st.label + ": " + (st.closedHere ? "closed by this page" : STATES[st.es.readyState]) + "; " +
      st.rec.lines.length + " lines, opened " + st.rec.opens + "\u00d7, " + st.rec.errors + " errors";
  }

  // Open an EventSource (label: what the page shows of it); returns its
  // index for rec() and close().
  dash.stream = (url, label) => {
    if (!dash.streams.length) $("streams").textContent = "";
    const es = new EventSource(url);
    const rec = { url, lines: [], ids: [], opens: 0, errors: 0, errorStates: [] };
    const box = document.createElement("div");
    box.className = "stream";
    const st = { es, rec, label: label || url, closedHere: false, p: document.createElement("p"),
      ol: document.createElement("ol") };
    box.append(st.p, st.ol);
    $("streams").append(box);
    es.onopen = () => { rec.opens++; showState(st); };
    es.onmessage = (e) => {
      rec.lines.push(e.data);
      rec.ids.push(e.lastEventId);
      const li = document.createElement("li");
      li.textContent = e.data;
      st.ol.append(li);
      showState(st);
    };
    es.onerror = () => { rec.errors++; rec.errorStates.push(es.readyState); showState(st); };
    showState(st);
    dash.streams.push(st);
    return dash.streams.length - 1;
  };
  dash.rec = (i) => Object.assign({ state: dash.streams[i].es.readyState }, dash.streams[i].rec);
  dash.close = (i) => {
    const st = dash.streams[i];
    st.es.close();
    st.closedHere = true;
    showState(st);
  };

  // fetch(url, init): what a script of this origin can read of the answer
  // (label: what the page shows of the request).
  dash.fetch = async (url, init, label) => {
    const what = (label || url) + ": ";
    try {
      const r = await fetch(url, init);
      const body = await r.text();
      $("fetched").textContent = what + r.status + " " + body;
      return { status: r.status, body, type: r.type, ctype: r.headers.get("Content-Type") };
    } catch (e) {
      $("fetched").textContent = what + String(e);
      return { error: String(e) };
    }
  };
})();
