/* Charts for the recommendation pages (vendored Chart.js; data from the json_script block).
 *
 * Canvases carry data-chart="<key>" and read #chart-data[<key>]. Drawing is idempotent and runs on
 * page load and after every htmx swap (the polled status swaps the result section in out-of-band).
 */
(function () {
  "use strict";

  var CURRENT = "#8d99a6";
  var PROPOSED = "#1c6dd0";

  function pct(value, digits) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(digits) + "%";
  }

  function chartData() {
    var node = document.getElementById("chart-data");
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (e) {
      return null;
    }
  }

  function barChart(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { label: "Current", data: data.before, backgroundColor: CURRENT, borderRadius: 2 },
          { label: "Proposed", data: data.after, backgroundColor: PROPOSED, borderRadius: 2 }
        ]
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { beginAtZero: true, ticks: { callback: function (v) { return pct(v, 0); } } },
          y: { ticks: { autoSkip: false } }
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (ctx) { return ctx.dataset.label + ": " + pct(ctx.parsed.x, 1); }
            }
          }
        }
      }
    });
  }

  function lineChart(canvas, data) {
    return new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.dates,
        datasets: [
          { label: "Current", data: data.before, borderColor: CURRENT, backgroundColor: CURRENT,
            pointRadius: 0, borderWidth: 2, tension: 0.1 },
          { label: "Proposed", data: data.after, borderColor: PROPOSED, backgroundColor: PROPOSED,
            pointRadius: 0, borderWidth: 2, tension: 0.1 }
        ]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { maxTicksLimit: canvas.clientWidth < 500 ? 4 : 8, maxRotation: 0, autoSkipPadding: 12,
                        callback: function (v) { return String(this.getLabelForValue(v)).slice(0, 7); } } },
          y: { title: { display: true, text: "Growth of $1" },
               ticks: { callback: function (v) { return "$" + Number(v).toFixed(2); } } }
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (ctx) { return ctx.dataset.label + ": $" + Number(ctx.parsed.y).toFixed(2); }
            }
          }
        }
      }
    });
  }

  function draw() {
    if (!window.Chart) return;
    var canvases = document.querySelectorAll("canvas[data-chart]:not([data-drawn])");
    if (!canvases.length) return;
    var data = chartData();
    if (!data) return;
    canvases.forEach(function (canvas) {
      var series = data[canvas.getAttribute("data-chart")];
      if (!series) return;
      canvas.setAttribute("data-drawn", "1");
      if (canvas.getAttribute("data-kind") === "line") {
        lineChart(canvas, series);
      } else {
        barChart(canvas, series);
      }
    });
  }

  function bindPrint() {
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.addEventListener("click", function () { window.print(); });
    });
  }

  function release(event) {
    var target = event.detail && event.detail.target;
    if (!window.Chart || !target || !target.querySelectorAll) return;
    target.querySelectorAll("canvas[data-drawn]").forEach(function (canvas) {
      var chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  // A poll answered by the login page (session expired): go there instead of swapping it into the status box.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.responseURL && xhr.responseURL.indexOf("/accounts/login/") !== -1) {
      event.detail.shouldSwap = false;
      var login = new URL(xhr.responseURL);
      login.searchParams.set("next", window.location.pathname);
      window.location.assign(login.toString());
    }
  });
  document.addEventListener("htmx:oobBeforeSwap", release);
  document.addEventListener("htmx:beforeSwap", release);
  if (window.htmx) {
    window.htmx.onLoad(draw); // initial load and every swapped-in element (oob swaps included)
  }
  document.addEventListener("DOMContentLoaded", function () {
    draw();
    bindPrint();
  });
})();
