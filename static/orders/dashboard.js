// Order Scheduling Center dashboard.
//
// The server renders the first view (and embeds the same data as JSON); this module
// takes over: it refreshes status, statistics and the current page of orders through
// the REST API every few seconds while the tab is visible, keeps the filters and the
// page in the address bar, draws the charts (Chart.js, from our own static files: the
// page works without it), and runs the trader's actions (cancel, retry, submit) and
// the operator's (pause, resume), each confirmed, each reported.

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

const config = JSON.parse($("#dashboard-config").textContent);
const initial = JSON.parse($("#initial-data").textContent);

// Django's JavaScript catalog (jsi18n) defines these; the page still works without it.
const gettext = window.gettext || ((text) => text);
const ngettext = window.ngettext || ((one, many, n) => (n === 1 ? one : many));
const fmt = (text, values) => text.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));

const STATUS_LABELS = {
  queued: gettext("Queued"),
  processing: gettext("Processing"),
  unknown: gettext("Unknown"),
  success: gettext("Success"),
  failed: gettext("Failed"),
  cancelled: gettext("Cancelled"),
  expired: gettext("Expired"),
};
const SIDE_LABELS = { buy: gettext("Buy"), sell: gettext("Sell") };
const TYPE_LABELS = { market: gettext("Market"), limit: gettext("Limit") };
const RESTING_STATES = ["open", "partially_filled"];
const FIELD_LABELS = {
  request_id: gettext("Request id"),
  timestamp: gettext("Submitted"),
  account_id: gettext("Account"),
  symbol: gettext("Symbol"),
  side: gettext("Side"),
  order_type: gettext("Type"),
  amount: gettext("Amount"),
  amount_unit: gettext("Amount unit"),
  price: gettext("Price"),
  leverage: gettext("Leverage"),
  margin_mode: gettext("Margin mode"),
  reduce_only: gettext("Reduce only"),
  strategy_name: gettext("Strategy"),
  priority: gettext("Priority"),
  status: gettext("Status"),
  order_id: gettext("Exchange order id"),
  client_order_id: gettext("Client order id"),
  exchange_state: gettext("Exchange state"),
  filled_amount: gettext("Filled"),
  average_price: gettext("Average price"),
  fee: gettext("Fee"),
  fee_currency: gettext("Fee currency"),
  error_code: gettext("Error code"),
  error_message: gettext("Error"),
  attempts: gettext("Attempts"),
  retry_of: gettext("Retry of"),
  queued_at: gettext("Queued at"),
  started_at: gettext("Started"),
  finished_at: gettext("Finished"),
  expires_at: gettext("Expires"),
  queue_wait_ms: gettext("Queue wait (ms)"),
  execution_ms: gettext("Execution (ms)"),
};
// (key, label, whether more is better: true, false or null)
const COMPARED = [
  ["total", gettext("Total"), null],
  ["success", gettext("Success"), true],
  ["failed", gettext("Failed"), false],
  ["success_rate", gettext("Success rate"), true],
  ["cancelled", gettext("Cancelled"), null],
  ["expired", gettext("Expired"), false],
  ["pending", gettext("Pending"), null],
];
// The API's own top-level messages, in the page's language.
const API_MESSAGES = {
  "Invalid order": gettext("Invalid order"),
  "Invalid query": gettext("Invalid query"),
  "Invalid request": gettext("Invalid request"),
};
const apiMessage = (data, status) => (data && (API_MESSAGES[data.error] || data.error)) || `HTTP ${status}`;
const RETRY_WHEN_DOWN_MS = 2000;
const STALE_AFTER_MS = 3 * config.refresh_ms;

const state = {
  status: initial.status,
  stats: initial.stats,
  page: initial.orders,
  filters: new URLSearchParams(),
  cursor: null,
  back: [], // the cursors of the pages before this one (null: the first page)
  lastOk: Date.now(),
  down: false,
  authLost: false,
  busy: false,
  again: false,
  timer: null,
  ordersSeq: 0,
  shownIds: new Set(),
  ordersKey: "",
  charts: {},
};

// --- Small helpers ------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function number(value) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value !== "number") return String(value);
  if (value !== 0 && Math.abs(value) < 1e-6) return value.toFixed(12).replace(/\.?0+$/, "");
  return String(value);
}

const rate = (value) => `${Number(value || 0).toFixed(2)} %`;
const shortTime = (iso) => (iso ? `${iso.slice(5, 10)} ${iso.slice(11, 19)}` : "");
const fullTime = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d{3})\d*/, "$1") : "—");
const clockTime = (iso) => (iso ? iso.slice(11).replace(/(\.\d{3})\d*/, "$1").replace(/Z$/, "") : "—");

