// Webhook endpoints (list, create with its secret shown once, enable, delete) and one
// endpoint's deliveries (filter by status, resend).

import {alertError, announce, badge, DASH, field, fmtTime, h, replace, select} from "../dom.js";
import {clearFieldErrors, showError, submitting} from "../forms.js";
import {PagedTable} from "../table.js";

function secretPanel(endpoint, onDismiss) {
  const code = h("code", {class: "secret", dataset: {secret: ""}}, endpoint.secret);
  const copy = h("button", {type: "button", class: "secondary", text: "Copy the secret"});
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(endpoint.secret);
      announce("The secret is copied.");
    } catch {
      // No clipboard (a page served over plain HTTP from another host): select it instead.
      const range = document.createRange();
      range.selectNodeContents(code);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      announce("The secret is selected: copy it with your keyboard.");
    }
  });
  const heading = h("h2", {id: "secret-title", tabindex: -1}, "Signing secret: shown once");
  const panel = h("section", {class: "panel", attrs: {"aria-labelledby": "secret-title"}},
    heading,
    h("p", {}, `Store it now: the gateway keeps only what it needs to sign, and never shows it again. Events to ${endpoint.url} are signed with it (Standard Webhooks).`),
    code,
    h("div", {class: "actions"}, copy,
      h("button", {type: "button", class: "secondary", text: "I have stored it", on: {click: onDismiss}})));
  return {element: panel, focus: () => heading.focus()};
}

export function webhooksView({api, vocabulary}) {
  const url = h("input", {type: "url", autocomplete: "off", placeholder: "https://crm.example.com/hooks", required: true, spellcheck: false});
  const description = h("input", {type: "text", maxLength: 500, autocomplete: "off"});
  const events = vocabulary.webhook_events.map((e) => h("input", {type: "checkbox", value: e, checked: true}));
  const secretBox = h("div", {});

  const table = new PagedTable({
    name: "webhooks", caption: "Webhook endpoints, oldest first", noun: "endpoints",
    empty: "No webhook endpoint yet.",
    load: (page) => api.get("/webhooks", {page}),
    columns: [
      {label: "URL", wrap: true, cell: (w) => w.url},
      {label: "Description", cell: (w) => w.description || DASH},
      {label: "Events", wrap: true, cell: (w) => w.events.join(", ")},
      {label: "Status", cell: (w) => h("span", {}, badge(w.status),
        w.disabled_reason ? h("span", {class: "muted"}, ` ${w.disabled_reason}`) : null)},
      {label: "Failing since", cell: (w) => fmtTime(w.failing_since)},
      {label: "Created", cell: (w) => fmtTime(w.created_at)},
      {label: "Actions", cell: (w) => h("div", {class: "actions"},
        h("a", {class: "button secondary", href: `#/webhooks/${w.id}`, dataset: {key: `deliveries-${w.id}`},
          attrs: {"aria-label": `Deliveries of ${w.url}`}}, "Deliveries"),
        h("button", {type: "button", class: "secondary", text: "Enable", disabled: w.status !== "disabled",
          dataset: {key: `enable-${w.id}`, action: "enable"}, attrs: {"aria-label": `Enable ${w.url}`},
          on: {click: () => enable(w)}}),
        h("button", {type: "button", class: "danger", text: "Delete", dataset: {key: `delete-${w.id}`, action: "delete"},
          attrs: {"aria-label": `Delete ${w.url}`}, on: {click: () => remove(w)}}))},
    ],
  });

  async function enable(endpoint) {
    try {
      await api.post(`/webhooks/${endpoint.id}/enable`);
      announce(`${endpoint.url} is active again; deliveries abandoned in the last day are sent again.`);
      await table.reload();
    } catch (error) {
      alertError(`Could not enable ${endpoint.url}: ${error.message}`);
    }
  }

  async function remove(endpoint) {
    if (!window.confirm(`Delete the endpoint ${endpoint.url} and its deliveries?`)) return;
    try {
      await api.del(`/webhooks/${endpoint.id}`);
      announce(`Endpoint ${endpoint.url} deleted.`);
      await table.reload();
    } catch (error) {
      alertError(`Could not delete ${endpoint.url}: ${error.message}`);
    }
  }

  const form = h("form", {class: "stacked panel", method: "post", action: "#", noValidate: true, attrs: {"aria-labelledby": "new-webhook-title"}},
    h("h2", {id: "new-webhook-title"}, "New endpoint"),
    field({id: "webhook-url", name: "url", label: "URL", input: url, hint: "An http:// or https:// URL the gateway can reach."}),
    field({id: "webhook-description", name: "description", label: "Description (optional)", input: description}),
    h("fieldset", {class: "field", dataset: {field: "events"}},
      h("legend", {}, "Events"),
      h("div", {class: "days"}, ...events.map((box) => h("label", {}, box, box.value))),
      h("span", {class: "error"})),
    h("button", {type: "submit"}, "Create endpoint"));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const body = {url: url.value.trim(), events: events.filter((e) => e.checked).map((e) => e.value)};
    if (description.value.trim()) body.description = description.value.trim();
    submitting(form, async () => {
      try {
        const endpoint = await api.post("/webhooks", body);
        form.reset();
        const panel = secretPanel(endpoint, () => replace(secretBox));
        replace(secretBox, panel.element);
        announce(`Endpoint ${endpoint.url} created. Its signing secret is shown once: store it now.`);
        panel.focus();
        await table.reload();
      } catch (error) {
        showError(form, error, "The endpoint was not created");
      }
    });
  });

  const element = h("section", {},
    h("h1", {}, "Webhooks"),
    secretBox,
    table.element,
    form);
  return {
    element, title: "Webhooks", ready: table.show(0),
    unmount: () => replace(secretBox), // the secret leaves the page with it
  };
}

