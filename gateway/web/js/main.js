// The dashboard: sign-in, navigation between its pages (the part of the URL after "#",
// which never holds the key), and the header.

import {Api} from "./api.js";
import {alertError, announce, clearMessages, h, replace} from "./dom.js";
import * as session from "./session.js";
import {agentsView} from "./views/agents.js";
import {campaignView} from "./views/campaign.js";
import {campaignsView} from "./views/campaigns.js";
import {newCampaignView} from "./views/new_campaign.js";
import {numbersView} from "./views/numbers.js";
import {signInView} from "./views/signin.js";
import {deliveriesView, webhooksView} from "./views/webhooks.js";

const UUID = "([0-9a-fA-F-]{36})";
const ROUTES = [
  [/^#\/campaigns\/new$/, "campaigns", newCampaignView],
  [new RegExp(`^#/campaigns/${UUID}$`), "campaigns", campaignView],
  [/^#\/campaigns$/, "campaigns", campaignsView],
  [/^#\/agents$/, "agents", agentsView],
  [/^#\/numbers$/, "numbers", numbersView],
  [/^#\/webhooks$/, "webhooks", webhooksView],
  [new RegExp(`^#/webhooks/${UUID}$`), "webhooks", deliveriesView],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const account = document.getElementById("account");
const caps = document.getElementById("account-caps");

const app = {
  api: null,
  vocabulary: null,
  current: null, // the page shown: {unmount()}
};

function setSignedIn(signedIn) {
  nav.hidden = !signedIn;
  account.hidden = !signedIn;
  if (!signedIn) caps.textContent = "";
}

function unmount() {
  try {
    app.current?.unmount?.();
  } finally {
    app.current = null;
  }
}

function signOut(message) {
  unmount();
  session.signOut();
  app.api = null;
  setSignedIn(false);
  showSignIn();
  if (message) alertError(message);
  else announce("Signed out.");
}

function showCaps(limits) {
  const parts = [`${limits.concurrent_max} concurrent calls`, `${limits.calls_per_minute} per minute`];
  if (limits.daily_calls_max !== null) parts.push(`${limits.daily_calls_max} a day`);
  caps.textContent = `Account caps: ${parts.join(", ")}`;
}

// A key is accepted once GET /call-limits answers with it (one cheap read).
async function verify(key) {
  const api = new Api(key);
  const limits = await api.get("/call-limits");
  return {api, limits};
}

function useKey(api, limits) {
  app.api = api;
  api.onUnauthorized = () => signOut("The gateway no longer accepts this API key: sign in again.");
  setSignedIn(true);
  showCaps(limits);
}

function showSignIn() {
  unmount();
  document.title = "Sign in · Campaign gateway";
  const view = signInView({
    remembered: session.remembered(),
    async submit(key, remember) {
      const {api, limits} = await verify(key); // throws ApiError: the view shows it
      session.signIn(key, remember);
      useKey(api, limits);
      announce("Signed in.");
      if (!ROUTES.some(([pattern]) => pattern.test(location.hash))) location.hash = "#/campaigns";
      else route();
    },
  });
  replace(main, view.element);
  app.current = view;
  view.focus();
}

function markNav(section) {
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  if (!app.api) {
    showSignIn();
    return;
  }
  const hash = location.hash || "#/campaigns";
  const found = ROUTES.map(([pattern, section, view]) => [pattern.exec(hash), section, view])
    .find(([match]) => match);
  if (!found) {
    location.replace("#/campaigns");
    return;
  }
  const [match, section, view] = found;
  unmount();
  clearMessages();
  markNav(section);
  const page = view({api: app.api, vocabulary: app.vocabulary}, ...match.slice(1));
  app.current = page;
  replace(main, page.element);
  document.title = `${page.title} · Campaign gateway`;
  main.querySelector("h1")?.setAttribute("tabindex", "-1");
  main.querySelector("h1")?.focus();
  try {
    await page.ready;
  } catch (error) {
    if (app.current === page) alertError(error.message);
  }
}

async function boot() {
  const response = await fetch("/ui/vocabulary.json", {credentials: "omit"});
  app.vocabulary = await response.json();
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault(); // the fragment is the page's route: move the focus instead
    main.focus();
  });
  window.addEventListener("hashchange", () => route());
  const key = session.restore();
  if (key) {
    try {
      const {api, limits} = await verify(key);
      useKey(api, limits);
    } catch (error) {
      session.signOut();
      if (error.status === 401) alertError("The saved API key is no longer accepted: sign in again.");
      else alertError(`Could not reach the gateway: ${error.message}`);
    }
  }
  route();
}

boot().catch((error) => {
  replace(main, h("p", {class: "error"}, `The dashboard could not start: ${error.message}`));
});