function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const total = Math.max(0, Math.floor(seconds));
  const d = Math.floor(total / 86400), hr = Math.floor(total / 3600) % 24;
  const m = Math.floor(total / 60) % 60, s = total % 60;
  if (d) return fmt(gettext("%(d)s d %(h)s h"), { d, h: hr });
  if (hr) return fmt(gettext("%(h)s h %(m)s min"), { h: hr, m });
  if (m >= 10) return fmt(gettext("%(m)s min"), { m });
  if (m) return fmt(gettext("%(m)s min %(s)s s"), { m, s });
  return fmt(gettext("%(s)s s"), { s });
}

function csrfToken() {
  // The cookie is fresher than the page after a new sign-in in another tab.
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : $('meta[name="csrf-token"]').content;
}

function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // randomUUID needs a secure context; this does not
  return "dash-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

class Unreachable extends Error {}

// One API call. Resolves {status, ok, data}; throws Unreachable when no answer came
// (network down, timeout, or a proxy saying the app behind it is gone).
async function api(url, { method = "GET", body, headers = {}, timeout = 10000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const sent = { Accept: "application/json", ...headers };
  if (method !== "GET") sent["X-CSRFToken"] = csrfToken();
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: sent,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (error) {
    throw new Unreachable(String(error));
  } finally {
    clearTimeout(timer);
  }
  if ([502, 503, 504].includes(response.status)) throw new Unreachable(`HTTP ${response.status}`);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = { success: false, error: `HTTP ${response.status}` };
  }
  return { status: response.status, ok: response.ok, data };
}

function toast(message, tone = "") {
  const node = h("div", { className: `toast ${tone}`, role: tone === "bad" ? "alert" : "status" }, message);
  $("#toasts").append(node);
  setTimeout(() => node.remove(), tone === "bad" ? 9000 : 5000);
}

// --- Connection state ------------------------------------------------------------------------

function markUp() {
  const wasDown = state.down || state.authLost;
  state.lastOk = Date.now();
  state.down = false;
  state.authLost = false;
  $("#banner").hidden = true;
  if (wasDown) toast(gettext("Connection restored."), "ok");
  tick();
}

function markDown() {
  state.down = true;
  const banner = $("#banner");
  banner.replaceChildren(
    h("strong", {}, gettext("Cannot reach the server.")),
    h("span", { className: "muted" }, gettext("Retrying every few seconds; the figures below may be out of date.")),
  );
  banner.hidden = false;
  tick();
}

function markAuthLost(response) {
  state.authLost = true;
  const banner = $("#banner");
  const login = `${config.urls.login}?next=${encodeURIComponent(location.pathname + location.search)}`;
  const text = response.status === 401 ? gettext("Your session has ended.") : (response.data && response.data.error) || "";
  banner.replaceChildren(h("strong", {}, text), h("a", { href: login }, gettext("Sign in again")));
  banner.hidden = false;
}

function tick() {
  const seconds = Math.round((Date.now() - state.lastOk) / 1000);
  const live = $("#live");
  const text = state.down
    ? fmt(gettext("Offline · last update %(n)s s ago"), { n: seconds })
    : fmt(gettext("Updated %(n)s s ago"), { n: seconds });
  $("#updated").textContent = text;
  live.classList.toggle("down", state.down);
  live.classList.toggle("stale", !state.down && Date.now() - state.lastOk > STALE_AFTER_MS);
}

// --- Status ------------------------------------------------------------------------------------

function bind(name, text) {
  const node = $(`[data-bind="${name}"]`);
  if (node && node.textContent !== text) node.textContent = text;
  return node;
}

function renderStatus(status) {
  state.status = status;
  const running = $('[data-card="running"]');
  running.classList.toggle("ok", status.running);
  running.classList.toggle("bad", !status.running);
  bind("running", status.running ? gettext("Running") : gettext("Stopped"));
  bind("workers", fmt(ngettext("%(n)s worker alive", "%(n)s workers alive", status.workers_alive), { n: status.workers_alive }));
  const trading = $('[data-card="trading"]');
  trading.classList.toggle("warn", status.trading_paused);
  bind("trading", status.trading_paused ? gettext("Paused") : gettext("On"));
  bind("trading_sub", status.trading_paused ? gettext("kill switch on") : gettext("kill switch off"));
  const toggle = $('[data-action="toggle-trading"]');
  if (toggle) toggle.textContent = status.trading_paused ? gettext("Resume") : gettext("Pause");
  $("#paused-banner").hidden = !status.trading_paused;
  $("#paused-reason").textContent = status.trading_pause_reason || "";
  bind("queue_size", String(status.queue_size));
  bind("in_flight", fmt(gettext("%(n)s in flight"), { n: status.in_flight }));
  bind("oldest", age(status.oldest_queued_age_seconds));
  bind("locked_count", String(status.locked_accounts.length));
  const names = bind("locked_names", status.locked_accounts.join(", ") || "—");
  names.title = status.locked_accounts.join(", ");
  bind("total_accounts", String(status.total_accounts));
  bind("today_total", String(status.today_stats.total));
  bind("today_success", String(status.today_stats.success));
  bind("today_failed", String(status.today_stats.failed));
  bind("today_rate", rate(status.today_stats.success_rate));
  renderAccounts(status.accounts);
}

