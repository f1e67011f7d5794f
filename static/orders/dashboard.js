// Order Scheduling Center dashboard.
//
// The server renders the first view (and embeds the same data as JSON); these modules
// take over: the live stream (stream.js) pushes every change and the page re-reads
// status, statistics and the current page of orders right after it, or polls every few
// seconds while the stream is down; the filters and the page stay in the address bar
// (table.js); the charts (charts.js) use Chart.js from our own static files (the page
// works without it); the trader's actions and the operator's (forms.js) are each
// confirmed, each reported. api.js talks to the REST API; util.js holds the shared bits.

import { Unreachable, api } from "./dashboard/api.js";
import { drawCharts, recolorCharts } from "./dashboard/charts.js";
import { setupActions, setupSubmit } from "./dashboard/forms.js";
import { LiveStream } from "./dashboard/stream.js";
import { loadOrders, renderOrders, setupFilters, showFilterError } from "./dashboard/table.js";
import {
  $,
  $$,
  age,
  COMPARED,
  config,
  fmt,
  gettext,
  h,
  hooks,
  initial,
  ngettext,
  rate,
  state,
  toast,
} from "./dashboard/util.js";

const RETRY_WHEN_DOWN_MS = 2000;
const STALE_AFTER_MS = 3 * config.refresh_ms;
const MIN_PUSH_REFRESH_MS = 250;
state.live = false;
state.lastRefresh = 0;

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

export function renderStatus(status) {
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

// --- Statistics --------------------------------------------------------------------------------

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

// --- Refresh -----------------------------------------------------------------------------------

const seen = {};
function changed(name, data) {
  const key = JSON.stringify(data);
  if (seen[name] === key) return false;
  seen[name] = key;
  return true;
}

// While the stream is up nothing is polled: a refresh follows each pushed change. While
// it is down the page polls every refresh_ms, as it did before the stream existed.
function schedule(delay) {
  clearTimeout(state.timer);
  state.timer = null;
  if (document.visibilityState === "hidden") return; // resumed on visibilitychange
  if (delay === undefined && state.live) return;
  state.timer = setTimeout(refresh, delay ?? (state.down ? RETRY_WHEN_DOWN_MS : config.refresh_ms));
}

// A pushed change: refresh now, or as soon as the previous refresh allows (a burst of
// changes makes a few refreshes, not one per change).
function changedNow() {
  const wait = state.lastRefresh + MIN_PUSH_REFRESH_MS - Date.now();
  if (wait > 0) {
    if (!state.timer) state.timer = setTimeout(refresh, wait);
    return;
  }
  refresh();
}

// One refresh at a time; one asked for meanwhile (after an action) runs right after.
async function refresh() {
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  state.lastRefresh = Date.now();
  clearTimeout(state.timer);
  state.timer = null;
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

// --- Theme -------------------------------------------------------------------------------------

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

// --- Start -------------------------------------------------------------------------------------

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
  hooks.refresh = refresh;
  hooks.markDown = markDown;
  hooks.renderStatus = renderStatus;
  const stream = new LiveStream(`${config.urls.events}?heartbeat=${config.heartbeat_s}`, {
    since: config.last_event_id,
    onEvent: changedNow,
    onUp: () => {
      // Up again: the stream replays what was missed (it resumes after the last event
      // seen), so stopping the polling is all there is to do.
      state.live = true;
      showMode();
      markUp();
      if (!state.busy) schedule();
    },
    onDown: () => {
      state.live = false;
      showMode();
      schedule();
    },
  });
  // A hidden tab holds no stream and asks for nothing; shown again, it catches up.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      stream.start();
      refresh();
    } else {
      stream.stop();
      state.live = false;
      showMode();
      schedule();
    }
  });
  schedule();
  if (document.visibilityState !== "hidden") stream.start();
}

function showMode() {
  const node = $("#stream-mode");
  node.textContent = state.live ? gettext("Live") : gettext("Polling: live updates interrupted");
  node.classList.toggle("warn", !state.live);
  node.hidden = false;
}

boot();
