// A workspace's usage: tokens per day stacked by model (input or output or both), requests and 429s per
// day, for a chosen range; the same numbers as a table and as a CSV download. One source: the admin API's
// GET /v1/organization/usage/completions (bucket_width=1d, grouped by model).

import { encodeId, get } from "../api.js";
import { busy, count, errorBox, h, loading, show, table } from "../dom.js";

const DAY = 86400;
const PALETTE = ["#1f5fbf", "#e07b00", "#2e9e4f", "#b8336a", "#7a5cc4", "#0f8b8d", "#8d6e00", "#5b6476", "#d1495b"];
const MAX_PAGES = 20;

function utcDay(date) {
  return date.toISOString().slice(0, 10);
}

function dayStart(text) {
  return Math.floor(Date.parse(`${text}T00:00:00Z`) / 1000);
}

// Every bucket of the range (following next_page, bounded), reduced to rows per day and model.
export async function fetchUsage(projectId, startDay, endDay) {
  const start = dayStart(startDay);
  const end = dayStart(endDay) + DAY;
  const days = Math.round((end - start) / DAY);
  const buckets = [];
  let page;
  for (let index = 0; index < MAX_PAGES; index += 1) {
    const result = await get("usage/completions", {
      start_time: start,
      end_time: end,
      bucket_width: "1d",
      project_ids: [projectId],
      group_by: ["model"],
      limit: Math.min(days, 31),
      page,
    });
    buckets.push(...(result.data || []));
    if (!result.has_more || !result.next_page) break;
    page = result.next_page;
  }
  const rows = [];
  for (const bucket of buckets) {
    for (const result of bucket.results || []) {
      rows.push({
        day: utcDay(new Date(bucket.start_time * 1000)),
        start: bucket.start_time,
        model: result.model ?? "(all models)",
        input: result.input_tokens || 0,
        output: result.output_tokens || 0,
        requests: result.num_model_requests || 0,
        rateLimited: typeof result.num_rate_limited_requests === "number" ? result.num_rate_limited_requests : null,
      });
    }
  }
  rows.sort((a, b) => a.start - b.start || a.model.localeCompare(b.model));
  const starts = [];
  for (let t = start; t < end; t += DAY) starts.push(t);
  return { rows, starts };
}

function csvField(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function usageCsv(rows) {
  const header = ["date", "model", "input_tokens", "output_tokens", "num_model_requests", "num_rate_limited_requests"];
  const lines = [header.join(",")];
  for (const r of rows) lines.push([r.day, r.model, r.input, r.output, r.requests, r.rateLimited].map(csvField).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Days on the x axis, in UTC like the buckets: a tick per day (or per 2, 7, 14, 30 as the range grows).
const xAxis = {
  space: 44,
  incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY],
  values: (u, ticks) => ticks.map((t) => utcDay(new Date(t * 1000)).slice(5)),
};
const utc = (seconds) => window.uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");

function chartWidth(element) {
  return Math.max(280, Math.min(element.clientWidth || 800, 1160) - 16);
}

// Stacked bars: each series is drawn at its cumulative height, tallest first, so each model's band shows.
function tokenChart(element, starts, rows, which) {
  const models = [...new Set(rows.map((r) => r.model))];
  const index = new Map(starts.map((t, i) => [t, i]));
  const own = models.map(() => starts.map(() => 0));
  for (const r of rows) {
    const i = index.get(r.start);
    if (i === undefined) continue;
    const value = which === "input" ? r.input : which === "output" ? r.output : r.input + r.output;
    own[models.indexOf(r.model)][i] += value;
  }
  const stacked = [];
  let running = starts.map(() => 0);
  for (const values of own) {
    running = running.map((sum, i) => sum + values[i]);
    stacked.push(running);
  }
  const bars = window.uPlot.paths.bars({ size: [0.6, 48] });
  const series = [{ label: "Day (UTC)", value: (u, t) => (t === null ? "—" : utcDay(new Date(t * 1000))) }];
  const data = [starts];
  for (let m = models.length - 1; m >= 0; m -= 1) {
    const values = own[m];
    series.push({
      label: models[m],
      stroke: PALETTE[m % PALETTE.length],
      fill: PALETTE[m % PALETTE.length],
      paths: bars,
      points: { show: false },
      value: (u, v, si, i) => (i === null || i === undefined ? "—" : count(values[i])),
    });
    data.push(stacked[m]);
  }
  return new window.uPlot(
    {
      width: chartWidth(element),
      height: 260,
      series,
      scales: { x: { time: true, range: (u, min, max) => [min - DAY / 2, max + DAY / 2] }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.1)] } },
      tzDate: utc,
      axes: [xAxis, { size: 70, values: (u, ticks) => ticks.map((t) => count(t)) }],
      cursor: { drag: { x: false, y: false } },
    },
    data,
    element,
  );
}