function accountStates(account) {
  const states = [];
  if (!account.enabled) states.push(["disabled", gettext("Disabled")]);
  if (account.paused) states.push(["paused", gettext("Paused")]);
  if (account.config_error) states.push(["config", gettext("Config error")]);
  if (account.locked) states.push(["locked", gettext("Working")]);
  return states.length ? states : [["ready", gettext("Ready")]];
}

function renderAccounts(accounts) {
  const rows = accounts.map((a) =>
    h(
      "tr",
      { dataset: { account: a.id } },
      h("th", { scope: "row" }, a.id, a.name && a.name !== a.id ? [" ", h("span", { className: "muted" }, a.name)] : null),
      h("td", {}, a.mode),
      h("td", { className: "r num" }, a.queue_size),
      h("td", { className: "r num" }, a.in_flight),
      h("td", {}, accountStates(a).map(([key, label]) => [h("span", { className: `tag tag-${key}`, title: key === "config" ? a.config_error : key === "paused" ? a.pause_reason : null }, label), " "])),
      h("td", { className: "ellipsis wide-cell", title: a.last_error || null }, a.last_error || "—"),
      config.can_operate
        ? h("td", { className: "row-actions" }, h("button", { type: "button", className: "btn small", dataset: { action: a.paused ? "resume-account" : "pause-account" } }, a.paused ? gettext("Resume") : gettext("Pause")))
        : null,
    ),
  );
  $("#accounts-body").replaceChildren(...rows);
}

// --- Statistics and charts ---------------------------------------------------------------------

function renderStats(stats, { adopt = false } = {}) {
  state.stats = stats;
  if (adopt) {
    drawCharts(stats);
    return;
  }
  $("#stats-date").textContent = `${stats.date} · ${stats.time_zone}`;
  const compare = COMPARED.map(([key, label, better]) => {
    const a = stats.today[key], b = stats.yesterday[key];
    const change = Math.round((a - b) * 100) / 100;
    const isRate = key === "success_rate";
    const text = !change ? "0" : isRate ? `${change > 0 ? "+" : ""}${change.toFixed(2)} pp` : `${change > 0 ? "+" : ""}${change}`;
    const tone = !change || better === null ? "" : change > 0 === better ? "up" : "down";
    return h(
      "tr",
      { dataset: { key } },
      h("th", { scope: "row" }, label),
      h("td", { className: "r num" }, isRate ? rate(a) : a),
      h("td", { className: "r num" }, isRate ? rate(b) : b),
      h("td", { className: `r num delta ${tone}` }, text),
    );
  });
  $("#compare-table tbody").replaceChildren(...compare);
  const durations = [
    ["queue_wait_ms", gettext("Queue wait")],
    ["execution_ms", gettext("Execution")],
  ].map(([key, label]) => {
    const block = stats.durations[key];
    const cell = (value) => h("td", { className: "r num" }, value === null ? "—" : value);
    return h("tr", { dataset: { key } }, h("th", { scope: "row" }, label), cell(block.p50), cell(block.p95), cell(block.max), cell(block.count));
  });
  $("#durations-table tbody").replaceChildren(...durations);
  for (const table of $$("table[data-group]")) {
    const entries = Object.entries(stats[table.dataset.group] || {});
    const rows = entries.length
      ? entries.map(([name, g]) =>
          h(
            "tr",
            {},
            h("th", { scope: "row", className: "ellipsis", title: name }, name),
            h("td", { className: "r num" }, g.total),
            h("td", { className: "r num tone-success" }, g.success),
            h("td", { className: "r num tone-failed" }, g.failed),
            h("td", { className: "r num" }, rate(g.success_rate)),
          ),
        )
      : [h("tr", { className: "empty" }, h("td", { colspan: 5 }, gettext("No orders today.")))];
    table.tBodies[0].replaceChildren(...rows);
  }
  fillDatalist("#strategy-options", Object.keys(stats.by_strategy));
  fillDatalist("#symbol-options", Object.keys(stats.by_symbol));
  drawCharts(stats);
}

function fillDatalist(selector, values) {
  const list = $(selector);
  const known = new Set($$("option", list).map((o) => o.value));
  for (const value of values) if (!known.has(value)) list.append(h("option", { value }));
}

function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { text: v("--muted"), grid: v("--border"), success: v("--success"), failed: v("--failed"), queued: v("--queued"), accent: v("--accent"), cancelled: v("--cancelled"), processing: v("--processing") };
}

function fade(color, alpha) {
  return `color-mix(in srgb, ${color} ${Math.round(alpha * 100)}%, transparent)`;
}

