// The charts (Chart.js from our own static files; the tables carry every figure when it
// fails to load).

import { $, $$, gettext, state } from "./util.js";

export function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { text: v("--muted"), grid: v("--border"), success: v("--success"), failed: v("--failed"), queued: v("--queued"), accent: v("--accent"), cancelled: v("--cancelled"), processing: v("--processing") };
}

export function fade(color, alpha) {
  return `color-mix(in srgb, ${color} ${Math.round(alpha * 100)}%, transparent)`;
}

export function chartOptions(c, extra = {}) {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { labels: { color: c.text, boxWidth: 12, boxHeight: 12 } }, tooltip: { enabled: true } },
    ...extra,
  };
}

export function axis(c, extra = {}) {
  return { ticks: { color: c.text }, grid: { color: fade(c.grid, 0.6) }, border: { color: c.grid }, ...extra };
}

export function chartData(stats) {
  const hours = stats.hourly.today.map((b) => String(b.hour).padStart(2, "0"));
  const today = stats.hourly.today, yesterday = stats.hourly.yesterday;
  const accounts = Object.entries(stats.by_account).filter(([, g]) => g.success + g.failed > 0);
  return {
    hourly: {
      labels: hours,
      series: [
        today.map((b) => b.success),
        today.map((b) => b.failed),
        today.map((b) => b.total - b.success - b.failed),
        yesterday.map((b) => b.success),
        yesterday.map((b) => b.failed),
      ],
    },
    rates: { labels: accounts.map(([id]) => id), series: [accounts.map(([, g]) => g.success_rate)] },
    durations: {
      labels: [gettext("Queue wait"), gettext("Execution")],
      series: ["p50", "p95", "max"].map((p) => [stats.durations.queue_wait_ms[p], stats.durations.execution_ms[p]]),
    },
  };
}

// A success rate's colour: green from 95 %, amber from 80 %, red below.
export const rateColor = (c) => (value) => (value >= 95 ? c.success : value >= 80 ? c.queued : c.failed);

export function buildCharts(data) {
  const c = palette();
  const { Chart } = window;
  state.charts.hourly = new Chart($("#chart-hourly"), {
    type: "bar",
    data: {
      labels: data.hourly.labels,
      datasets: [
        { label: gettext("Success today"), data: data.hourly.series[0], backgroundColor: c.success, stack: "today" },
        { label: gettext("Failed today"), data: data.hourly.series[1], backgroundColor: c.failed, stack: "today" },
        { label: gettext("Other today"), data: data.hourly.series[2], backgroundColor: fade(c.cancelled, 0.6), stack: "today" },
        { type: "line", label: gettext("Success yesterday"), data: data.hourly.series[3], borderColor: fade(c.success, 0.7), borderDash: [5, 4], pointRadius: 0, borderWidth: 2, tension: 0.25 },
        { type: "line", label: gettext("Failed yesterday"), data: data.hourly.series[4], borderColor: fade(c.failed, 0.7), borderDash: [5, 4], pointRadius: 0, borderWidth: 2, tension: 0.25 },
      ],
    },
    options: chartOptions(c, { scales: { x: axis(c, { stacked: true }), y: axis(c, { stacked: true, beginAtZero: true, ticks: { color: c.text, precision: 0 } }) } }),
  });
  state.charts.rates = new Chart($("#chart-rates"), {
    type: "bar",
    data: { labels: data.rates.labels, datasets: [{ label: gettext("Success rate %"), data: data.rates.series[0], backgroundColor: data.rates.series[0].map(rateColor(c)) }] },
    options: chartOptions(c, { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: axis(c, { min: 0, max: 100 }), y: axis(c) } }),
  });
  state.charts.durations = new Chart($("#chart-durations"), {
    type: "bar",
    data: {
      labels: data.durations.labels,
      datasets: [
        { label: "p50", data: data.durations.series[0], backgroundColor: c.accent },
        { label: "p95", data: data.durations.series[1], backgroundColor: c.queued },
        { label: "max", data: data.durations.series[2], backgroundColor: c.failed, hidden: true },
      ],
    },
    options: chartOptions(c, { scales: { x: axis(c), y: axis(c, { beginAtZero: true }) } }),
  });
}

export function drawCharts(stats) {
  if (!window.Chart) {
    for (const note of $$(".chart-note")) note.textContent = gettext("Charts are unavailable; the tables show the same figures.");
    return;
  }
  const data = chartData(stats);
  if (!state.charts.hourly) {
    buildCharts(data);
    for (const box of $$(".chart")) box.classList.add("drawn");
    return;
  }
  for (const [name, chart] of Object.entries(state.charts)) {
    chart.data.labels = data[name].labels;
    data[name].series.forEach((values, i) => (chart.data.datasets[i].data = values));
    if (name === "rates") chart.data.datasets[0].backgroundColor = data.rates.series[0].map(rateColor(palette()));
    chart.update("none");
  }
}

export function recolorCharts() {
  for (const chart of Object.values(state.charts)) chart.destroy();
  state.charts = {};
  drawCharts(state.stats);
}

