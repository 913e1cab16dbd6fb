// Sign in with an API key. The form is never submitted by the browser (the page's
// Content-Security-Policy forbids it, and its method is POST): the key is read from the
// field, checked with one API call, and the field is emptied.

import {h} from "../dom.js";
import {KEY_PATTERN} from "../session.js";

export function signInView({remembered, submit}) {
  const input = h("input", {
    id: "api-key", name: "api_key", type: "password", required: true, autocomplete: "off",
    spellcheck: false, attrs: {autocapitalize: "off", "aria-describedby": "api-key-hint api-key-error"},
  });
  const remember = h("input", {id: "remember-key", type: "checkbox", checked: remembered});
  const error = h("p", {id: "api-key-error", class: "error", attrs: {role: "alert"}});
  const button = h("button", {type: "submit"}, "Sign in");
  const form = h("form", {class: "signin stacked", method: "post", action: "#", noValidate: true,
    attrs: {"aria-labelledby": "signin-title"}},
    h("h1", {id: "signin-title"}, "Sign in"),
    h("div", {class: "field"},
      h("label", {htmlFor: "api-key"}, "API key"),
      input,
      h("span", {class: "hint", id: "api-key-hint"},
        "An API key of your account: the bootstrap account's is in ", h("code", {}, "gateway-data/api_key"),
        "; ", h("code", {}, "gateway accounts create"), " makes more."),
      error),
    h("div", {class: "check"}, remember,
      h("label", {htmlFor: "remember-key"}, "Stay signed in in this tab (until it is closed)")),
    button);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    const key = input.value.trim();
    let problem = null;
    if (!key) problem = "Enter an API key.";
    else if (!KEY_PATTERN.test(key)) problem = "That is not an API key: a key is 32 to 256 letters, digits, '-' or '_'.";
    if (problem) {
      error.textContent = problem;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      await submit(key, remember.checked);
      input.value = "";
    } catch (failure) {
      error.textContent = failure.status === 401
        ? `The gateway did not accept this key (${failure.message}).`
        : `Could not sign in: ${failure.message}`;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });

  return {
    element: form,
    title: "Sign in",
    focus: () => input.focus(),
    unmount: () => { input.value = ""; },
  };
}