function chartOptions(c, extra = {}) {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { labels: { color: c.text, boxWidth: 12, boxHeight: 12 } }, tooltip: { enabled: true } },
    ...extra,
  };
}

function axis(c, extra = {}) {
  return { ticks: { color: c.text }, grid: { color: fade(c.grid, 0.6) }, border: { color: c.grid }, ...extra };
}

function chartData(stats) {
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
const rateColor = (c) => (value) => (value >= 95 ? c.success : value >= 80 ? c.queued : c.failed);

function buildCharts(data) {
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

function drawCharts(stats) {
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

function recolorCharts() {
  for (const chart of Object.values(state.charts)) chart.destroy();
  state.charts = {};
  drawCharts(state.stats);
}

// --- Orders ------------------------------------------------------------------------------------

function canCancel(o) {
  return o.status === "queued" || (o.status === "success" && RESTING_STATES.includes(o.exchange_state));
}
const canRetry = (o) => o.status === "failed" || o.status === "expired";

function statusPill(status) {
  return h("span", { className: `status status-${status}` }, STATUS_LABELS[status] || status);
}

function orderRow(o, fresh) {
  const actions = [];
  if (config.can_trade && canCancel(o)) actions.push(h("button", { type: "button", className: "btn small danger js-only", dataset: { action: "cancel" } }, gettext("Cancel")));
  if (config.can_trade && canRetry(o)) actions.push(h("button", { type: "button", className: "btn small js-only", dataset: { action: "retry" } }, gettext("Retry")));
  return h(
    "tr",
    { dataset: { id: o.request_id }, className: `row-${o.status}${fresh ? " fresh" : ""}` },
    h("td", { className: "nowrap num", title: o.timestamp }, shortTime(o.timestamp)),
    h("td", {}, statusPill(o.status)),
    config.can_trade ? h("td", { className: "row-actions" }, actions) : null,
    h("td", {}, o.account_id),
    h("td", { className: "nowrap" }, o.symbol),
    h("td", { className: `side-${o.side}` }, SIDE_LABELS[o.side] || o.side),
    h("td", {}, TYPE_LABELS[o.order_type] || o.order_type),
    h("td", { className: "r num" }, number(o.amount)),
    h("td", { className: "r num" }, o.price === null ? "—" : number(o.price)),
    h("td", { className: "r num" }, o.leverage ? `${o.leverage}×` : "—"),
    h("td", {}, o.strategy_name),
    h("td", { className: "mono" }, h("a", { className: "open-detail", href: `${config.urls.orders}/${encodeURIComponent(o.request_id)}` }, o.request_id)),
    h("td", { className: "mono" }, o.order_id || "—"),
  );
}

// Rebuilds the table only when the orders changed; `highlight` marks the orders that
// were not there before (a refresh of the same view, not a new filter or page).
// `adopt`: the rows on the page are the server's rendering of these very orders.
function renderOrders(page, { highlight = false, adopt = false } = {}) {
  state.page = page;
  const key = JSON.stringify(page.orders);
  if (adopt) {
    state.ordersKey = key;
    state.shownIds = new Set(page.orders.map((o) => o.request_id));
  } else if (key !== state.ordersKey) {
    const columns = $$("#orders-table thead th").length;
    const rows = page.orders.map((o) => orderRow(o, highlight && !state.shownIds.has(o.request_id)));
    if (!rows.length) rows.push(h("tr", { className: "empty" }, h("td", { colspan: columns }, gettext("No orders match these filters."))));
    $("#orders-body").replaceChildren(...rows);
    state.ordersKey = key;
    state.shownIds = new Set(page.orders.map((o) => o.request_id));
  }
  const count = page.orders.length;
  $("#orders-count").textContent = fmt(ngettext("%(n)s order shown", "%(n)s orders shown", count), { n: count });
  $("#page-first").hidden = !state.cursor;
  $("#page-first").href = pageUrl(null);
  $("#page-prev").hidden = !state.back.length || state.back[state.back.length - 1] === null;
  $("#page-next").hidden = !page.has_more;
  if (page.next_cursor) $("#page-next").href = pageUrl(page.next_cursor);
  $("#page-label").textContent = state.cursor ? gettext("Older orders") : gettext("Latest orders");
}

function pageUrl(cursor) {
  const params = new URLSearchParams(state.filters);
  if (cursor) params.set("cursor", cursor);
  const query = params.toString();
  return location.pathname + (query ? `?${query}` : "");
}

function ordersUrl() {
  const params = new URLSearchParams(state.filters);
  params.set("limit", String(config.page_size));
  if (state.cursor) params.set("cursor", state.cursor);
  return `${config.urls.orders}?${params}`;
}

function showFilterError(errors) {
  const box = $("#filter-error");
  if (!errors || !Object.keys(errors).length) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = Object.entries(errors)
    .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
    .join(" · ");
  box.hidden = false;
}

// Loads the current page of orders; a response that arrives after a newer request was
// made (the filters changed meanwhile) is dropped.
async function loadOrders({ spinner = false } = {}) {
  const seq = ++state.ordersSeq;
  const veil = $("#orders-loading");
  if (spinner) {
    veil.hidden = false;
    $("#orders-wrap").setAttribute("aria-busy", "true");
  }
  try {
    const response = await api(ordersUrl());
    if (seq !== state.ordersSeq) return response;
    if (response.ok) {
      showFilterError(null);
      renderOrders(response.data, { highlight: !spinner });
    } else if (response.status === 400) {
      showFilterError(response.data.errors || { "": response.data.error });
      renderOrders({ orders: [], next_cursor: null, has_more: false });
    } else if (response.status === 403 && state.filters.get("account")) {
      showFilterError({ account: response.data.error });
      renderOrders({ orders: [], next_cursor: null, has_more: false });
    }
    return response;
  } finally {
    if (seq === state.ordersSeq) {
      veil.hidden = true;
      $("#orders-wrap").removeAttribute("aria-busy");
    }
  }
}

// --- Refresh ---------------------------------------------------------------------------------------

const seen = {};
function changed(name, data) {
  const key = JSON.stringify(data);
  if (seen[name] === key) return false;
  seen[name] = key;
  return true;
}

function schedule(delay) {
  clearTimeout(state.timer);
  state.timer = null;
  if (document.visibilityState === "hidden") return; // resumed on visibilitychange
  state.timer = setTimeout(refresh, delay ?? (state.down ? RETRY_WHEN_DOWN_MS : config.refresh_ms));
}

// One refresh at a time; one asked for meanwhile (after an action) runs right after.
async function refresh() {
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  clearTimeout(state.timer);
  try {
    const [status, stats, orders] = await Promise.all([api(config.urls.status), api(config.urls.stats), loadOrders()]);
    // Signed out, or the role was taken away (a 403 on the orders alone is a filter
    // for an account the user may not see, which loadOrders shows by the filters).
    const refused = [status, stats].find((r) => r.status === 401 || r.status === 403) || (orders.status === 401 && orders);
    if (refused) {
      markAuthLost(refused);
      return;
    }
    markUp();
    // Unchanged figures leave the page (and the charts) alone.
    if (status.ok && changed("status", status.data.status)) renderStatus(status.data.status);
    if (stats.ok && changed("stats", stats.data.stats)) renderStats(stats.data.stats);
  } catch (error) {
    if (!(error instanceof Unreachable)) console.warn("refresh failed", error);
    markDown();
  } finally {
    state.busy = false;
    schedule(state.again ? 0 : undefined);
  }
}

// --- Filters and paging -----------------------------------------------------------------------------

function readFilters() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("#filters"))) {
    const text = String(value).trim();
    if (text) params.append(name, text);
  }
  return params;
}

