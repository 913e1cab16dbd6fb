// Agents: what the campaigns' calls are placed for. List, create, delete.

import {alertError, announce, badge, DASH, field, fmtNumber, fmtTime, h, select} from "../dom.js";
import {clearFieldErrors, showError, submitting} from "../forms.js";
import {PagedTable} from "../table.js";

export function agentsView({api, vocabulary}) {
  const inputs = {
    name: h("input", {type: "text", maxLength: 200, autocomplete: "off", required: true}),
    greeting: h("textarea", {rows: 3, placeholder: "Hi {{first_name}}, this is Ava from…"}),
    status: select(vocabulary.agent_statuses, {value: "active"}),
    sip_uri: h("input", {type: "text", placeholder: "sip:agent@10.0.0.5", autocomplete: "off", spellcheck: false}),
    max_concurrent_calls: h("input", {type: "number", min: 1, max: 10000, step: 1, attrs: {inputmode: "numeric"}}),
  };

  const table = new PagedTable({
    name: "agents", caption: "Agents, oldest first", noun: "agents",
    empty: "No agent yet.",
    load: (page) => api.get("/agents", {page}),
    columns: [
      {label: "Name", cell: (a) => a.name},
      {label: "Status", cell: (a) => badge(a.status)},
      {label: "SIP URI", wrap: true, cell: (a) => a.sip_uri ?? DASH},
      {label: "Max concurrent calls", num: true, cell: (a) => fmtNumber(a.max_concurrent_calls)},
      {label: "Greeting variables", cell: (a) => (a.variables.length ? a.variables.join(", ") : DASH)},
      {label: "Created", cell: (a) => fmtTime(a.created_at)},
      {label: "Actions", cell: (a) => h("button", {
        type: "button", class: "danger", text: "Delete", dataset: {key: `delete-${a.id}`},
        attrs: {"aria-label": `Delete agent ${a.name}`},
        on: {click: () => remove(a)},
      })},
    ],
  });

  async function remove(agent) {
    if (!window.confirm(`Delete the agent “${agent.name}”? Running campaigns that use it fail.`)) return;
    try {
      await api.del(`/agents/${agent.id}`);
      announce(`Agent “${agent.name}” deleted.`);
      await table.reload();
    } catch (error) {
      alertError(`Could not delete “${agent.name}”: ${error.message}`);
    }
  }

  const form = h("form", {class: "stacked panel", method: "post", action: "#", noValidate: true, attrs: {"aria-labelledby": "new-agent-title"}},
    h("h2", {id: "new-agent-title"}, "New agent"),
    field({id: "agent-name", name: "name", label: "Name", input: inputs.name}),
    field({id: "agent-greeting", name: "greeting", label: "Greeting (optional)", input: inputs.greeting,
      hint: "{{column}} is replaced by the contact's field of that CSV column."}),
    h("div", {class: "row"},
      field({id: "agent-status", name: "status", label: "Status", input: inputs.status}),
      field({id: "agent-max", name: "max_concurrent_calls", label: "Max concurrent calls (optional)", input: inputs.max_concurrent_calls, hint: "Empty: no cap"})),
    field({id: "agent-sip", name: "sip_uri", label: "SIP URI (optional)", input: inputs.sip_uri,
      hint: "Where answered calls are connected; required on a gateway that dials over SIP."}),
    h("button", {type: "submit"}, "Create agent"));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const body = {name: inputs.name.value, status: inputs.status.value};
    if (inputs.greeting.value) body.greeting = inputs.greeting.value;
    if (inputs.sip_uri.value.trim()) body.sip_uri = inputs.sip_uri.value.trim();
    if (inputs.max_concurrent_calls.value.trim()) {
      const cap = Number(inputs.max_concurrent_calls.value);
      body.max_concurrent_calls = Number.isInteger(cap) ? cap : inputs.max_concurrent_calls.value;
    }
    submitting(form, async () => {
      try {
        const agent = await api.post("/agents", body);
        form.reset();
        announce(`Agent “${agent.name}” created.`);
        await table.reload();
      } catch (error) {
        showError(form, error, "The agent was not created");
      }
    });
  });

  const element = h("section", {},
    h("h1", {}, "Agents"),
    table.element,
    form);
  return {element, title: "Agents", ready: table.show(0)};
}
