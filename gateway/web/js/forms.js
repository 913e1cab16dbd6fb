// Forms: an API error that names a field is shown beside that field (and the field gets the
// focus); any other error goes to the page's alert region.

import {alertError} from "./dom.js";

export function clearFieldErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll("[data-field] .error")) el.textContent = "";
}

function fieldBox(form, name) {
  // "calling_window.days" is shown on calling_window, "retry_policy.busy.delay_seconds" on
  // retry_policy: the form's field that holds the part at fault.
  const parts = name.split(".");
  for (let n = parts.length; n > 0; n -= 1) {
    const box = form.querySelector(`[data-field="${CSS.escape(parts.slice(0, n).join("."))}"]`);
    if (box) return box;
  }
  return null;
}

// Shows `error` (an ApiError) on the form; `what` starts the alert's sentence.
export function showError(form, error, what) {
  clearFieldErrors(form);
  const box = error.field ? fieldBox(form, error.field) : null;
  if (box) {
    const folded = box.closest("details");
    if (folded) folded.open = true;
    const control = box.querySelector("input, select, textarea") ?? box;
    box.querySelector(".error").textContent = error.message;
    (box.tagName === "FIELDSET" ? box : control).setAttribute("aria-invalid", "true");
    control.focus();
    alertError(`${what}: ${error.message}`);
    return;
  }
  alertError(`${what}: ${error.message}`);
}

// Runs `work` with the form's submit button disabled (no double submission).
export async function submitting(form, work) {
  const buttons = [...form.querySelectorAll("button[type=submit]")];
  for (const b of buttons) b.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    for (const b of buttons) b.disabled = false;
    form.removeAttribute("aria-busy");
  }
}