function showFilterCount() {
  const active = new Set(Array.from(state.filters.keys())).size;
  $("#filters-count").textContent = active ? String(active) : "";
}

function syncAddress() {
  history.replaceState(null, "", pageUrl(state.cursor));
  const csv = new URLSearchParams(state.filters).toString();
  $("#csv-link").href = config.urls.orders_csv + (csv ? `?${csv}` : "");
  showFilterCount();
}

function applyFilters() {
  const next = readFilters();
  if (next.toString() === state.filters.toString() && !state.cursor) return;
  state.filters = next;
  state.cursor = null;
  state.back = [];
  syncAddress();
  loadOrders({ spinner: true }).catch(() => markDown());
}

function goTo(cursor, back) {
  state.cursor = cursor;
  state.back = back;
  syncAddress();
  loadOrders({ spinner: true })
    .then(() => $("#orders-panel").scrollIntoView({ block: "start", behavior: "instant" }))
    .catch(() => markDown());
}

function setupFilters() {
  const form = $("#filters");
  // On a phone the filters fold away (unless some are set) so the orders come first.
  if (matchMedia("(max-width: 720px)").matches && ![...state.filters.keys()].length) $("#filters-box").open = false;
  showFilterCount();
  let debounce = null;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters();
  });
  form.addEventListener("change", (event) => {
    if (event.target.matches("input[type=search], input[name=strategy], input[name=symbol]")) return;
    applyFilters();
  });
  form.addEventListener("input", (event) => {
    if (!event.target.matches("input[type=search], input[name=strategy], input[name=symbol]")) return;
    clearTimeout(debounce);
    debounce = setTimeout(applyFilters, 350);
  });
  $("#reset-filters").addEventListener("click", (event) => {
    event.preventDefault();
    for (const field of form.elements) {
      if (field.type === "checkbox") field.checked = false;
      else if (field.name) field.value = "";
    }
    applyFilters();
  });
  $("#page-next").addEventListener("click", (event) => {
    event.preventDefault();
    if (state.page.next_cursor) goTo(state.page.next_cursor, [...state.back, state.cursor]);
  });
  $("#page-prev").addEventListener("click", () => {
    const back = [...state.back];
    goTo(back.pop() ?? null, back);
  });
  $("#page-first").addEventListener("click", (event) => {
    event.preventDefault();
    goTo(null, []);
  });
}