function requestChart(element, starts, rows) {
  const index = new Map(starts.map((t, i) => [t, i]));
  const requests = starts.map(() => 0);
  const limited = starts.map(() => 0);
  let known = false;
  for (const r of rows) {
    const i = index.get(r.start);
    if (i === undefined) continue;
    requests[i] += r.requests;
    if (r.rateLimited !== null) {
      limited[i] += r.rateLimited;
      known = true;
    }
  }
  const series = [
    { label: "Day (UTC)", value: (u, t) => (t === null ? "—" : utcDay(new Date(t * 1000))) },
    { label: "Requests", stroke: "#1f5fbf", width: 2, points: { size: 7 } },
  ];
  const data = [starts, requests];
  if (known) {
    series.push({ label: "429s (rate limited)", stroke: "#b42318", width: 2, dash: [6, 4], points: { size: 7 } });
    data.push(limited);
  }
  return new window.uPlot(
    {
      width: chartWidth(element),
      height: 200,
      series,
      tzDate: utc,
      scales: {
        x: { time: true, range: (u, min, max) => [min - DAY / 2, max + DAY / 2] },
        y: { range: (u, min, max) => [0, Math.max(5, max * 1.15)] },
      },
      axes: [xAxis, { size: 60 }],
      cursor: { drag: { x: false, y: false } },
    },
    data,
    element,
  );
}

export async function renderUsage(panel, { project }) {
  const today = new Date();
  const from = h("input", { id: "usage-from", type: "date", required: true, value: utcDay(new Date(today.getTime() - 6 * DAY * 1000)) });
  const to = h("input", { id: "usage-to", type: "date", required: true, value: utcDay(today) });
  const show_ = h("button", { type: "submit" }, "Show");
  const output = h("div", { "aria-live": "polite" });
  const choice = (value, label, checked) =>
    h("label", { class: "check" }, h("input", { type: "radio", name: "tokens", value, checked }), label);
  const tokensChoice = h(
    "fieldset",
    {},
    h("legend", {}, "Tokens"),
    choice("both", "Input + output", true),
    choice("input", "Input (prompt)", false),
    choice("output", "Output (completion)", false),
  );
  const form = h(
    "form",
    { class: "card inline", "aria-label": "Usage range" },
    h("label", { for: "usage-from" }, "From (UTC)", from),
    h("label", { for: "usage-to" }, "To (UTC, included)", to),
    show_,
    tokensChoice,
  );
  const tokensTitle = h("h3", { id: "tokens-title" }, "Tokens per day, by model");
  const tokensChart = h("div", { class: "chart", role: "img", "aria-labelledby": "tokens-title" });
  const requestsChart = h("div", { class: "chart", role: "img", "aria-label": "Requests and 429s per day" });
  const tableArea = h("div", {}, loading("usage"));
  const downloadButton = h("button", { type: "button", class: "secondary", disabled: true }, "Download CSV");
  let current = null;
  let plots = [];

  function draw() {
    for (const plot of plots) plot.destroy();
    plots = [];
    tokensChart.replaceChildren(tokensTitle);
    requestsChart.replaceChildren(h("h3", {}, "Requests and 429s per day"));
    if (!current) return;
    const which = form.querySelector("input[name=tokens]:checked").value;
    const body = h("div");
    tokensChart.append(body);
    const requestsBody = h("div");
    requestsChart.append(requestsBody);
    plots.push(tokenChart(body, current.starts, current.rows, which));
    plots.push(requestChart(requestsBody, current.starts, current.rows));
  }

  async function load() {
    if (from.value > to.value) {
      show(output, errorBox(new Error("The range starts after it ends.")));
      return;
    }
    show(tableArea, loading("usage"));
    const result = await busy(show_, output, () => fetchUsage(project.id, from.value, to.value));
    if (!result) {
      tableArea.replaceChildren();
      return;
    }
    current = result;
    downloadButton.disabled = false;
    draw();
    const totals = current.rows.reduce(
      (sum, r) => ({
        input: sum.input + r.input,
        output: sum.output + r.output,
        requests: sum.requests + r.requests,
        rateLimited: r.rateLimited === null ? sum.rateLimited : (sum.rateLimited || 0) + r.rateLimited,
      }),
      { input: 0, output: 0, requests: 0, rateLimited: null },
    );
    const rows = current.rows.length ? [...current.rows, { day: "Total", model: "", ...totals }] : [];
    show(
      tableArea,
      table(
        [
          { title: "Day (UTC)", cell: (r) => r.day },
          { title: "Model", cell: (r) => r.model },
          { title: "Input tokens", num: true, cell: (r) => count(r.input) },
          { title: "Output tokens", num: true, cell: (r) => count(r.output) },
          { title: "Requests", num: true, cell: (r) => count(r.requests) },
          { title: "429s", num: true, cell: (r) => (r.rateLimited === null ? "—" : count(r.rateLimited)) },
        ],
        rows,
        { empty: "No requests in this range." },
      ),
    );
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  tokensChoice.addEventListener("change", draw);
  downloadButton.addEventListener("click", () => {
    if (current) download(`usage-${project.id}-${from.value}-${to.value}.csv`, usageCsv(current.rows));
  });
  let width = 0;
  const resize = new ResizeObserver(() => {
    const next = chartWidth(tokensChart);
    if (current && Math.abs(next - width) > 8) {
      width = next;
      for (const plot of plots) plot.setSize({ width: next, height: plot.height });
    }
  });
  resize.observe(tokensChart);

  show(panel, h("h2", {}, "Usage"), form, output, tokensChart, requestsChart, h("p", {}, downloadButton), tableArea);
  await load();
}
