// The drift-over-time chart on the portfolio page (data in the canvas's data-chart attribute).
(function () {
  "use strict";
  function draw() {
    var canvas = document.getElementById("drift-chart");
    if (!canvas || typeof Chart === "undefined") { return; }
    var data = JSON.parse(canvas.dataset.chart);
    new Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          { label: "Largest drift from target (points)", data: data.largest, tension: 0.2 },
          { label: "Moved since the last suggestion (points)", data: data.since_plan, tension: 0.2, spanGaps: true }
        ]
      },
      options: { animation: false, scales: { y: { beginAtZero: true } } }
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
