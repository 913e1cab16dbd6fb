// Phone numbers: the caller IDs campaigns dial from. List, create, delete.

import {alertError, announce, badge, DASH, field, fmtTime, h} from "../dom.js";
import {clearFieldErrors, showError, submitting} from "../forms.js";
import {PagedTable} from "../table.js";

export function numbersView({api}) {
  const inputs = {
    number: h("input", {type: "tel", autocomplete: "off", placeholder: "+14155550100", required: true}),
    label: h("input", {type: "text", maxLength: 200, autocomplete: "off"}),
    outbound_enabled: h("input", {type: "checkbox", checked: true, id: "number-outbound"}),
  };

  const table = new PagedTable({
    name: "numbers", caption: "Phone numbers, oldest first", noun: "numbers",
    empty: "No phone number yet.",
    load: (page) => api.get("/phone-numbers", {page}),
    columns: [
      {label: "Number", cell: (n) => n.number},
      {label: "Label", cell: (n) => n.label || DASH},
      {label: "Outbound", cell: (n) => (n.outbound_enabled ? badge("active", "enabled") : badge("disabled", "disabled"))},
      {label: "Created", cell: (n) => fmtTime(n.created_at)},
      {label: "Actions", cell: (n) => h("button", {
        type: "button", class: "danger", text: "Delete", dataset: {key: `delete-${n.id}`},
        attrs: {"aria-label": `Delete number ${n.number}`},
        on: {click: () => remove(n)},
      })},
    ],
  });

  async function remove(number) {
    if (!window.confirm(`Delete ${number.number}? Running campaigns that dial from it fail.`)) return;
    try {
      await api.del(`/phone-numbers/${number.id}`);
      announce(`Number ${number.number} deleted.`);
      await table.reload();
    } catch (error) {
      alertError(`Could not delete ${number.number}: ${error.message}`);
    }
  }

  const form = h("form", {class: "stacked panel", method: "post", action: "#", noValidate: true, attrs: {"aria-labelledby": "new-number-title"}},
    h("h2", {id: "new-number-title"}, "New phone number"),
    field({id: "number-number", name: "number", label: "Number (E.164)", input: inputs.number, hint: "With its +: +14155550100"}),
    field({id: "number-label", name: "label", label: "Label (optional)", input: inputs.label}),
    h("div", {class: "check", dataset: {field: "outbound_enabled"}}, inputs.outbound_enabled,
      h("label", {htmlFor: "number-outbound"}, "Enabled for outbound calls"), h("span", {class: "error"})),
    h("button", {type: "submit"}, "Add number"));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const body = {number: inputs.number.value.trim(), outbound_enabled: inputs.outbound_enabled.checked};
    if (inputs.label.value.trim()) body.label = inputs.label.value.trim();
    submitting(form, async () => {
      try {
        const number = await api.post("/phone-numbers", body);
        form.reset();
        announce(`Number ${number.number} added.`);
        await table.reload();
      } catch (error) {
        showError(form, error, "The number was not added");
      }
    });
  });

  const element = h("section", {},
    h("h1", {}, "Phone numbers"),
    table.element,
    form);
  return {element, title: "Phone numbers", ready: table.show(0)};
}
