// Shared by the dashboard's modules: the page's data, the state, DOM and text helpers.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

export const config = JSON.parse($("#dashboard-config").textContent);
export const initial = JSON.parse($("#initial-data").textContent);

// Django's JavaScript catalog (jsi18n) defines these; the page still works without it.
export const gettext = window.gettext || ((text) => text);
export const ngettext = window.ngettext || ((one, many, n) => (n === 1 ? one : many));
export const fmt = (text, values) => text.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));

export const STATUS_LABELS = {
  queued: gettext("Queued"),
  processing: gettext("Processing"),
  unknown: gettext("Unknown"),
  success: gettext("Success"),
  failed: gettext("Failed"),
  cancelled: gettext("Cancelled"),
  expired: gettext("Expired"),
};
export const SIDE_LABELS = { buy: gettext("Buy"), sell: gettext("Sell") };
export const TYPE_LABELS = { market: gettext("Market"), limit: gettext("Limit") };
export const FIELD_LABELS = {
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
export const COMPARED = [
  ["total", gettext("Total"), null],
  ["success", gettext("Success"), true],
  ["failed", gettext("Failed"), false],
  ["success_rate", gettext("Success rate"), true],
  ["cancelled", gettext("Cancelled"), null],
  ["expired", gettext("Expired"), false],
  ["pending", gettext("Pending"), null],
];
// The API's own top-level messages, in the page's language.
export const API_MESSAGES = {
  "Invalid order": gettext("Invalid order"),
  "Invalid query": gettext("Invalid query"),
  "Invalid request": gettext("Invalid request"),
};
export const apiMessage = (data, status) => (data && (API_MESSAGES[data.error] || data.error)) || `HTTP ${status}`;

export const state = {
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

// What the modules ask of the page as a whole, filled in by dashboard.js (so that no
// module imports the one that imports it).
export const hooks = {
  refresh: () => {},
  markDown: () => {},
  renderStatus: () => {},
};

export function h(tag, attrs = {}, ...children) {
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

export function number(value) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value !== "number") return String(value);
  if (value !== 0 && Math.abs(value) < 1e-6) return value.toFixed(12).replace(/\.?0+$/, "");
  return String(value);
}

export const rate = (value) => `${Number(value || 0).toFixed(2)} %`;
export const shortTime = (iso) => (iso ? `${iso.slice(5, 10)} ${iso.slice(11, 19)}` : "");
export const fullTime = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d{3})\d*/, "$1") : "—");
export const clockTime = (iso) => (iso ? iso.slice(11).replace(/(\.\d{3})\d*/, "$1").replace(/Z$/, "") : "—");

export function age(seconds) {
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

export function toast(message, tone = "") {
  const node = h("div", { className: `toast ${tone}`, role: tone === "bad" ? "alert" : "status" }, message);
  $("#toasts").append(node);
  setTimeout(() => node.remove(), tone === "bad" ? 9000 : 5000);
}

