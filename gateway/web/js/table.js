// A table over one of the API's lists: zero-based pages of `page_size`, with Previous and
// Next. `load(page)` returns the API's page object ({page, page_size, total, has_more, data}).

import {alertError, fmtNumber, h, replace} from "./dom.js";

export class PagedTable {
  // columns: [{label, cell(row) -> text or node, num: bool}]; noun: "contacts".
  constructor({name, caption, columns, load, noun = "rows", empty = "Nothing here yet."}) {
    this.columns = columns;
    this.load = load;
    this.noun = noun;
    this.emptyText = empty;
    this.page = 0;
    this.result = null;
    this.generation = 0;
    this.body = h("tbody");
    this.captionText = h("span", {}, caption);
    this.table = h("table", {dataset: {table: name}},
      h("caption", {}, this.captionText),
      h("thead", {}, h("tr", {}, ...columns.map((c) =>
        h("th", {class: c.num ? "num" : "", attrs: {scope: "col"}}, c.label)))),
      this.body);
    this.info = h("span", {class: "page-info", dataset: {pageInfo: name}});
    this.previous = h("button", {type: "button", class: "secondary", text: "Previous page",
      on: {click: () => this.show(this.page - 1)}});
    this.next = h("button", {type: "button", class: "secondary", text: "Next page",
      on: {click: () => this.show(this.page + 1)}});
    this.element = h("div", {class: "paged"},
      h("div", {class: "table-wrap"}, this.table),
      h("div", {class: "pager", attrs: {role: "group", "aria-label": `${caption}: pages`}},
        this.previous, this.info, this.next));
    this.previous.disabled = true;
    this.next.disabled = true;
  }

  async show(page = this.page) {
    const generation = ++this.generation; // a slower earlier answer never wins
    this.table.setAttribute("aria-busy", "true");
    try {
      const result = await this.load(Math.max(0, page));
      if (generation !== this.generation) return;
      this.page = result.page;
      this.result = result;
      this.render();
    } catch (error) {
      if (generation === this.generation) alertError(`Could not load the ${this.noun}: ${error.message}`);
    } finally {
      if (generation === this.generation) this.table.removeAttribute("aria-busy");
    }
  }

  reload() {
    return this.show(this.page);
  }

  render() {
    const {data, total, page_size: size, has_more: more} = this.result;
    // Keep the keyboard where it was when the rows are drawn again (a poll, a refresh).
    const focused = this.body.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    const rows = data.map((row) => h("tr", {dataset: {id: row.id ?? ""}},
      ...this.columns.map((c, i) => {
        const value = c.cell(row);
        return h(i === 0 ? "th" : "td", {class: c.num ? "num" : c.wrap ? "wrap" : "", attrs: i === 0 ? {scope: "row"} : {}}, value);
      })));
    if (!rows.length) {
      rows.push(h("tr", {}, h("td", {attrs: {colspan: this.columns.length}, class: "muted"},
        total > 0 ? "No rows on this page." : this.emptyText)));
    }
    replace(this.body, ...rows);
    const pages = Math.max(1, Math.ceil(total / size));
    this.info.textContent = `Page ${fmtNumber(this.page + 1)} of ${fmtNumber(pages)} · ${fmtNumber(total)} ${this.noun}`;
    this.previous.disabled = this.page === 0;
    this.next.disabled = !more;
    if (focused) this.body.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  }
}
