// One campaign: its settings, lifecycle buttons, live progress from the event stream (the
// figures and a chart of outcomes over time), its contacts and calls, and exports.

import {saveBlob} from "../api.js";
import {OutcomeChart} from "../chart.js";
import {
  alertError, announce, badge, capitalised, DASH, field, fmtClock, fmtNumber, fmtTime, h,
  replace, select, words,
} from "../dom.js";
import {EventStream} from "../sse.js";
import {PagedTable} from "../table.js";
import {progressOf} from "./campaigns.js";
import {lifecycleButtons} from "./lifecycle.js";

const TABLE_REFRESH_MS = 10_000;
const STREAM_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Ended",
  error: "Stopped",
};

function figureTable({caption, rows, name}) {
  const cells = new Map();
  const body = h("tbody", {}, ...rows.map(([key, label]) => {
    const cell = h("td", {class: "num", dataset: {[name]: key}}, DASH);
    cells.set(key, cell);
    return h("tr", {}, h("th", {attrs: {scope: "row"}}, label), cell);
  }));
  const element = h("div", {class: "table-wrap"}, h("table", {class: "figures-table"},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", {attrs: {scope: "col"}}, "What"), h("th", {class: "num", attrs: {scope: "col"}}, "Count"))),
    body));
  return {
    element,
    set(values) {
      for (const [key, cell] of cells) {
        const text = fmtNumber(values[key] ?? 0);
        if (cell.textContent !== text) cell.textContent = text;
      }
    },
  };
}

