// The order table: rows, paging, filters kept in the address, the order's detail popup.

import { api } from "./api.js";
import {
  $,
  $$,
  config,
  FIELD_LABELS,
  fmt,
  fullTime,
  clockTime,
  gettext,
  h,
  hooks,
  ngettext,
  number,
  shortTime,
  SIDE_LABELS,
  state,
  STATUS_LABELS,
  TYPE_LABELS,
} from "./util.js";

// The API says what an order allows (its `actions`); the page only offers that.
export const canCancel = (o) => (o.actions || []).includes("cancel");
export const canRetry = (o) => (o.actions || []).includes("retry");

export function statusPill(status) {
  return h("span", { className: `status status-${status}` }, STATUS_LABELS[status] || status);
}

export function orderRow(o, fresh) {
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
export function renderOrders(page, { highlight = false, adopt = false } = {}) {
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

export function pageUrl(cursor) {
  const params = new URLSearchParams(state.filters);
  if (cursor) params.set("cursor", cursor);
  const query = params.toString();
  return location.pathname + (query ? `?${query}` : "");
}

export function ordersUrl() {
  const params = new URLSearchParams(state.filters);
  params.set("limit", String(config.page_size));
  if (state.cursor) params.set("cursor", state.cursor);
  return `${config.urls.orders}?${params}`;
}

export function showFilterError(errors) {
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
export async function loadOrders({ spinner = false } = {}) {
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

export function readFilters() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("#filters"))) {
    const text = String(value).trim();
    if (text) params.append(name, text);
  }
  return params;
}

export function showFilterCount() {
  const active = new Set(Array.from(state.filters.keys())).size;
  $("#filters-count").textContent = active ? String(active) : "";
}

export function syncAddress() {
  history.replaceState(null, "", pageUrl(state.cursor));
  const csv = new URLSearchParams(state.filters).toString();
  // The CSV starts with a byte order mark: Excel then reads its Chinese text right.
  $("#csv-link").href = `${config.urls.orders_csv}?bom=true${csv ? `&${csv}` : ""}`;
  $("#xlsx-link").href = config.urls.orders_xlsx + (csv ? `?${csv}` : "");
  showFilterCount();
}

export function applyFilters() {
  const next = readFilters();
  if (next.toString() === state.filters.toString() && !state.cursor) return;
  state.filters = next;
  state.cursor = null;
  state.back = [];
  syncAddress();
  loadOrders({ spinner: true }).catch(() => hooks.markDown());
}

export function goTo(cursor, back) {
  state.cursor = cursor;
  state.back = back;
  syncAddress();
  loadOrders({ spinner: true })
    .then(() => $("#orders-panel").scrollIntoView({ block: "start", behavior: "instant" }))
    .catch(() => hooks.markDown());
}

export function setupFilters() {
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

export function findOrder(requestId) {
  return state.page.orders.find((o) => o.request_id === requestId);
}

export function detailValue(key, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (key === "status") return statusPill(value);
  if (key === "side") return SIDE_LABELS[value] || value;
  if (key === "order_type") return TYPE_LABELS[value] || value;
  if (typeof value === "boolean") return value ? gettext("Yes") : gettext("No");
  if (key === "retry_of") return h("a", { href: "#", dataset: { open: value } }, value);
  if (/_at$|^timestamp$/.test(key)) return fullTime(value);
  return number(value);
}

export function renderDetail(o) {
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

export async function openDetail(requestId) {
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

