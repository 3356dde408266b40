// Inflow's charts: uPlot line charts drawn from the JSON the server embeds beside each chart
// (templates/charts.html). Partial periods (complete: false) are a dashed segment with hollow
// points; bands shade windows (a test's baseline and test window); levels are dashed
// horizontal lines over a window (its value). Colours come from CSS variables, so a theme
// change redraws every chart.
(function () {
  "use strict";
  var charts = new Map(); // element -> uPlot
  var DAY = 86400;

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function seconds(text, end) {
    // a date (YYYY-MM-DD) is its UTC midnight; end=true: the midnight after it
    var ms = Date.parse(text.length === 10 ? text + "T00:00:00Z" : text);
    return ms / 1000 + (end && text.length === 10 ? DAY : 0);
  }

  function compact(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    var a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
    if (Number.isInteger(v)) return v.toLocaleString("en");
    return v.toLocaleString("en", { maximumFractionDigits: a < 1 ? 3 : 2 });
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function when(ts, granularity) {
    var d = new Date(ts * 1000);
    var day = d.getUTCDate() + " " + MONTHS[d.getUTCMonth()];
    if (granularity === "month") return MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear();
    if (granularity === "week") return "Week of " + day + " " + d.getUTCFullYear();
    return day + " " + d.getUTCFullYear();
  }

  // One chart's uPlot data and series: per data series a solid line over its complete periods
  // and a dashed one over its partial periods (joined to the complete point before them).
  function build(spec, granularity) {
    var xs = new Set();
    spec.series.forEach(function (s) {
      s.data.points.forEach(function (p) { xs.add(seconds(p.periodStart)); });
    });
    var x = Array.from(xs).sort(function (a, b) { return a - b; });
    var index = new Map(x.map(function (t, i) { return [t, i]; }));
    var data = [x];
    var series = [{}];
    var meta = [];
    spec.series.forEach(function (s, n) {
      var values = x.map(function () { return null; });
      var complete = x.map(function () { return true; });
      s.data.points.forEach(function (p) {
        var i = index.get(seconds(p.periodStart));
        values[i] = p.value;
        complete[i] = p.complete;
      });
      var solid = values.map(function (v, i) { return complete[i] ? v : null; });
      var partial = values.map(function (v, i) {
        if (!complete[i]) return v;
        var nextPartial = i + 1 < x.length && !complete[i + 1] && values[i + 1] !== null;
        var prevPartial = i > 0 && !complete[i - 1] && values[i - 1] !== null;
        return nextPartial || prevPartial ? v : null;
      });
      var hollow = values.map(function (v, i) { return v !== null && !complete[i] ? i : -1; })
        .filter(function (i) { return i >= 0; });
      var colour = css("--chart-" + (n % 8)) || "#2456c6";
      var dense = x.length > 60;
      // the partial series first: the solid points are drawn over the joining point
      series.push({
        label: s.label + " (partial)", stroke: colour, width: 2, dash: [5, 4], spanGaps: false,
        points: { show: true, size: 7, width: 2, stroke: colour, fill: css("--surface") || "#fff",
                  filter: function () { return hollow; } },
      });
      series.push({
        label: s.label, stroke: colour, width: 2, spanGaps: false,
        points: { show: !dense, size: 5, fill: colour, stroke: colour },
      });
      data.push(partial, solid);
      meta.push({ label: s.label, values: values, complete: complete, colour: colour });
    });
    return { data: data, series: series, meta: meta, granularity: granularity };
  }

  function tooltip(el) {
    var tip = document.createElement("div");
    tip.className = "chart-tooltip";
    tip.setAttribute("aria-hidden", "true");
    el.appendChild(tip);
    return tip;
  }

  function make(el) {
    var source = document.getElementById(el.dataset.chart);
    if (!source || typeof uPlot === "undefined") return;
    var spec = JSON.parse(source.textContent);
    var granularity = el.dataset.granularity || "day";
    var built = build(spec, granularity);
    var height = parseInt(el.dataset.height || "220", 10);
    var muted = css("--muted"), grid = css("--chart-grid"), text = css("--text");
    var bands = (spec.bands || []).map(function (b) {
      return { from: seconds(b.from), to: seconds(b.to, true), kind: b.kind, label: b.label };
    });
    var levels = (spec.levels || []).map(function (l) {
      return { from: seconds(l.from), to: seconds(l.to, true), value: l.value, kind: l.kind };
    });
    var xs = built.data[0];
    var lo = Math.min.apply(null, xs.concat(bands.map(function (b) { return b.from; })));
    var hi = Math.max.apply(null, xs.concat(bands.map(function (b) { return b.to; })));
    if (!isFinite(lo)) { lo = 0; hi = DAY; }
    if (lo === hi) { lo -= DAY / 2; hi += DAY / 2; }
    var tip = tooltip(el);
    var axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 },
                 font: "12px system-ui, sans-serif" };
    var opts = {
      width: Math.max(el.clientWidth, 200),
      height: height,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      scales: { x: { time: true, range: function () { return [lo, hi]; } } },
      series: built.series,
      axes: [
        Object.assign({}, axis, { space: 60 }),
        Object.assign({}, axis, { size: 56, values: function (u, splits) { return splits.map(compact); } }),
      ],
      hooks: {
        drawClear: [function (u) {
          var ctx = u.ctx;
          bands.forEach(function (b) {
            var x0 = u.valToPos(b.from, "x", true), x1 = u.valToPos(b.to, "x", true);
            ctx.fillStyle = css(b.kind === "test" ? "--band-test" : "--band-baseline");
            ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
            ctx.fillStyle = muted;
            ctx.font = 12 * devicePixelRatio + "px system-ui, sans-serif";
            ctx.fillText(b.label, x0 + 6 * devicePixelRatio, u.bbox.top + 14 * devicePixelRatio);
          });
        }],
        draw: [function (u) {
          var ctx = u.ctx;
          levels.forEach(function (l) {
            if (l.value === null || l.value === undefined) return;
            var y = u.valToPos(l.value, "y", true);
            ctx.save();
            ctx.strokeStyle = l.kind === "test" ? css("--chart-0") : text;
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.setLineDash([8 * devicePixelRatio, 4 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(u.valToPos(l.from, "x", true), y);
            ctx.lineTo(u.valToPos(l.to, "x", true), y);
            ctx.stroke();
            ctx.restore();
          });
        }],
        setCursor: [function (u) {
          var i = u.cursor.idx;
          if (i === null || i === undefined || u.cursor.left < 0) { tip.style.display = "none"; return; }
          var rows = built.meta.map(function (m) {
            var v = m.values[i];
            return '<div class="t-row"><span class="swatch" style="background:' + m.colour + '"></span>' +
              escape(m.label) + '<span class="t-val">' + compact(v) + (v !== null && !m.complete[i] ? " (partial)" : "") + "</span></div>";
          });
          tip.innerHTML = '<div class="t-when">' + when(xs[i], granularity) + "</div>" + rows.join("");
          tip.style.display = "block";
          var left = u.over.offsetLeft + u.cursor.left + 12;
          if (left + tip.offsetWidth > el.clientWidth) left = u.over.offsetLeft + u.cursor.left - tip.offsetWidth - 12;
          tip.style.left = Math.max(0, left) + "px";
          tip.style.top = u.over.offsetTop + 8 + "px";
        }],
      },
    };
    var chart = new uPlot(opts, built.data, el);
    charts.set(el, chart);
    el.dataset.drawn = "true";
  }

  function escape(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; });
  }

  function drop(el) {
    var chart = charts.get(el);
    if (chart) chart.destroy();
    charts.delete(el);
    el.querySelectorAll(".chart-tooltip").forEach(function (t) { t.remove(); });
    delete el.dataset.drawn;
  }

  function drawAll(scope) {
    charts.forEach(function (_c, el) { if (!document.contains(el)) drop(el); });
    (scope || document).querySelectorAll(".chart[data-chart]").forEach(function (el) {
      if (!charts.has(el)) make(el);
    });
  }

  function redrawAll() {
    Array.from(charts.keys()).forEach(function (el) { drop(el); make(el); });
  }

  var resize = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(function () {
    charts.forEach(function (chart, el) {
      var width = Math.max(el.clientWidth, 200);
      if (Math.abs(chart.width - width) > 2) chart.setSize({ width: width, height: chart.height });
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document);
    if (resize) document.querySelectorAll("main").forEach(function (m) { resize.observe(m); });
    new MutationObserver(redrawAll).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);
  });
  document.addEventListener("htmx:afterSettle", function () { drawAll(document); });
  window.inflowCharts = { charts: charts, redraw: redrawAll };
})();