function customFields(fields) {
  const entries = Object.entries(fields ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}: ${v}`).join("; ") : DASH;
}

export function campaignView({api, vocabulary}, id) {
  let campaign = null;
  let stream = null;
  let refreshTimer = null;
  let ended = false;
  const title = h("h1", {}, "Campaign");
  const statusBox = h("span", {dataset: {field: "status"}});
  const actions = h("div", {class: "actions"});
  const settings = h("dl", {class: "settings"});
  let buttons = null;
  const names = {agent: DASH, number: DASH}; // the agent's and the number's, once read

  // Live figures
  const streamState = h("span", {class: "badge connecting", dataset: {streamState: "connecting"}}, STREAM_TEXT.connecting);
  const updated = h("span", {class: "muted"});
  const progress = h("progress", {max: 1, value: 0, attrs: {"aria-labelledby": "progress-label"}});
  const progressText = h("span", {id: "progress-label", dataset: {field: "progress"}}, "No snapshot yet");
  const contactsFigures = figureTable({caption: "Contacts by status", name: "count", rows: [
    ...vocabulary.contact_statuses.map((s) => [s, capitalised(s)]),
    ["total", "Total"],
    ["waiting_for_window", "Due, outside their calling window"],
  ]});
  const liveFigures = figureTable({caption: "Calls", name: "count", rows: [
    ["in_flight", "Live calls"],
    ["ringing", "Ringing"],
    ["connected", "Connected to the agent"],
    ["attempts", "Attempts so far"],
  ]});
  const outcomeFigures = figureTable({caption: "Attempts by outcome", name: "outcome",
    rows: vocabulary.outcomes.map((o) => [o, capitalised(o)])});
  const dispositionFigures = figureTable({caption: "Calls by the agent's disposition", name: "disposition",
    rows: vocabulary.dispositions.map((d) => [d, capitalised(d)])});
  const chart = new OutcomeChart(vocabulary.outcomes);

  // Contacts and calls
  let contactStatus = "";
  const contactFilter = select(vocabulary.contact_statuses, {blank: "Any status"});
  const contacts = new PagedTable({
    name: "contacts", caption: "Contacts, in CSV order", noun: "contacts",
    load: (page) => api.get(`/campaigns/${id}/contacts`, {page, status: contactStatus}),
    columns: [
      {label: "Row", num: true, cell: (c) => String(c.row_number)},
      {label: "Phone number", cell: (c) => c.phone_number},
      {label: "Status", cell: (c) => badge(c.status)},
      {label: "Attempts", num: true, cell: (c) => fmtNumber(c.attempts)},
      {label: "Last outcome", cell: (c) => words(c.last_outcome)},
      {label: "Last attempt", cell: (c) => fmtTime(c.last_attempt_at)},
      {label: "Next attempt", cell: (c) => fmtTime(c.next_attempt_at)},
      {label: "Disposition", cell: (c) => words(c.disposition)},
      {label: "Fields", wrap: true, cell: (c) => customFields(c.custom_fields)},
    ],
  });
  contactFilter.addEventListener("change", () => {
    contactStatus = contactFilter.value;
    contacts.show(0);
  });
  const calls = new PagedTable({
    name: "calls", caption: "Calls (attempts), oldest dial first", noun: "calls",
    load: (page) => api.get(`/campaigns/${id}/calls`, {page}),
    columns: [
      {label: "Dialed", cell: (c) => fmtTime(c.dialed_at)},
      {label: "Phone number", cell: (c) => c.phone_number},
      {label: "Attempt", num: true, cell: (c) => String(c.attempt)},
      {label: "Outcome", cell: (c) => (c.outcome ? words(c.outcome) : "live")},
      {label: "Talk (s)", num: true, cell: (c) => (c.duration_seconds === null ? DASH : c.duration_seconds.toFixed(1))},
      {label: "Hung up by", cell: (c) => words(c.hangup_by)},
      {label: "Disposition", cell: (c) => words(c.disposition)},
    ],
  });

  // Export
  const exportWhat = select([["contacts", "Contacts"], ["calls", "Calls"]]);
  const exportFormat = select([["csv", "CSV"], ["jsonl", "JSON lines"]]);
  const exportStatus = select(vocabulary.contact_statuses, {blank: "Any status"});
  const exportOutcome = select(vocabulary.outcomes, {blank: "Any outcome"});
  const statusField = field({id: "export-status", label: "Contact status", input: exportStatus});
  const outcomeField = field({id: "export-outcome", label: "Call outcome", input: exportOutcome});
  outcomeField.hidden = true;
  exportWhat.addEventListener("change", () => {
    statusField.hidden = exportWhat.value !== "contacts";
    outcomeField.hidden = exportWhat.value !== "calls";
  });
  const exportButton = h("button", {type: "submit"}, "Download");
  const exportForm = h("form", {class: "toolbar", method: "post", action: "#", attrs: {"aria-labelledby": "export-title"}},
    field({id: "export-what", label: "What", input: exportWhat}),
    field({id: "export-format", label: "Format", input: exportFormat}),
    statusField, outcomeField, exportButton);
  exportForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const what = exportWhat.value;
    const query = what === "contacts" ? {status: exportStatus.value} : {outcome: exportOutcome.value};
    exportButton.disabled = true;
    announce("Preparing the download…");
    try {
      const {blob, filename} = await api.download(`/campaigns/${id}/${what}.${exportFormat.value}`, query);
      saveBlob(blob, filename);
      announce(`Downloaded ${filename} (${fmtNumber(blob.size)} bytes).`);
    } catch (error) {
      alertError(`The export failed: ${error.message}`);
    } finally {
      exportButton.disabled = false;
    }
  });

  const deleteButton = h("button", {type: "button", class: "danger", hidden: true, text: "Delete draft",
    on: {click: async () => {
      if (!window.confirm(`Delete the draft “${campaign.name}” and its contacts?`)) return;
      try {
        await api.del(`/campaigns/${id}`);
        announce(`Campaign “${campaign.name}” deleted.`);
        location.hash = "#/campaigns";
      } catch (error) {
        alertError(`Could not delete it: ${error.message}`);
      }
    }}});

  function showCampaign(next) {
    const before = campaign?.status;
    campaign = {...campaign, ...next};
    title.textContent = campaign.name;
    document.title = `${campaign.name} · Campaign gateway`;
    replace(statusBox, badge(campaign.status));
    statusBox.dataset.status = campaign.status;
    deleteButton.hidden = !vocabulary.transitions.delete.includes(campaign.status);
    buttons?.update(campaign);
    showSettings();
    if (before && before !== campaign.status) announce(`The campaign is ${words(campaign.status)}.`);
  }

  function showSettings() {
    const c = campaign;
    const rows = [
      ["Agent", names.agent],
      ["Caller number", names.number],
      ["Max concurrent calls", fmtNumber(c.max_concurrent_calls)],
      ["Retries per contact", `${c.retries_per_contact} (after ${c.retry_delay_seconds} s)`],
      ["Scheduled at", fmtTime(c.scheduled_at)],
      ["Started at", fmtTime(c.started_at)],
      ["Completed at", fmtTime(c.completed_at)],
      ["Calling window", c.calling_window
        ? `${c.calling_window.days.join(", ")} ${c.calling_window.start}–${c.calling_window.end}` : "the account's, if any"],
      ["Created", fmtTime(c.created_at)],
    ];
    if (c.failure_reason) rows.push(["Failure", c.failure_reason]);
    replace(settings, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  function onSnapshot(snapshot) {
    const counts = {...snapshot};
    contactsFigures.set(counts);
    liveFigures.set(counts);
    outcomeFigures.set(snapshot.outcomes ?? {});
    dispositionFigures.set(snapshot.dispositions ?? {});
    const {done, total} = progressOf(snapshot);
    progress.max = Math.max(total, 1);
    progress.value = done;
    progressText.textContent = `${fmtNumber(done)} of ${fmtNumber(total)} contacts done`;
    updated.textContent = `Updated ${fmtClock(new Date())}`;
    chart.add(snapshot);
    if (campaign && snapshot.status !== campaign.status) {
      showCampaign({status: snapshot.status, started_at: snapshot.started_at, completed_at: snapshot.completed_at});
    }
  }

  function setStreamState(state, detail) {
    streamState.className = `badge ${state}`;
    streamState.dataset.streamState = state;
    streamState.dataset.lastEventId = stream?.lastEventId ?? "";
    streamState.textContent = detail ? `${STREAM_TEXT[state]}: ${detail}` : STREAM_TEXT[state];
  }

  async function refreshAll() {
    const fresh = await api.get(`/campaigns/${id}`);
    showCampaign(fresh);
    await Promise.all([contacts.reload(), calls.reload()]);
  }

  function onEvent(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // not ours: skipped
    }
    streamState.dataset.lastEventId = event.id;
    if (event.type === "end") {
      ended = true;
      announce(data.status === "deleted" ? "The campaign was deleted." : `The campaign is ${words(data.status)}: live progress has ended.`);
      refreshAll().catch(() => {});
      return;
    }
    if (event.type === "message") onSnapshot(data);
  }

  function scheduleRefresh() {
    refreshTimer = window.setTimeout(async () => {
      if (!document.hidden && !ended && campaign?.status === "running") {
        await Promise.all([contacts.reload(), calls.reload()]);
      }
      if (refreshTimer !== null) scheduleRefresh();
    }, TABLE_REFRESH_MS);
  }

  async function load() {
    const fresh = await api.get(`/campaigns/${id}`);
    campaign = fresh;
    buttons = lifecycleButtons({api, vocabulary, campaign, onChanged: (c) => {
      showCampaign(c);
      contacts.reload();
      calls.reload();
    }});
    replace(actions, buttons.element, deleteButton);
    showCampaign(fresh);
    stream = new EventStream({
      open: async (lastEventId, signal) => {
        const response = await api.fetch(`/campaigns/${id}/events`, {
          signal, headers: {Accept: "text/event-stream", ...(lastEventId ? {"Last-Event-ID": lastEventId} : {})},
        });
        if (response.status === 401) api.onUnauthorized(); // the key was revoked meanwhile
        return response;
      },
      onEvent,
      onState: setStreamState,
    }).start();
    scheduleRefresh();
    const [agent, number] = await Promise.all([
      api.get(`/agents/${fresh.agent_id}`).catch(() => null),
      api.get(`/phone-numbers/${fresh.phone_number_id}`).catch(() => null),
      contacts.show(0),
      calls.show(0),
    ]);
    names.agent = agent ? agent.name : `${fresh.agent_id} (deleted)`;
    names.number = number ? number.number + (number.label ? ` (${number.label})` : "") : `${fresh.phone_number_id} (deleted)`;
    showSettings();
  }

  const element = h("article", {class: "campaign"},
    h("p", {}, h("a", {href: "#/campaigns"}, "← Campaigns")),
    h("div", {class: "title-line"}, title, statusBox),
    actions,
    h("h2", {}, "Settings"),
    settings,
    h("section", {attrs: {"aria-labelledby": "live-title"}},
      h("h2", {id: "live-title"}, "Live progress"),
      h("div", {class: "stream-line"}, streamState, updated),
      h("div", {class: "field"}, progressText, progress),
      h("div", {class: "figures"}, contactsFigures.element, liveFigures.element, outcomeFigures.element, dispositionFigures.element)),
    h("section", {attrs: {"aria-labelledby": "chart-title"}},
      h("h2", {id: "chart-title"}, "Outcomes over time"),
      h("p", {class: "muted"}, "Attempts ended so far, by outcome, since this page opened."),
      chart.element),
    h("section", {attrs: {"aria-labelledby": "contacts-title"}},
      h("h2", {id: "contacts-title"}, "Contacts"),
      h("div", {class: "toolbar"},
        field({id: "contact-status-filter", label: "Status", input: contactFilter}),
        h("button", {type: "button", class: "secondary", text: "Refresh contacts", on: {click: () => contacts.reload()}})),
      contacts.element),
    h("section", {attrs: {"aria-labelledby": "calls-title"}},
      h("h2", {id: "calls-title"}, "Calls"),
      h("div", {class: "toolbar"},
        h("button", {type: "button", class: "secondary", text: "Refresh calls", on: {click: () => calls.reload()}})),
      calls.element),
    h("section", {attrs: {"aria-labelledby": "export-title"}},
      h("h2", {id: "export-title"}, "Export"),
      h("p", {class: "muted"}, "Every contact or call of the campaign, as the gateway streams it."),
      exportForm));

  return {
    element,
    title: "Campaign",
    ready: load(),
    unmount() {
      stream?.stop();
      window.clearTimeout(refreshTimer);
      refreshTimer = null;
    },
  };
}
