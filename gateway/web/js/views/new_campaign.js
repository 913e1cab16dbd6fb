// A new campaign from a CSV upload: the multipart form of POST /api/v1/campaigns, then the
// import report (rows accepted, rejections counted by reason and listed).

import {announce, capitalised, clear, field, fmtNumber, h, replace} from "../dom.js";
import {clearFieldErrors, showError, submitting} from "../forms.js";
import {lifecycleButtons} from "./lifecycle.js";

function number(min, max, placeholder) {
  return h("input", {type: "number", min, max, step: 1, placeholder, attrs: {inputmode: "numeric"}});
}

export function reportSection({api, vocabulary, campaign}) {
  const report = campaign.import_report;
  const counts = h("tbody", {}, ...vocabulary.rejection_reasons.map((reason) =>
    h("tr", {}, h("th", {attrs: {scope: "row"}}, capitalised(reason)),
      h("td", {class: "num", dataset: {reason}}, fmtNumber(report.rejected_counts[reason] ?? 0)))));
  const listed = report.rejected.length
    ? h("div", {class: "table-wrap"}, h("table", {dataset: {table: "rejected"}},
        h("caption", {}, report.rejected_truncated
          ? `The first ${fmtNumber(report.rejected.length)} rejected rows (of ${fmtNumber(report.rows_rejected)})`
          : "Rejected rows"),
        h("thead", {}, h("tr", {},
          h("th", {class: "num", attrs: {scope: "col"}}, "Row"),
          h("th", {attrs: {scope: "col"}}, "Reason"),
          h("th", {attrs: {scope: "col"}}, "Message"))),
        h("tbody", {}, ...report.rejected.map((r) => h("tr", {},
          h("th", {class: "num", attrs: {scope: "row"}}, String(r.row)),
          h("td", {}, capitalised(r.reason)),
          h("td", {class: "wrap"}, r.message))))))
    : h("p", {}, "Every row was imported.");
  const heading = h("h2", {id: "import-report-title", tabindex: -1}, "Import report");
  const section = h("section", {class: "panel report", attrs: {"aria-labelledby": "import-report-title"}},
    heading,
    h("p", {}, "Campaign ", h("a", {href: `#/campaigns/${campaign.id}`}, campaign.name),
      ` was created (${campaign.status}).`),
    h("dl", {class: "settings"},
      h("dt", {}, "Rows accepted"), h("dd", {dataset: {report: "rows_accepted"}}, fmtNumber(report.rows_accepted)),
      h("dt", {}, "Rows rejected"), h("dd", {dataset: {report: "rows_rejected"}}, fmtNumber(report.rows_rejected)),
      h("dt", {}, "Delimiter"), h("dd", {}, report.delimiter === "\t" ? "tab" : `“${report.delimiter}”`),
      h("dt", {}, "Custom fields"), h("dd", {}, report.columns.length ? report.columns.join(", ") : "none")),
    report.warnings.length ? h("ul", {class: "warnings"}, ...report.warnings.map((w) => h("li", {}, w))) : null,
    h("div", {class: "table-wrap"}, h("table", {dataset: {table: "rejected-counts"}},
      h("caption", {}, "Rejected rows by reason"),
      h("thead", {}, h("tr", {}, h("th", {attrs: {scope: "col"}}, "Reason"),
        h("th", {class: "num", attrs: {scope: "col"}}, "Rows"))),
      counts)),
    listed,
    h("h3", {}, "Next"),
    lifecycleButtons({api, vocabulary, campaign, onChanged: (c) => { location.hash = `#/campaigns/${c.id}`; }}).element);
  return {element: section, focus: () => heading.focus()};
}

