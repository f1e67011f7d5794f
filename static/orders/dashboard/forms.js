// The trader's and operator's actions: confirmations, cancel/retry, pause/resume and
// the new-order form (one Idempotency-Key per intended order).

import { api, randomKey } from "./api.js";
import { findOrder, openDetail, renderDetail } from "./table.js";
import { $, $$, apiMessage, config, fmt, gettext, hooks, number, SIDE_LABELS, state, STATUS_LABELS, toast } from "./util.js";

export function confirmAction({ title, text, confirm, danger = false, reason = false }) {
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

export async function orderAction(kind, requestId, button) {
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
    hooks.refresh();
  }
}

export async function control(kind, account) {
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
      hooks.renderStatus(response.data.status);
    } else {
      toast(apiMessage(response.data, response.status), "bad");
    }
  } catch {
    toast(gettext("Cannot reach the server."), "bad");
  }
}

export function setupActions() {
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

export function setupSubmit() {
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
        hooks.refresh();
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

