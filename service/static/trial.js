// The trial page: its learning curves, from the JSON the server put in the page.
"use strict";
(function () {
  const source = document.getElementById("trial-data");
  const div = document.getElementById("plot-trial");
  if (!source || !div) return;
  const data = JSON.parse(source.textContent);
  const others = document.getElementById("plot-trial-others");
  HPS.curves(div, data);
  if (others) {
    HPS.otherCurves(others, data);
    others.dataset.drawn = "true";
  }
  div.dataset.drawn = "true";
})();
