// The study page: draw the plots, and while the study runs poll /studies/{id}/live for
// what changed since the last poll (trials that ended, running ones) and merge it into the
// table and the plots without a reload. The table itself is rendered by the server.
"use strict";
(function () {
  const root = document.getElementById("study");
  if (!root) return;
  const CURVE_TOP = 5, CURVE_PRUNED = 5, IMPORTANCE_EVERY_MS = 5000;
  const studyId = root.dataset.study;
  const pollMs = Math.min(Number(root.dataset.pollMs) || 1500, 2000);
  const table = document.getElementById("trials");
  const tbody = table.tBodies[0];
  const view = {
    sort: table.dataset.sort, desc: table.dataset.desc === "true", top: Number(table.dataset.top) || null,
    offset: Number(table.dataset.offset) || 0, limit: Number(table.dataset.limit) || 50,
  };
  const el = (id) => document.getElementById(id);
  let cursor = Number(root.dataset.cursor) || 0;
  let plotData = null;
  let importanceCount = -1, importanceAt = 0;

  // Cancel asks first; without this script the button leads to a confirmation page.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (window.confirm(form.dataset.confirm)) {
        if (form.dataset.csrf) {  // signed in with the session cookie: the form carries its token
          const token = document.createElement("input");
          token.type = "hidden"; token.name = "csrf_token"; token.value = form.dataset.csrf;
          form.appendChild(token);
        }
        form.method = "post";
        form.submit();
      }
    });
  });
  // While the study runs, hold the room its rows will take on this page, so the plots
  // below do not move each time a trial arrives.
  if (root.dataset.active === "true" && table.dataset.state === "all" && !view.top) {
    const expected = Math.min(view.limit, Number(table.dataset.nTrials) - view.offset);
    const rowHeight = tbody.rows.length ? tbody.rows[0].getBoundingClientRect().height : 32;
    const wrap = table.parentElement;
    wrap.style.minHeight = Math.ceil(table.tHead.getBoundingClientRect().height + expected * rowHeight + 2) + "px";
  }
  const viewForm = el("view-form");
  viewForm.querySelectorAll("select").forEach((s) => s.addEventListener("change", () => viewForm.requestSubmit()));

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  function drawPoints() {
    HPS.history(el("plot-history"), plotData);
    HPS.paramPlots(el("plot-params"), plotData);
    HPS.parallel(el("plot-parallel"), plotData);
  }
  function drawCurves() { HPS.curves(el("plot-curves"), plotData); }

  function completeCount() {
    return plotData ? plotData.points.state.filter((s) => s === "C").length : 0;
  }

  async function loadImportance(force) {
    const n = completeCount();
    if (!force && (n === importanceCount || Date.now() - importanceAt < IMPORTANCE_EVERY_MS)) return;
    importanceCount = n;
    importanceAt = Date.now();
    const data = await getJSON("/api/v1/studies/" + studyId + "/importance");
    HPS.importance(el("plot-importance"), el("importance-note"), data);
  }

  // ---- plots: merge new points and curves into the arrays already drawn

  function mergePoints(pts) {
    const p = plotData.points;
    const index = new Map(p.number.map((n, i) => [n, i]));
    pts.number.forEach((n, j) => {
      let i = index.get(n);
      if (i === undefined) {
        i = p.number.length;
        index.set(n, i);
        p.number.push(n);
      }
      p.state[i] = pts.state[j];
      p.value[i] = pts.value[j];
      for (const k of Object.keys(pts.axes)) (p.axes[k] = p.axes[k] || [])[i] = pts.axes[k][j];
      for (const k of Object.keys(pts.labels)) (p.labels[k] = p.labels[k] || [])[i] = pts.labels[k][j];
    });
  }

  function mergeCurves(list, running) {
    const byNumber = new Map(plotData.curves.map((c) => [c.number, c]));
    list.forEach((c) => byNumber.set(c.number, c));
    const all = Array.from(byNumber.values());
    const sign = plotData.direction === "minimize" ? 1 : -1;
    const best = all.filter((c) => c.state === "COMPLETE" && c.value !== null)
      .sort((a, b) => sign * (a.value - b.value) || a.number - b.number).slice(0, CURVE_TOP);
    const pruned = all.filter((c) => c.state === "PRUNED")
      .sort((a, b) => b.number - a.number).slice(0, CURVE_PRUNED);
    const live = new Set(running);
    const runningCurves = all.filter((c) => live.has(c.number) && (c.state === "RUNNING" || c.state === "LOST"));
    plotData.curves = best.concat(pruned, runningCurves);
  }

  // ---- table: rows keep their sort key (data-key) so new ones go where the server puts them

  function compareValues(x, y) {
    if (Array.isArray(x)) {
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const c = compareValues(x[i], y[i]);
        if (c) return c;
      }
      return x.length - y.length;
    }
    if (typeof x === "number") return x - y;
    return x < y ? -1 : x > y ? 1 : 0;
  }

  // Same order as the server: missing values last, `desc` reverses the rest, ties by number.
  function before(keyA, numA, keyB, numB) {
    if (keyA === null || keyB === null) {
      if (keyA !== keyB) return keyA === null ? 1 : -1;
    } else {
      let c = keyA[0] - keyB[0] || compareValues(keyA[1], keyB[1]);
      if (view.desc) c = -c;
      if (c) return c;
    }
    return numA - numB;
  }

  function setRank(tr, rank) {
    tr.dataset.rank = String(rank);
    const cell = tr.querySelector("td.rank");
    if (cell) cell.textContent = String(rank);
    if (view.sort === "rank") tr.dataset.key = JSON.stringify([0, rank]);
  }

  function insertRow(r) {
    const holder = document.createElement("tbody");
    holder.innerHTML = r.html;
    const tr = holder.rows[0];
    const rows = Array.from(tbody.rows);
    const key = JSON.parse(r.key);
    let pos = rows.findIndex((x) => before(key, r.number, JSON.parse(x.dataset.key), Number(x.dataset.number)) < 0);
    if (pos === -1) pos = rows.length;
    if (pos === rows.length && rows.length >= view.limit) return; // belongs on a later page
    if (pos === 0 && view.offset > 0 && rows.length) return; // belongs on an earlier page
    tbody.insertBefore(tr, rows[pos] || null);
    if (tbody.rows.length > view.limit) tbody.lastElementChild.remove();
    const empty = el("trials-empty");
    if (empty) empty.remove();
  }

  function updateRows(rows) {
    const batch = new Set(rows.map((r) => r.number));
    const newlyComplete = [];
    for (const r of rows) {
      const old = tbody.querySelector('tr[data-number="' + r.number + '"]');
      if (r.state === "COMPLETE" && !(old && old.dataset.state === "COMPLETE")) newlyComplete.push(r);
      if (old) old.remove();
    }
    // Every shown trial that a newly complete one beats moves down one rank.
    newlyComplete.sort((a, b) => a.rank - b.rank);
    for (const r of newlyComplete) {
      for (const tr of Array.from(tbody.rows)) {
        if (batch.has(Number(tr.dataset.number)) || tr.dataset.rank === "") continue;
        const rank = Number(tr.dataset.rank);
        if (rank >= r.rank) setRank(tr, rank + 1);
      }
    }
    if (view.top !== null) {
      for (const tr of Array.from(tbody.rows)) if (Number(tr.dataset.rank) > view.top) tr.remove();
    }
    rows.filter((r) => r.show).forEach(insertRow);
  }

  // The study's columns changed (the user's own code reported a metric no ended trial had
  // reported before): take this view's table from the page anew. Returns the page's cursor.
  async function reloadTable() {
    const r = await fetch(window.location.href, { headers: { Accept: "text/html", "Cache-Control": "no-cache" } });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const page = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = page.getElementById("trials");
    table.replaceChild(document.importNode(fresh.tHead, true), table.tHead);
    tbody.innerHTML = fresh.tBodies[0].innerHTML;
    table.dataset.columns = fresh.dataset.columns;
    const empty = el("trials-empty");
    if (empty && tbody.rows.length) empty.remove();
    return Number(page.getElementById("study").dataset.cursor) || 0;
  }

  // ---- polling

  // The last feed's URL and version (ETag): asked again with If-None-Match, an unchanged
  // study answers 304 with nothing to merge.
  let lastFeed = { url: "", etag: "" };
  async function getFeed(url) {
    const headers = { Accept: "application/json" };
    if (lastFeed.url === url && lastFeed.etag) headers["If-None-Match"] = lastFeed.etag;
    const r = await fetch(url, { headers, cache: "no-store" });
    if (r.status === 304) return null;
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    lastFeed = { url, etag: r.headers.get("ETag") || "" };
    return r.json();
  }

  async function poll() {
    let live;
    try {
      live = await getFeed(root.dataset.liveUrl + "&cursor=" + cursor);
      if (live === null) {
        setTimeout(poll, pollMs); // nothing changed since the last answer
        return;
      }
      if (live.columns !== table.dataset.columns) {
        // Rows that ended after the page's snapshot come again in the next poll.
        live.cursor = Math.min(live.cursor, await reloadTable());
        live.rows = [];
      }
    } catch (err) {
      setTimeout(poll, pollMs * 2); // the server may be restarting: try again
      return;
    }
    el("study-header").innerHTML = live.header_html;
    el("pager").outerHTML = live.pager_html;
    for (const option of viewForm.querySelector("select[name=state]").options) {
      if (live.state_options[option.value]) option.textContent = live.state_options[option.value];
    }
    updateRows(live.rows);
    const hadCurves = plotData.curves.length;
    mergePoints(live.points);
    mergeCurves(live.curves, live.running);
    if (live.points.number.length) drawPoints();
    if (live.curves.length || hadCurves !== plotData.curves.length) drawCurves();
    cursor = live.cursor;
    root.dataset.cursor = String(cursor);
    if (live.active) {
      loadImportance(false).catch(() => {});
      setTimeout(poll, pollMs);
    } else {
      root.dataset.active = "false";
      document.querySelectorAll("form[data-confirm]").forEach((f) => f.remove());
      loadImportance(true).catch(() => {});
    }
  }

  async function start() {
    plotData = await getJSON("/api/v1/studies/" + studyId + "/plots");
    drawPoints();
    drawCurves();
    await loadImportance(true);
    root.dataset.drawn = "true";
    if (root.dataset.active === "true") setTimeout(poll, pollMs);
  }

  start().catch((err) => {
    root.dataset.drawn = "error";
    const note = el("importance-note");
    note.textContent = "Could not load the plots: " + err.message;
  });
})();
