// Outcomes over time: one line per outcome (attempts ended so far, as the snapshots count
// them), drawn as SVG by hand. The same figures are in a table below it for screen readers
// and for anyone who wants the numbers.

import {capitalised, fmtClock, fmtNumber, h, replace, svg, uniqueId} from "./dom.js";

const WIDTH = 640;
const HEIGHT = 260;
const MARGIN = {left: 48, right: 16, top: 14, bottom: 30};
const TABLE_ROWS = 30;

function niceCeiling(value) {
  if (value <= 5) return Math.max(1, Math.ceil(value));
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function elapsed(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(seconds % 60).padStart(2, "0")} s`;
}

export class OutcomeChart {
  constructor(outcomes, {maxSamples = 600} = {}) {
    this.outcomes = outcomes;
    this.maxSamples = maxSamples;
    this.samples = [];
    const titleId = uniqueId("chart-title");
    const descId = uniqueId("chart-desc");
    this.title = svg("title", {id: titleId}, "Call outcomes over time");
    this.desc = svg("desc", {id: descId}, "No snapshot received yet.");
    this.plot = svg("g", {class: "plot"});
    this.svg = svg("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${titleId} ${descId}`,
      class: "outcome-chart",
    }, this.title, this.desc, this.plot);
    this.legend = h("ul", {class: "legend", attrs: {"aria-label": "Legend"}});
    this.tableBody = h("tbody");
    this.tableHead = h("tr");
    this.table = h("table", {class: "chart-data"},
      h("caption", {}, `Outcomes by snapshot (the latest ${TABLE_ROWS}, newest first)`),
      h("thead", {}, this.tableHead), this.tableBody);
    this.element = h("figure", {class: "chart"},
      this.svg, this.legend,
      h("details", {}, h("summary", {}, "The chart's figures as a table"),
        h("div", {class: "table-wrap"}, this.table)));
    this.render();
  }

  add(snapshot) {
    const values = {};
    for (const outcome of this.outcomes) values[outcome] = snapshot.outcomes?.[outcome] ?? 0;
    this.samples.push({at: Date.now(), values});
    if (this.samples.length > this.maxSamples) {
      // Halve the resolution of the history, keeping the newest sample.
      const last = this.samples[this.samples.length - 1];
      this.samples = this.samples.filter((_, i) => i % 2 === 0);
      if (this.samples[this.samples.length - 1] !== last) this.samples.push(last);
    }
    this.render();
  }

  shown() {
    // Outcomes that have happened at least once; none yet: the chart is empty.
    return this.outcomes.filter((o) => this.samples.some((s) => s.values[o] > 0));
  }

  render() {
    const shown = this.shown();
    const samples = this.samples;
    const plotW = WIDTH - MARGIN.left - MARGIN.right;
    const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
    const top = niceCeiling(Math.max(1, ...samples.flatMap((s) => shown.map((o) => s.values[o]))));
    const t0 = samples.length ? samples[0].at : 0;
    const span = samples.length > 1 ? samples[samples.length - 1].at - t0 : 0;
    const x = (at) => MARGIN.left + (span > 0 ? ((at - t0) / span) * plotW : 0);
    const y = (value) => MARGIN.top + plotH - (value / top) * plotH;
    const parts = [];
    for (const value of [0, top / 2, top]) {
      parts.push(svg("line", {class: value === 0 ? "axis" : "grid", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value)}));
      parts.push(svg("text", {x: MARGIN.left - 6, y: y(value) + 4, "text-anchor": "end"}, fmtNumber(value)));
    }
    parts.push(svg("line", {class: "axis", x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + plotH}));
    if (samples.length) {
      parts.push(svg("text", {x: MARGIN.left, y: HEIGHT - 8, "text-anchor": "start"}, fmtClock(new Date(t0))));
      if (span > 0) parts.push(svg("text", {x: WIDTH - MARGIN.right, y: HEIGHT - 8, "text-anchor": "end"}, `+${elapsed(span)}`));
    }
    for (const outcome of shown) {
      const points = samples.map((s) => `${x(s.at).toFixed(1)},${y(s.values[outcome]).toFixed(1)}`);
      parts.push(svg("polyline", {class: `line outcome-${outcome}`, points: points.join(" "), "data-outcome": outcome, "data-points": points.length}));
      const last = samples[samples.length - 1];
      parts.push(svg("circle", {class: `dot outcome-${outcome}`, cx: x(last.at).toFixed(1), cy: y(last.values[outcome]).toFixed(1), r: 3.5}));
    }
    replace(this.plot, ...parts);

    replace(this.legend, ...shown.map((o) => h("li", {},
      svg("svg", {class: "swatch", width: 28, height: 10, viewBox: "0 0 28 10", "aria-hidden": "true"},
        svg("line", {class: `line outcome-${o}`, x1: 1, x2: 27, y1: 5, y2: 5})),
      capitalised(o))));
    if (!shown.length) this.legend.append(h("li", {class: "muted"}, "No call has ended yet."));

    const latest = samples[samples.length - 1];
    this.desc.textContent = latest
      ? `${samples.length} snapshots over ${elapsed(span)}. Latest: ` +
        (shown.length ? shown.map((o) => `${capitalised(o)} ${latest.values[o]}`).join(", ") : "no call has ended yet") + "."
      : "No snapshot received yet.";

    replace(this.tableHead, h("th", {attrs: {scope: "col"}}, "Time"),
      ...this.outcomes.map((o) => h("th", {class: "num", attrs: {scope: "col"}}, capitalised(o))));
    replace(this.tableBody, ...samples.slice(-TABLE_ROWS).reverse().map((s) =>
      h("tr", {}, h("th", {attrs: {scope: "row"}}, fmtClock(new Date(s.at))),
        ...this.outcomes.map((o) => h("td", {class: "num"}, fmtNumber(s.values[o]))))));
  }
}