// --- Dialogs ---------------------------------------------------------------------------------------------

function confirmAction({ title, text, confirm, danger = false, reason = false }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-reason-field").hidden = !reason;
  $("#confirm-reason").value = "";
  const ok = $("#confirm-ok");
  ok.textContent = confirm;
  ok.classList.toggle("danger", danger);
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-reason").onkeydown = (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // Enter in the reason confirms (the form's default button is Back)
      ok.click();
    }
  };
  (reason ? $("#confirm-reason") : ok).focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? { reason: $("#confirm-reason").value.trim() } : null),
      { once: true },
    );
  });
}

function findOrder(requestId) {
  return state.page.orders.find((o) => o.request_id === requestId);
}

function detailValue(key, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (key === "status") return statusPill(value);
  if (key === "side") return SIDE_LABELS[value] || value;
  if (key === "order_type") return TYPE_LABELS[value] || value;
  if (typeof value === "boolean") return value ? gettext("Yes") : gettext("No");
  if (key === "retry_of") return h("a", { href: "#", dataset: { open: value } }, value);
  if (/_at$|^timestamp$/.test(key)) return fullTime(value);
  return number(value);
}

function renderDetail(o) {
  const body = $("#order-dialog-body");
  const title = $("#order-dialog-title");
  title.replaceChildren(o.request_id, " ", statusPill(o.status));
  const parts = [];
  if (o.error_message || o.error_code) {
    parts.push(h("div", { className: "error-box", role: "note" }, h("strong", {}, o.error_code ? `${gettext("Error")} · ${o.error_code}` : gettext("Error")), o.error_message || ""));
  }
  const ms = (value) => (value === null || value === undefined ? "—" : `${value} ms`);
  parts.push(
    h(
      "div",
      { className: "timeline" },
      h("div", {}, h("span", {}, gettext("Queued at")), h("strong", { title: o.queued_at || "" }, clockTime(o.queued_at))),
      h("div", {}, h("span", {}, gettext("Started")), h("strong", { title: o.started_at || "" }, clockTime(o.started_at))),
      h("div", {}, h("span", {}, gettext("Finished")), h("strong", { title: o.finished_at || "" }, clockTime(o.finished_at))),
      h("div", {}, h("span", {}, gettext("Queue wait")), h("strong", {}, ms(o.queue_wait_ms))),
      h("div", {}, h("span", {}, gettext("Execution")), h("strong", {}, ms(o.execution_ms))),
    ),
  );
  const rows = Object.entries(o).map(([key, value]) =>
    h("div", {}, h("dt", {}, FIELD_LABELS[key] || key), h("dd", { className: /id$/.test(key) ? "mono" : "" }, detailValue(key, value))),
  );
  parts.push(h("dl", { className: "details" }, rows));
  body.replaceChildren(...parts);
  const actions = [];
  if (config.can_trade && canCancel(o)) actions.push(h("button", { type: "button", className: "btn danger", dataset: { action: "cancel", id: o.request_id } }, gettext("Cancel order")));
  if (config.can_trade && canRetry(o)) actions.push(h("button", { type: "button", className: "btn primary", dataset: { action: "retry", id: o.request_id } }, gettext("Retry order")));
  actions.push(h("a", { className: "btn ghost", href: `${config.urls.orders}/${encodeURIComponent(o.request_id)}`, target: "_blank", rel: "noopener" }, gettext("Open in API")));
  $("#order-dialog-actions").replaceChildren(...actions);
}

async function openDetail(requestId) {
  const dialog = $("#order-dialog");
  const known = findOrder(requestId);
  if (known) renderDetail(known);
  else {
    $("#order-dialog-title").textContent = requestId;
    $("#order-dialog-body").replaceChildren(h("p", { className: "muted" }, h("span", { className: "spinner" }), " ", gettext("Loading…")));
    $("#order-dialog-actions").replaceChildren();
  }
  dialog.dataset.id = requestId;
  if (!dialog.open) dialog.showModal();
  try {
    const response = await api(`${config.urls.orders}/${encodeURIComponent(requestId)}`);
    if (!dialog.open || dialog.dataset.id !== requestId) return; // closed, or another order opened
    if (response.ok) renderDetail(response.data.order);
    else if (!known) $("#order-dialog-body").replaceChildren(h("p", { className: "form-error" }, response.data.error));
  } catch {
    if (!known) $("#order-dialog-body").replaceChildren(h("p", { className: "form-error" }, gettext("Cannot reach the server.")));
  }
}

