// Small DOM helpers. Text always goes in as text (textContent, text nodes): no markup is
// ever built from strings, so nothing the API returns can become script.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// h("button", {type: "button", class: "secondary", on: {click}}, "Start")
// Keys: class, text, on (event listeners), dataset, attrs (set as attributes, aria-* and
// the like); any other key is set as a property (value, disabled, htmlFor, hidden...).
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "on") for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "attrs") {
      for (const [name, v] of Object.entries(value)) if (v !== null && v !== undefined && v !== false) el.setAttribute(name, v === true ? "" : String(v));
    } else el[key] = value;
  }
  append(el, children);
  return el;
}

// An SVG element: every prop is an attribute.
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

let uid = 0;
export function uniqueId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

// The polite live region says what happened; the alert region what went wrong. A message
// is written after the region is emptied, so saying the same thing twice is heard twice.
function say(id, message) {
  const region = document.getElementById(id);
  if (!region) return;
  region.textContent = "";
  if (message) window.setTimeout(() => { region.textContent = message; }, 30);
}

export function announce(message) {
  say("alert", "");
  say("status", message);
}

export function alertError(message) {
  say("status", "");
  say("alert", message);
}

export function clearMessages() {
  say("status", "");
  say("alert", "");
}

const dateTime = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "medium"});
const timeOnly = new Intl.DateTimeFormat(undefined, {timeStyle: "medium"});
const numberFormat = new Intl.NumberFormat();

export const DASH = "—";

export function fmtTime(iso) {
  if (!iso) return DASH;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateTime.format(date);
}

export function fmtClock(date) {
  return timeOnly.format(date);
}

export function fmtNumber(value) {
  return value === null || value === undefined ? DASH : numberFormat.format(value);
}

// "no_answer" -> "no answer": the API's words, readable.
export function words(value) {
  return value === null || value === undefined ? DASH : String(value).replaceAll("_", " ");
}

export function capitalised(value) {
  const text = words(value);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function badge(status, text) {
  return h("span", {class: `badge ${status}`, dataset: {status}}, text ?? words(status));
}

export function field({id, label, input, hint, name}) {
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  input.id = id;
  if (name) input.name = name;
  input.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  return h("div", {class: "field", dataset: {field: name ?? id}},
    h("label", {htmlFor: id}, label),
    input,
    hint ? h("span", {class: "hint", id: hintId}, hint) : null,
    h("span", {class: "error", id: errorId}));
}

export function select(options, {value, blank} = {}) {
  const el = h("select", {});
  if (blank !== undefined) el.append(h("option", {value: ""}, blank));
  for (const option of options) {
    const [optionValue, text] = Array.isArray(option) ? option : [option, capitalised(option)];
    el.append(h("option", {value: optionValue, selected: optionValue === value}, text));
  }
  return el;
}
