// Start, pause, resume and stop: each button is enabled only in the statuses its operation
// is allowed from (the gateway's own list, /ui/vocabulary.json).

import {alertError, announce, h, words} from "../dom.js";

const VERBS = [
  ["start", "Start"],
  ["pause", "Pause"],
  ["resume", "Resume"],
  ["stop", "Stop"],
];

// onChanged(campaign) after a transition; `context` names the campaign in each button's
// accessible name (lists have one set of buttons per row).
export function lifecycleButtons({api, vocabulary, campaign, onChanged, context = null}) {
  let current = campaign;
  let busy = false;
  const buttons = new Map();
  const group = h("div", {class: "actions", attrs: {role: "group", "aria-label": `Campaign actions${context ? `: ${context}` : ""}`}});

  function sync() {
    for (const [verb, button] of buttons) {
      button.disabled = busy || !vocabulary.transitions[verb].includes(current.status);
    }
  }

  async function act(verb) {
    if (verb === "stop" && !window.confirm(`Stop the campaign “${current.name}”? Contacts not dialed yet are skipped; it cannot be started again.`)) return;
    busy = true;
    sync();
    try {
      const changed = await api.post(`/campaigns/${current.id}/${verb}`);
      current = changed;
      announce(`Campaign “${changed.name}” is ${words(changed.status)}.`);
      onChanged?.(changed);
    } catch (error) {
      alertError(`Could not ${verb} “${current.name}”: ${error.message}`);
    } finally {
      busy = false;
      sync();
    }
  }

  for (const [verb, label] of VERBS) {
    const button = h("button", {
      type: "button", class: verb === "stop" ? "danger" : "secondary", text: label,
      dataset: {action: verb, key: `${verb}-${campaign.id}`},
      attrs: context ? {"aria-label": `${label} ${context}`} : {},
      on: {click: () => act(verb)},
    });
    buttons.set(verb, button);
    group.append(button);
  }
  sync();

  return {
    element: group,
    update(campaignNow) {
      current = {...current, ...campaignNow};
      sync();
    },
  };
}