// --- Actions ---------------------------------------------------------------------------------------

async function orderAction(kind, requestId, button) {
  const order = findOrder(requestId) || { request_id: requestId };
  const what = order.symbol ? `${SIDE_LABELS[order.side] || order.side} ${number(order.amount)} ${order.symbol} · ${order.account_id}` : requestId;
  const choice = await confirmAction(
    kind === "cancel"
      ? { title: gettext("Cancel this order?"), text: `${requestId} — ${what}`, confirm: gettext("Cancel order"), danger: true }
      : { title: gettext("Retry this order?"), text: fmt(gettext("%(id)s will be submitted again as a new order: %(what)s"), { id: requestId, what }), confirm: gettext("Retry order") },
  );
  if (!choice) return;
  if (button) button.disabled = true;
  try {
    const response = await api(`${config.urls.orders}/${encodeURIComponent(requestId)}/${kind}`, { method: "POST" });
    if (response.ok) {
      toast(`${response.data.message}${kind === "cancel" ? ` (${requestId})` : ""}`, "ok");
      // The popup follows the order: the cancelled one, or the new order of a retry.
      if ($("#order-dialog").open) {
        $("#order-dialog").dataset.id = response.data.request_id;
        renderDetail(response.data.order);
      }
    } else {
      toast(apiMessage(response.data, response.status), "bad");
    }
  } catch {
    toast(gettext("Cannot reach the server: check the order's status before trying again."), "bad");
  } finally {
    if (button) button.disabled = false;
    refresh();
  }
}

async function control(kind, account) {
  const all = !account;
  const choice = await confirmAction({
    title: kind === "pause" ? (all ? gettext("Pause all trading?") : fmt(gettext("Pause account %(id)s?"), { id: account })) : all ? gettext("Resume trading?") : fmt(gettext("Resume account %(id)s?"), { id: account }),
    text: kind === "pause" ? gettext("Nothing more is sent to the exchange until it is resumed; queued orders wait.") : gettext("Queued orders will be sent again."),
    confirm: kind === "pause" ? gettext("Pause") : gettext("Resume"),
    danger: kind === "pause",
    reason: kind === "pause",
  });
  if (!choice) return;
  const body = {};
  if (account) body.account = account;
  if (kind === "pause" && choice.reason) body.reason = choice.reason;
  try {
    const response = await api(kind === "pause" ? config.urls.pause : config.urls.resume, { method: "POST", body });
    if (response.ok) {
      toast(response.data.message, "ok");
      renderStatus(response.data.status);
    } else {
      toast(apiMessage(response.data, response.status), "bad");
    }
  } catch {
    toast(gettext("Cannot reach the server."), "bad");
  }
}

function setupActions() {
  document.addEventListener("click", (event) => {
    const target = event.target;
    const button = target.closest("button[data-action]");
    if (button) {
      const action = button.dataset.action;
      const id = button.dataset.id || button.closest("tr[data-id]")?.dataset.id;
      const account = button.closest("tr[data-account]")?.dataset.account;
      if (action === "cancel" || action === "retry") orderAction(action, id, button);
      else if (action === "toggle-trading") control(state.status.trading_paused ? "resume" : "pause", null);
      else if (action === "pause-account") control("pause", account);
      else if (action === "resume-account") control("resume", account);
      return;
    }
    const open = target.closest("a[data-open]");
    if (open) {
      event.preventDefault();
      openDetail(open.dataset.open);
      return;
    }
    const row = target.closest("#orders-body tr[data-id]");
    if (row && !target.closest("a:not(.open-detail), input, select")) {
      event.preventDefault();
      openDetail(row.dataset.id);
    }
  });
  const detail = $("#order-dialog");
  detail.addEventListener("click", (event) => {
    if (event.target === detail) detail.close(); // a click on the backdrop
  });
}

// --- Submit form -----------------------------------------------------------------------------------

