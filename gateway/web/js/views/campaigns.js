// The campaigns list: newest first, a status filter, live status by polling (one request
// per POLL_MS while the tab is visible), and each campaign's lifecycle buttons.

import {badge, field, fmtNumber, fmtTime, h, select} from "../dom.js";
import {PagedTable} from "../table.js";
import {lifecycleButtons} from "./lifecycle.js";

const POLL_MS = 3000;

export function progressOf(counts) {
  const done = (counts.completed ?? 0) + (counts.failed ?? 0) + (counts.skipped ?? 0);
  return {done, total: counts.total ?? 0};
}

export function campaignsView({api, vocabulary}) {
  let status = "";
  let timer = null;
  const filter = select(vocabulary.campaign_statuses, {blank: "Any status"});
  filter.addEventListener("change", () => {
    status = filter.value;
    table.show(0);
  });

  const table = new PagedTable({
    name: "campaigns",
    caption: "Campaigns, newest first",
    noun: "campaigns",
    empty: "No campaign yet: create one from a CSV of contacts.",
    load: (page) => api.get("/campaigns", {page, status}),
    columns: [
      {label: "Name", cell: (c) => h("a", {href: `#/campaigns/${c.id}`, dataset: {key: `open-${c.id}`}}, c.name)},
      {label: "Status", cell: (c) => badge(c.status)},
      {label: "Progress", cell: (c) => {
        const {done, total} = progressOf(c.contact_counts);
        return h("span", {class: "progress-cell"},
          h("progress", {max: Math.max(total, 1), value: done, attrs: {"aria-label": `${c.name}: ${done} of ${total} contacts done`}}),
          ` ${fmtNumber(done)} / ${fmtNumber(total)}`);
      }},
      {label: "Completed", num: true, cell: (c) => fmtNumber(c.contact_counts.completed)},
      {label: "Failed", num: true, cell: (c) => fmtNumber(c.contact_counts.failed)},
      {label: "Created", cell: (c) => fmtTime(c.created_at)},
      {label: "Actions", cell: (c) => lifecycleButtons({
        api, vocabulary, campaign: c, context: c.name, onChanged: () => table.reload(),
      }).element},
    ],
  });

  function poll() {
    timer = window.setTimeout(async () => {
      if (!document.hidden) await table.reload();
      if (timer !== null) poll();
    }, POLL_MS);
  }

  const element = h("section", {class: "campaigns"},
    h("div", {class: "page-head"},
      h("h1", {}, "Campaigns"),
      h("a", {class: "button", href: "#/campaigns/new"}, "New campaign")),
    h("div", {class: "toolbar"},
      field({id: "campaign-status-filter", label: "Show", input: filter}),
      h("p", {class: "muted"}, `Statuses refresh every ${POLL_MS / 1000} s.`)),
    table.element);

  const ready = table.show(0).then(poll);
  return {
    element,
    title: "Campaigns",
    ready,
    unmount() {
      window.clearTimeout(timer);
      timer = null;
    },
  };
}
