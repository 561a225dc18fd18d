// The compare page: best-so-far curves of the chosen studies on one plot.
"use strict";
(function () {
  const root = document.getElementById("compare");
  const div = document.getElementById("plot-compare");
  if (!root || !div) return;
  const ids = root.dataset.ids.split(",").map((s) => "ids=" + encodeURIComponent(s)).join("&");
  fetch("/api/v1/compare?" + ids, { headers: { Accept: "application/json" } })
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then((data) => { HPS.compare(div, data); div.dataset.drawn = "true"; })
    .catch((err) => { div.textContent = "Could not load the comparison: " + err.message; });
})();
