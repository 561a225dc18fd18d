// hpsearch plots: turn the compact arrays the server shapes (/api/v1/studies/{id}/plots)
// into plotly.js figures. No data is fetched here; study.js, trial.js and compare.js do it.
"use strict";
(function () {
  const STATE_COLOR = { C: "#1d4ed8", P: "#b45309", F: "#b91c1c", R: "#6d28d9" };
  const BEST_COLOR = "#ea580c";
  const PALETTE = ["#1d4ed8", "#059669", "#db2777", "#7c3aed", "#0891b2",
    "#65a30d", "#ea580c", "#4f46e5", "#be123c", "#0d9488", "#a16207", "#475569"];
  // Nothing may leave the app: no "share to cloud" button, no plotly logo link.
  const CONFIG = {
    displaylogo: false, responsive: true, showSendToCloud: false, plotlyServerURL: "",
    showLink: false, modeBarButtonsToRemove: ["lasso2d", "select2d"],
  };
  const GL_ABOVE = 3000; // draw more points than this with WebGL

  function layout(extra) {
    return Object.assign({
      margin: { l: 64, r: 16, t: 12, b: 48 },
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1f2328" },
      paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff", hovermode: "closest",
      legend: { orientation: "h", y: -0.22 },
    }, extra || {});
  }
  function title(text) { return { text: text, standoff: 8 }; }
  function xAxis(text, extra) { return Object.assign({ title: title(text), zeroline: false }, extra || {}); }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (v !== 0 && (Math.abs(v) < 1e-4 || Math.abs(v) >= 1e6)) {
      return v.toExponential(3).replace(/\.?0+e/, "e");
    }
    return String(Number(v.toPrecision(4)));
  }
  // A minimised metric is a loss or an error: drawn on a log axis when all positive.
  function isLoss(direction) { return direction !== "maximize"; }

  // A log axis labelled in plain numbers (0.001, 0.01, ... or 1-2-5 steps on narrow
  // ranges), instead of plotly's bare-digit minor labels; narrow ranges are left to plotly.
  function logAxis(values, extra) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) if (v !== null && v > 0) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (!(lo < hi)) return Object.assign({}, extra || {}); // one value: nothing to log-scale
    const axis = Object.assign({ type: "log" }, extra || {});
    const decades = Math.log10(hi) - Math.log10(lo);
    if (decades < 0.6) {
      // Enough significant digits that neighbouring ticks differ (2.056, 2.058, not 2.06 x7).
      const digits = Math.min(8, Math.max(3, Math.ceil(Math.log10(hi / (hi - lo))) + 2));
      return Object.assign(axis, { tickformat: "." + digits + "~g" });
    }
    const steps = decades > 3 ? [1] : decades > 1.3 ? [1, 3] : [1, 2, 5];
    const vals = [];
    for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of steps) {
        const v = m * Math.pow(10, e);
        if (v >= lo / 1.6 && v <= hi * 1.6) vals.push(Number(v.toPrecision(3)));
      }
    }
    return Object.assign(axis, { tickvals: vals, ticktext: vals.map(fmt) });
  }
  function valueAxis(label, loss, values, extra) {
    const base = Object.assign({ title: title(label) }, extra || {});
    return loss && allPositive(values) ? logAxis(values, base) : base;
  }
  function objectiveAxis(data, values, extra) {
    return valueAxis(data.metric, isLoss(data.direction), values, extra);
  }
  function allPositive(values) { return values.length > 0 && values.every((v) => v === null || v > 0); }
  // Show a message instead of a plot (text null: make room for the plot again). Clearing
  // the div's text must never touch a drawn plot: plotly would then update a plot whose
  // DOM is gone and draw nothing.
  function message(div, text) {
    if (text !== null) {
      Plotly.purge(div);
      div.textContent = text;
      div.dataset.message = "true";
    } else if (div.dataset.message) {
      div.textContent = "";
      delete div.dataset.message;
    }
  }
  function scatterType(n) { return n > GL_ABOVE ? "scattergl" : "scatter"; }
  function draw(div, traces, lay) { return Plotly.react(div, traces, lay, CONFIG); }

  // Order of the ended trials by number, with the value columns alongside.
  function byNumber(points) {
    const idx = points.number.map((_, i) => i);
    idx.sort((a, b) => points.number[a] - points.number[b]);
    return idx;
  }

  function bestSoFar(xs, ys, direction) {
    let best = null;
    const out = [];
    for (let i = 0; i < xs.length; i++) {
      const v = ys[i];
      if (v !== null && (best === null || (direction === "minimize" ? v < best : v > best))) best = v;
      out.push(best);
    }
    return out;
  }

  // Optimisation history: every finished trial's value, pruned ones apart, best so far.
  function history(div, data) {
    const p = data.points, order = byNumber(p);
    const groups = { C: { x: [], y: [] }, P: { x: [], y: [] } };
    const cx = [], cy = [];
    for (const i of order) {
      const s = p.state[i], v = p.value[i];
      if (v === null || !(s in groups)) continue;
      groups[s].x.push(p.number[i]);
      groups[s].y.push(v);
      if (s === "C") { cx.push(p.number[i]); cy.push(v); }
    }
    const n = groups.C.x.length + groups.P.x.length;
    if (!n) {
      message(div, "No finished trials yet.");
      return 0;
    }
    message(div, null);
    const type = scatterType(n);
    const traces = [
      { type: type, mode: "markers", name: "complete", x: groups.C.x, y: groups.C.y,
        marker: { color: STATE_COLOR.C, size: 7, opacity: 0.85 },
        hovertemplate: "trial %{x}<br>" + data.metric + " %{y:.4g}<extra>complete</extra>" },
      { type: type, mode: "markers", name: "pruned (last value)", x: groups.P.x, y: groups.P.y,
        marker: { color: STATE_COLOR.P, size: 8, symbol: "x-thin", line: { width: 2, color: STATE_COLOR.P } },
        hovertemplate: "trial %{x}<br>" + data.metric + " %{y:.4g}<extra>pruned</extra>" },
      { type: "scatter", mode: "lines", name: "best so far", x: cx, y: bestSoFar(cx, cy, data.direction),
        line: { color: BEST_COLOR, width: 2, shape: "hv" }, hoverinfo: "skip" },
    ];
    const ys = groups.C.y.concat(groups.P.y);
    draw(div, traces, layout({
      xaxis: xAxis("trial number"),
      yaxis: objectiveAxis(data, ys),
    }));
    return n;
  }

  function axisValues(data, axis) {
    const p = data.points, col = p.axes[axis.name] || [];
    const labels = p.labels[axis.knob];
    const out = { x: [], y: [], color: [], text: [] };
    for (let i = 0; i < p.number.length; i++) {
      const s = p.state[i], v = p.value[i], a = col[i];
      if (v === null || a === null || a === undefined || s === "F") continue;
      out.x.push(a);
      out.y.push(v);
      out.color.push(STATE_COLOR[s]);
      const shown = labels ? labels[i] : fmt(a);
      out.text.push("trial " + p.number[i] + "<br>" + axis.label + ": " + shown + (s === "P" ? " (pruned)" : ""));
    }
    return out;
  }

  // One small scatter per search axis against the objective (log axes stay log).
  function paramPlots(container, data) {
    let total = 0;
    data.axes.forEach((axis, k) => {
      const id = container.id + "-" + k;
      let div = document.getElementById(id);
      if (!div) {
        div = document.createElement("div");
        div.id = id;
        div.className = "plot";
        div.dataset.axis = axis.name;
        container.appendChild(div);
      }
      const d = axisValues(data, axis);
      total += d.x.length;
      if (!d.x.length) {
        message(div, "No finished trials yet.");
        return;
      }
      message(div, null);
      let xaxis = xAxis(axis.label);
      if (axis.kind === "categorical") xaxis.type = "category";
      else if (axis.log) xaxis = logAxis(d.x, xaxis);
      draw(div, [{ type: scatterType(d.x.length), mode: "markers", x: d.x, y: d.y, text: d.text,
        hovertemplate: "%{text}<br>" + data.metric + " %{y:.4g}<extra></extra>",
        marker: { color: d.color, size: 7, opacity: 0.8 }, showlegend: false }],
      layout({ margin: { l: 56, r: 10, t: 8, b: 48 }, xaxis: xaxis, yaxis: objectiveAxis(data, d.y) }));
    });
    if (!data.axes.length) container.textContent = "No searched parameters.";
    return total;
  }

  // Parallel coordinates have no log axes: plot log10 values, labelled with the real ones.
  function logTicks(values) {
    const axis = logAxis(values.map((v) => Math.pow(10, v)));
    if (!axis.tickvals) return {};
    return { tickvals: axis.tickvals.map(Math.log10), ticktext: axis.ticktext };
  }

  // Parallel coordinates over the complete trials: one axis per parameter, then the objective.
  function parallel(div, data) {
    const p = data.points, rows = [];
    for (let i = 0; i < p.number.length; i++) if (p.state[i] === "C" && p.value[i] !== null) rows.push(i);
    if (!rows.length || !data.axes.length) {
      message(div, data.axes.length ? "No complete trials yet." : "No searched parameters.");
      return 0;
    }
    message(div, null);
    const dims = data.axes.map((axis) => {
      const col = p.axes[axis.name] || [];
      const raw = rows.map((i) => col[i]);
      if (axis.kind === "categorical") {
        const cats = Array.from(new Set(axis.choices.concat(raw.map(String))));
        return { label: axis.label, values: raw.map((v) => cats.indexOf(String(v))),
          tickvals: cats.map((_, j) => j), ticktext: cats };
      }
      const pos = raw.filter((v) => v > 0);
      const wide = pos.length && pos.reduce((a, b) => Math.max(a, b)) >= 10 * pos.reduce((a, b) => Math.min(a, b));
      if (axis.log && wide) {
        const vals = raw.map((v) => (v > 0 ? Math.log10(v) : null));
        return Object.assign({ label: axis.label + " (log)", values: vals },
          logTicks(vals.filter((v) => v !== null)));
      }
      return { label: axis.label, values: raw };
    });
    const values = rows.map((i) => p.value[i]);
    dims.push({ label: data.metric, values: values });
    draw(div, [{ type: "parcoords", dimensions: dims,
      line: { color: values, colorscale: "Viridis", reversescale: data.direction === "minimize",
        showscale: true, colorbar: { title: { text: data.metric } } } }],
    layout({ margin: { l: 70, r: 70, t: 48, b: 24 } }));
    return rows.length;
  }

  // The epochs a curve's values belong to: its own list (the user's own code, whose
  // reports may skip epochs), else 0, 1, 2, ... (index 0: before any update).
  function epochsOf(c, values) {
    return c.epoch ? c.epoch.slice(0, values.length) : values.map((_, e) => e);
  }
  function lastEpoch(c) {
    return c.epoch ? (c.epoch.length ? c.epoch[c.epoch.length - 1] : 0) : c.train_loss.length;
  }

  // The right panel's losses: the one the divergence rule watches (solid) and a built-in
  // model's dev loss (dotted).
  function lossTraces(c, data, name, color, group) {
    const traces = [];
    const losses = [["train_loss", "solid", data.loss_metric || "train loss"], ["dev_loss", "dot", "dev loss"]];
    for (const [key, dash, label] of losses) {
      if (!c[key].length) continue;
      // Markers where the reports are (the user's code may report every few epochs), and
      // on a curve of one point, which a line alone would not show.
      const mode = c.epoch || c[key].length === 1 ? "lines+markers" : "lines";
      traces.push({ type: "scatter", mode: mode, x: epochsOf(c, c[key]), y: c[key],
        xaxis: "x2", yaxis: "y2", name: name + " " + label, legendgroup: group, showlegend: false,
        line: { color: color, width: 1.6, dash: dash }, marker: { size: 4 }, connectgaps: !!c.epoch,
        hovertemplate: name + " " + label + "<br>epoch %{x}<br>%{y:.4g}<extra></extra>" });
    }
    return traces;
  }

  // A pruned trial's divergence limit (dashed) and, when it diverged, where it was cut.
  function limitTraces(c, name, color, group) {
    if (c.threshold === null || c.state !== "PRUNED") return [];
    const first = c.epoch && c.epoch.length ? c.epoch[0] : 0;
    const last = lastEpoch(c);
    const traces = [{ type: "scatter", mode: "lines", x: [first, Math.max(last, first + (c.epoch ? 1 : 2))],
      y: [c.threshold, c.threshold], xaxis: "x2", yaxis: "y2", name: name + " divergence limit",
      legendgroup: group, showlegend: false, line: { color: color, width: 1.2, dash: "dash" },
      hovertemplate: name + ": divergence limit %{y:.4g}<extra></extra>" }];
    if (c.reason === "diverged") {
      traces.push({ type: "scatter", mode: "markers", x: [last], y: [c.threshold],
        xaxis: "x2", yaxis: "y2", name: name + " cut", legendgroup: group, showlegend: false,
        marker: { symbol: "x", size: 11, color: color },
        hovertemplate: name + ": loss passed the limit " + (c.epoch ? "at" : "during") +
          " epoch %{x}<extra>diverged</extra>" });
    }
    return traces;
  }

  // Learning curves: the objective per epoch (left) and the loss (right), with each pruned
  // trial's divergence limit dashed, so the user sees where a run was cut.
  function curves(div, data) {
    const traces = [];
    const list = data.curves.slice();
    if (!list.length) {
      message(div, "No curves yet: they appear as trials run.");
      return 0;
    }
    message(div, null);
    const rank = { COMPLETE: 0, RUNNING: 1, LOST: 1, PRUNED: 2, FAIL: 3 };
    list.sort((a, b) => (rank[a.state] ?? 0) - (rank[b.state] ?? 0) ||
      ((a.value ?? Infinity) - (b.value ?? Infinity)) * (data.direction === "minimize" ? 1 : -1) ||
      a.number - b.number);
    let ys = [];
    list.forEach((c, k) => {
      const color = PALETTE[k % PALETTE.length];
      const name = "trial " + c.number + (c.state === "COMPLETE" ? "" : " (" + c.state.toLowerCase() + ")");
      const group = "t" + c.number;
      traces.push({ type: "scatter", mode: "lines+markers", x: epochsOf(c, c.objective), y: c.objective,
        name: name, legendgroup: group, line: { color: color, width: 2 }, marker: { size: 4 },
        connectgaps: !!c.epoch,
        hovertemplate: name + "<br>epoch %{x}<br>" + data.metric + " %{y:.4g}<extra></extra>" });
      const right = lossTraces(c, data, name, color, group).concat(limitTraces(c, name, color, group));
      right.forEach((t) => { if (t.mode !== "markers") ys = ys.concat(t.y); });
      traces.push(...right);
    });
    const objectiveValues = list.reduce((acc, c) => acc.concat(c.objective), []);
    // Side by side on a wide screen, stacked on a narrow one (the div is taller there).
    const narrow = div.clientWidth < 640;
    const left = narrow ? { x: [0, 1], y: [0.6, 1] } : { x: [0, 0.46], y: [0, 1] };
    const right = narrow ? { x: [0, 1], y: [0, 0.4] } : { x: [0.54, 1], y: [0, 1] };
    const lossLabel = data.loss_metric || (narrow ? "loss" : "loss (solid: train, dotted: dev)");
    // Room around the reported epochs' markers (a range from 0 would cut the first in half).
    const epochRange = list.some((c) => c.epoch) ? "normal" : "nonnegative";
    const none = objectiveValues.every((v) => v === null) ? [{ text: "no " + data.metric + " reported",
      xref: "x domain", yref: "y domain", x: 0.5, y: 0.5, showarrow: false, font: { color: "#57606a" } }] : [];
    draw(div, traces, layout({
      annotations: none,
      xaxis: xAxis("epoch", { domain: left.x, rangemode: epochRange, anchor: "y" }),
      yaxis: objectiveAxis(data, objectiveValues, { domain: left.y, anchor: "x" }),
      xaxis2: xAxis("epoch", { domain: right.x, anchor: "y2", rangemode: epochRange }),
      yaxis2: valueAxis(lossLabel, true, ys, { anchor: "x2", domain: right.y }),
      legend: { orientation: "h", y: narrow ? -0.12 : -0.25 },
      margin: { l: 64, r: 16, t: 12, b: 64 },
    }));
    return list.length;
  }

  // One small plot per other metric a trial reported (its own page), against epoch.
  function otherCurves(container, data) {
    const c = data.curves[0], names = Object.keys((c && c.others) || {});
    names.forEach((metric, k) => {
      const div = document.createElement("div");
      div.id = container.id + "-" + k;
      div.className = "plot";
      div.dataset.metric = metric;
      container.appendChild(div);
      const ys = c.others[metric];
      draw(div, [{ type: "scatter", mode: "lines+markers", x: epochsOf(c, ys), y: ys, name: metric,
        connectgaps: true, line: { color: PALETTE[k % PALETTE.length], width: 2 }, marker: { size: 4 },
        hovertemplate: "epoch %{x}<br>" + metric + " %{y:.4g}<extra></extra>", showlegend: false }],
      layout({ margin: { l: 56, r: 10, t: 8, b: 48 }, xaxis: xAxis("epoch", { rangemode: "nonnegative" }),
        yaxis: { title: title(metric) } }));
    });
    return names.length;
  }

  function importance(div, note, data) {
    if (!data.data.length) {
      Plotly.purge(div);
      div.hidden = true;
      note.textContent = data.complete < data.min_trials
        ? "Shown once " + data.min_trials + " trials have completed (" + data.complete + " so far)."
        : "Needs at least two searched parameters that every complete trial has.";
      return 0;
    }
    div.hidden = false;
    note.textContent = "";
    const rows = data.data.slice().reverse();
    draw(div, [{ type: "bar", orientation: "h", x: rows.map((r) => r.importance), y: rows.map((r) => r.label),
      marker: { color: STATE_COLOR.C }, hovertemplate: "%{y}: %{x:.3f}<extra></extra>" }],
    layout({ margin: { l: 16, r: 16, t: 8, b: 40 }, yaxis: { automargin: true },
      xaxis: { title: title("importance"), range: [0, 1] } }));
    return rows.length;
  }

  // Several studies' best-so-far curves on one plot.
  function compare(div, data) {
    const traces = data.data.map((s, k) => ({
      type: "scatter", mode: "lines+markers", x: s.number, y: s.best,
      name: s.name + " (#" + s.study_id + ", " + (s.direction === "minimize" ? "min " : "max ") + s.metric + ")",
      line: { color: PALETTE[k % PALETTE.length], width: 2, shape: "hv" }, marker: { size: 5 },
    }));
    const ys = data.data.reduce((acc, s) => acc.concat(s.best), []);
    const metrics = new Set(data.data.map((s) => s.metric));
    const loss = data.data.every((s) => isLoss(s.direction));
    draw(div, traces, layout({
      xaxis: xAxis("trial number"),
      yaxis: loss && allPositive(ys)
        ? logAxis(ys, { title: title(Array.from(metrics).join(" / ") + " (best so far)") })
        : { title: title(Array.from(metrics).join(" / ") + " (best so far)") },
    }));
    return traces.length;
  }

  window.HPS = { history, paramPlots, parallel, curves, otherCurves, importance, compare, fmt };
})();