function setupSubmit() {
  const dialog = $("#submit-dialog");
  if (!dialog) return;
  const form = $("#submit-form");
  const opener = $("#new-order");
  // One Idempotency-Key per order the user means: the same form sent again (after a
  // lost answer) reuses it, so the order is placed once; a changed form or the next
  // order after a success gets a new one.
  let key = "";
  let keyFor = "";
  const clearErrors = () => {
    for (const node of $$("[data-error-for]", form)) {
      node.textContent = "";
      if (node.classList.contains("form-error")) node.hidden = true;
    }
    for (const field of $$(".field.has-error", form)) field.classList.remove("has-error");
  };
  const showErrors = (errors, message) => {
    const general = message ? [message] : [];
    for (const [field, messages] of Object.entries(errors || {})) {
      const text = [].concat(messages).join(" ");
      const slot = field === "non_field_errors" ? null : $(`[data-error-for="${CSS.escape(field)}"]`, form);
      if (slot) {
        slot.textContent = text;
        slot.closest(".field")?.classList.add("has-error");
      } else general.push(field === "non_field_errors" ? text : `${field}: ${text}`);
    }
    const box = $('[data-error-for="non_field_errors"]', form);
    box.textContent = general.join(" ");
    box.hidden = !general.length;
  };
  const priceInput = form.elements.price;
  const syncPrice = () => {
    const limit = form.elements.order_type.value === "limit";
    priceInput.disabled = !limit;
    priceInput.placeholder = limit ? "" : gettext("Limit orders only");
    if (!limit) priceInput.value = "";
  };
  form.addEventListener("change", syncPrice);
  opener.addEventListener("click", () => {
    clearErrors();
    syncPrice();
    dialog.showModal();
    form.elements.symbol.focus();
  });
  for (const closer of $$("[data-close]", dialog)) closer.addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const f = form.elements;
    const body = { account_id: f.account_id.value, symbol: f.symbol.value.trim(), side: f.side.value, order_type: f.order_type.value };
    // Amounts and prices travel as decimal strings: no float rounding on the way.
    if (f.amount.value.trim()) body.amount = f.amount.value.trim();
    if (f.order_type.value === "limit" && f.price.value.trim()) body.price = f.price.value.trim();
    if (f.leverage.value.trim()) body.leverage = f.leverage.value.trim();
    if (f.margin_mode.value) body.margin_mode = f.margin_mode.value;
    if (f.strategy_name.value.trim()) body.strategy_name = f.strategy_name.value.trim();
    body.reduce_only = f.reduce_only.checked;
    const summary = [
      SIDE_LABELS[body.side],
      body.amount || "?",
      body.symbol || "?",
      body.order_type === "limit" ? fmt(gettext("limit at %(price)s"), { price: body.price || "?" }) : gettext("at market"),
      body.leverage ? `${body.leverage}×` : "",
      "·",
      body.account_id,
    ].filter(Boolean).join(" ");
    const choice = await confirmAction({ title: gettext("Submit this order?"), text: summary, confirm: gettext("Submit order") });
    if (!choice) return;
    const button = $("#submit-button");
    button.disabled = true;
    if (JSON.stringify(body) !== keyFor) {
      key = randomKey();
      keyFor = JSON.stringify(body);
    }
    try {
      const response = await api(config.urls.submit, { method: "POST", body, headers: { "Idempotency-Key": key } });
      if (response.ok) {
        keyFor = ""; // the next order is a new one, even if identical
        dialog.close();
        const created = response.status === 201;
        toast(created ? fmt(gettext("Order %(id)s submitted (%(status)s)."), { id: response.data.request_id, status: STATUS_LABELS[response.data.status] || response.data.status }) : response.data.message, "ok");
        form.elements.amount.value = "";
        form.elements.price.value = "";
        refresh();
      } else {
        showErrors(response.data.errors, apiMessage(response.data, response.status));
        const first = $(".field.has-error input, .field.has-error select", form);
        if (first) first.focus();
      }
    } catch {
      showErrors({}, gettext("Cannot reach the server. Submitting again is safe: the same order is never placed twice."));
    } finally {
      button.disabled = false;
    }
  });
}

// --- Theme ---------------------------------------------------------------------------------------

function setupTheme() {
  const toggle = $("#theme-toggle");
  const label = () => {
    const dark = document.documentElement.dataset.theme !== "light";
    toggle.setAttribute("aria-label", dark ? gettext("Switch to the light theme") : gettext("Switch to the dark theme"));
    toggle.title = toggle.getAttribute("aria-label");
  };
  label();
  toggle.addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "light" ? "dark" : "light";
    document.documentElement.dataset.theme = next;
    try {
      localStorage.setItem("osc-theme", next);
    } catch {
      /* private mode: the theme lasts for this page only */
    }
    label();
    recolorCharts();
  });
}

// --- Start ---------------------------------------------------------------------------------------

function boot() {
  const params = new URLSearchParams(location.search);
  state.cursor = params.get("cursor");
  params.delete("cursor");
  params.delete("limit");
  state.filters = params;
  if (state.cursor) state.back = [null];
  setupTheme();
  setupFilters();
  setupActions();
  setupSubmit();
  // The server rendered this very data: its DOM is kept as it is (no second layout of
  // the whole page before the first paint); the script adds the charts and takes over.
  renderOrders(state.page, { adopt: true });
  if (Object.keys(initial.filter_errors).length) showFilterError(initial.filter_errors);
  renderStats(state.stats, { adopt: true });
  changed("status", state.status);
  changed("stats", state.stats);
  requestAnimationFrame(() => performance.mark("dashboard-drawn"));
  tick();
  setInterval(tick, 1000);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
    else schedule();
  });
  schedule();
}

boot();