export function deliveriesView({api, vocabulary}, id) {
  let status = "";
  const title = h("h1", {}, "Deliveries");
  const filter = select(vocabulary.delivery_statuses, {blank: "Any status"});
  const table = new PagedTable({
    name: "deliveries", caption: "Deliveries, newest first", noun: "deliveries",
    empty: "No event has been sent to this endpoint yet.",
    load: (page) => api.get(`/webhooks/${id}/deliveries`, {page, status}),
    columns: [
      {label: "Created", cell: (d) => fmtTime(d.created_at)},
      {label: "Event", cell: (d) => d.type},
      {label: "Campaign", cell: (d) => h("a", {href: `#/campaigns/${d.campaign_id}`}, d.campaign_id.slice(0, 8) + "…")},
      {label: "Status", cell: (d) => badge(d.status)},
      {label: "Tries", num: true, cell: (d) => String(d.attempts)},
      {label: "Last answer", cell: (d) => (d.last_status_code === null ? d.last_error ?? DASH : `HTTP ${d.last_status_code}`)},
      {label: "Next try", cell: (d) => fmtTime(d.next_attempt_at)},
      {label: "Delivered", cell: (d) => fmtTime(d.delivered_at)},
      {label: "Actions", cell: (d) => h("button", {
        type: "button", class: "secondary", text: "Resend", dataset: {key: `resend-${d.id}`, action: "resend"},
        attrs: {"aria-label": `Resend ${d.type} ${d.event_id}`},
        on: {click: () => resend(d)},
      })},
    ],
  });
  filter.addEventListener("change", () => {
    status = filter.value;
    table.show(0);
  });

  async function resend(delivery) {
    try {
      await api.post(`/webhooks/${id}/deliveries/${delivery.event_id}/resend`);
      announce(`${delivery.type} queued again as a new delivery.`);
      await table.show(0);
    } catch (error) {
      alertError(`Could not resend it: ${error.message}`);
    }
  }

  async function load() {
    const endpoint = await api.get(`/webhooks/${id}`);
    title.textContent = `Deliveries to ${endpoint.url}`;
    document.title = `Deliveries · ${endpoint.url} · Campaign gateway`;
    await table.show(0);
  }

  const element = h("section", {},
    h("p", {}, h("a", {href: "#/webhooks"}, "← Webhooks")),
    title,
    h("div", {class: "toolbar"},
      field({id: "delivery-status-filter", label: "Status", input: filter}),
      h("button", {type: "button", class: "secondary", text: "Refresh", on: {click: () => table.reload()}})),
    table.element);
  return {element, title: "Deliveries", ready: load()};
}