export function newCampaignView({api, vocabulary}) {
  const agents = h("select", {});
  const numbers = h("select", {});
  const file = h("input", {type: "file", accept: ".csv,.tsv,.txt,text/csv,text/plain"});
  const days = vocabulary.weekdays.map((day) => h("input", {type: "checkbox", value: day, name: "calling_window_day"}));
  const start = h("input", {type: "text", placeholder: "09:00", attrs: {inputmode: "numeric", "aria-describedby": "cw-hint cw-error"}, id: "cw-start"});
  const end = h("input", {type: "text", placeholder: "20:00", attrs: {inputmode: "numeric", "aria-describedby": "cw-hint cw-error"}, id: "cw-end"});
  const policy = h("textarea", {rows: 4, placeholder: '{"no_answer": {"delay_seconds": 3600, "max_attempts": 3}}', spellcheck: false});
  const missing = h("div", {class: "panel", hidden: true});
  const reportBox = h("div", {});

  const inputs = {
    name: h("input", {type: "text", maxLength: 200, autocomplete: "off", required: true}),
    max_concurrent_calls: number(1, 100, "5"),
    retries_per_contact: number(0, 5, "0"),
    retry_delay_seconds: number(0, 2592000, "300"),
    scheduled_at: h("input", {type: "datetime-local", step: 1}),
  };

  const form = h("form", {class: "stacked", method: "post", action: "#", noValidate: true, attrs: {"aria-labelledby": "new-campaign-title"}},
    field({id: "c-name", name: "name", label: "Name", input: inputs.name}),
    field({id: "c-agent", name: "agent_id", label: "Agent", input: agents, hint: "Active agents of the account."}),
    field({id: "c-number", name: "phone_number_id", label: "Caller number", input: numbers, hint: "The From of every call: numbers enabled for outbound calls."}),
    field({id: "c-contacts", name: "contacts", label: "Contacts (CSV)", input: file,
      hint: "A header row with a phone_number column; other columns become each contact's fields (comma, semicolon or tab)."}),
    h("div", {class: "row"},
      field({id: "c-max", name: "max_concurrent_calls", label: "Max concurrent calls", input: inputs.max_concurrent_calls, hint: "1 to 100 (default 5)"}),
      field({id: "c-retries", name: "retries_per_contact", label: "Retries per contact", input: inputs.retries_per_contact, hint: "0 to 5 (default 0)"}),
      field({id: "c-delay", name: "retry_delay_seconds", label: "Retry delay (seconds)", input: inputs.retry_delay_seconds, hint: "Default 300"})),
    field({id: "c-scheduled", name: "scheduled_at", label: "Start at (optional)", input: inputs.scheduled_at,
      hint: "Your local time. Empty: the campaign is created as a draft, to start by hand."}),
    h("fieldset", {class: "field", dataset: {field: "calling_window"}, attrs: {"aria-describedby": "cw-hint cw-error"}},
      h("legend", {}, "Calling window (optional)"),
      h("span", {class: "hint", id: "cw-hint"}, "When contacts may be called, in each contact's local time. None: the account's window, if any. End 24:00 is midnight."),
      h("div", {class: "days", attrs: {role: "group", "aria-label": "Days"}}, ...days.map((box, i) =>
        h("label", {}, box, capitalised(vocabulary.weekdays[i])))),
      h("div", {class: "row"},
        h("div", {class: "field"}, h("label", {htmlFor: "cw-start"}, "From (HH:MM)"), start),
        h("div", {class: "field"}, h("label", {htmlFor: "cw-end"}, "Until (HH:MM)"), end)),
      h("span", {class: "error", id: "cw-error"})),
    h("details", {},
      h("summary", {}, "Retries by outcome (JSON, optional)"),
      field({id: "c-policy", name: "retry_policy", label: "Retry policy", input: policy,
        hint: "Keys busy, no_answer, failed, agent_unavailable, voicemail; each {delay_seconds, max_attempts}."})),
    h("button", {type: "submit"}, "Create campaign"));

  function formData() {
    const data = new FormData();
    data.append("name", inputs.name.value);
    data.append("agent_id", agents.value);
    data.append("phone_number_id", numbers.value);
    if (file.files.length) data.append("contacts", file.files[0], file.files[0].name);
    for (const key of ["max_concurrent_calls", "retries_per_contact", "retry_delay_seconds"]) {
      if (inputs[key].value.trim()) data.append(key, inputs[key].value.trim());
    }
    if (inputs.scheduled_at.value) {
      const when = new Date(inputs.scheduled_at.value); // local time, sent in UTC
      data.append("scheduled_at", Number.isNaN(when.getTime()) ? inputs.scheduled_at.value : when.toISOString());
    }
    const chosen = days.filter((d) => d.checked).map((d) => d.value);
    if (chosen.length || start.value.trim() || end.value.trim()) {
      const callingWindow = {days: chosen};
      if (start.value.trim()) callingWindow.start = start.value.trim();
      if (end.value.trim()) callingWindow.end = end.value.trim();
      data.append("calling_window", JSON.stringify(callingWindow));
    }
    if (policy.value.trim()) data.append("retry_policy", policy.value.trim());
    return data;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    submitting(form, async () => {
      try {
        const campaign = await api.request("POST", "/campaigns", {form: formData()});
        const report = reportSection({api, vocabulary, campaign});
        replace(reportBox, report.element);
        form.reset();
        const r = campaign.import_report;
        announce(`Campaign “${campaign.name}” created: ${r.rows_accepted} contacts imported, ${r.rows_rejected} rows rejected.`);
        report.focus();
      } catch (error) {
        clear(reportBox);
        showError(form, error, "The campaign was not created");
      }
    });
  });

  async function load() {
    const [agentList, numberList] = await Promise.all([api.all("/agents"), api.all("/phone-numbers")]);
    const active = agentList.filter((a) => a.status === "active");
    const enabled = numberList.filter((n) => n.outbound_enabled);
    replace(agents, ...active.map((a) => h("option", {value: a.id}, a.name)));
    replace(numbers, ...enabled.map((n) => h("option", {value: n.id}, n.label ? `${n.number} (${n.label})` : n.number)));
    const lacking = [];
    if (!active.length) lacking.push(h("li", {}, h("a", {href: "#/agents"}, "Create an agent"), " (none is active)."));
    if (!enabled.length) lacking.push(h("li", {}, h("a", {href: "#/numbers"}, "Add a phone number"), " (none is enabled for outbound calls)."));
    missing.hidden = !lacking.length;
    replace(missing, h("p", {}, "A campaign needs an active agent and a caller number:"), h("ul", {}, ...lacking));
  }

  const element = h("section", {},
    h("p", {}, h("a", {href: "#/campaigns"}, "← Campaigns")),
    h("h1", {id: "new-campaign-title"}, "New campaign"),
    reportBox, missing, form);
  return {element, title: "New campaign", ready: load()};
}
