// One run: summary figures, the timeline of every compartment (bucketed on t to the
// chart's width), parameters, per-field statistics, exports. A running run refreshes.
import { api, apiBase, onThemeChange, plotly, previewChart, showError, startSession, themedLayout } from "./common.js";
import {
  PLOT_CONFIG, RUN_ID, UNIT, colorOf, dateTime, debounce, el, figure, number, orderFields,
  parameterSymbol, plotPixels, runAxes, statusBadge, statusOf, summaryFigures, tBucket,
} from "./runs_common.js";

const REFRESH_MS = 5000;
const runId = decodeURIComponent(location.pathname.replace(/^\/ui\/runs\//, ""));
const path = "/v1/runs/" + encodeURIComponent(runId);
let last = null; // {run, summary, timeline} of the latest load
let timer = 0;
let loading = 0;
let drawnPixels = 0;

function missing(reason) {
  document.getElementById("loading").hidden = true;
  document.getElementById("content").hidden = true;
  document.getElementById("missing").hidden = false;
  document.getElementById("missing-title").textContent = `No run named “${runId}”`;
  document.getElementById("missing-text").textContent = reason;
  document.getElementById("title").textContent = "No such run";
  document.title = "No such run · StatisticsService";
}

function renderHead(run) {
  document.getElementById("title").textContent = run.name || run.id;
  document.title = `${run.name || run.id} · Runs · StatisticsService`;
  document.getElementById("status").replaceChildren(statusBadge(run.status));
  const bits = [
    run.name ? `id ${run.id}` : null,
    `${(run.model || run.kind).toUpperCase()} ${run.kind}`,
    run.device ? `device ${run.device}` : null,
    `started ${dateTime(run.started_at)}`,
    run.finished_at ? `${run.status} ${dateTime(run.finished_at)}` : null,
    run.message ? `“${run.message}”` : null,
  ];
  document.getElementById("subtitle").textContent = bits.filter(Boolean).join(" · ");
  document.getElementById("live").hidden = run.status !== "running";
}

function renderFigures(run, summary) {
  const cards = [
    figure("steps", "Steps", number(run.steps), run.last_t === null ? "none yet" : `last t = ${number(run.last_t)}`),
    ...summaryFigures(summary).map((row) => figure(...row)),
  ];
  document.getElementById("figures").replaceChildren(...cards);
}

function renderParameters(run) {
  const rows = Object.entries(run.parameters || {}).map(([name, value]) =>
    el("tr", { "data-parameter": name }, el("td", { text: parameterSymbol(name) }), el("td", { text: number(value) })),
  );
  rows.push(
    el("tr", {}, el("td", { text: "seconds per t (stored)" }), el("td", { text: number(run.tick_seconds) })),
    el("tr", {}, el("td", { text: "t = 0 at" }), el("td", { text: dateTime(run.time_origin), title: run.time_origin })),
  );
  document.querySelector("#params tbody").replaceChildren(...rows);
}

function renderStats(summary) {
  const fields = orderFields(Object.keys(summary.fields || {}));
  const rows = fields.map((name) => {
    const s = summary.fields[name];
    const cell = (v) => el("td", { class: "num", text: number(v) });
    return el("tr", { "data-field": name }, el("td", { text: name }), cell(s.first), cell(s.min), cell(s.max), cell(s.mean), cell(s.last));
  });
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colSpan: 6, class: "hint", text: "no steps yet" })));
  document.querySelector("#stats tbody").replaceChildren(...rows);
}

function renderExports(run) {
  const none = !run.steps;
  document.getElementById("export-none").hidden = !none;
  document.getElementById("export-label").hidden = none;
  for (const format of ["csv", "json", "parquet"]) {
    const link = document.getElementById(`export-${format}`);
    link.hidden = none;
    link.href = `${apiBase}${path}/export?format=${format}&layout=wide`;
    link.setAttribute("download", `run-${run.id}.${format}`);
  }
}

// An export on another origin (STATS_PUBLIC_URL): the browser ignores `download` there
// and a plain link would carry no credentials, so fetch it with the cookie, save the blob.
async function crossOriginDownload(event) {
  const link = event.currentTarget;
  if (new URL(link.href).origin === location.origin) return; // a plain link does it
  event.preventDefault();
  const answer = await fetch(link.href, { credentials: "include" });
  if (!answer.ok) {
    const body = await answer.json().catch(() => null);
    throw new Error(`${answer.status} ${(body && (body.detail || body.title)) || answer.statusText}`);
  }
  const url = URL.createObjectURL(await answer.blob());
  const save = el("a", { href: url, download: link.getAttribute("download") });
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function drawTimeline() {
  if (!last) return Promise.resolve();
  const { timeline, bucket } = last;
  const plot = document.getElementById("timeline");
  const fields = orderFields(timeline.fields);
  const hover = `%{y:,.4~g} ${UNIT}`;
  const traces = fields.map((name) => ({
    x: timeline.t, y: timeline[name], name, type: "scatter", mode: timeline.t.length <= 40 ? "lines+markers" : "lines",
    line: { color: colorOf(name), width: 2 }, marker: { size: 4 }, connectgaps: true,
    hovertemplate: `${name} ${hover}<extra></extra>`,
  }));
  const layout = runAxes({ xaxis: { hoverformat: ",.4~g" } });
  if (timeline.t.length === 0) {
    layout.annotations = [{ text: "no steps yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }];
  }
  document.getElementById("bucket").textContent = bucket
    ? `· mean per ${number(bucket)} t (${timeline.t.length} points)`
    : `· every step (${timeline.t.length} points)`;
  if (!window.Plotly) {
    // the steps came before the chart library: draw them plainly while it compiles
    previewChart(plot, timeline.t, fields.map((name) => ({ y: timeline[name], color: colorOf(name) })));
    plot.dataset.preview = String(timeline.t.length);
  }
  return plotly().then((Plotly) => {
    plot.querySelector("svg.preview")?.remove();
    return Plotly.react(plot, traces, themedLayout(layout), PLOT_CONFIG);
  }).then(() => {
    plot.dataset.points = String(timeline.t.length);
    plot.dataset.traces = String(traces.length);
  });
}

async function load() {
  const mine = ++loading;
  let run;
  try {
    run = await api(path);
  } catch (error) {
    const status = statusOf(error);
    if (status === 404) return missing("The API has no run with this id in your tenant. It may have been named differently, or not started yet.");
    if ((status === 400 || status === 422) && !RUN_ID.test(runId)) {
      return missing("A run id is 1–128 letters, digits and . _ : @ - starting with a letter or digit.");
    }
    throw error;
  }
  const summary = await api(path + "/summary");
  const plot = document.getElementById("timeline");
  document.getElementById("content").hidden = false; // the plot needs its width
  const pixels = plotPixels(plot);
  const span = summary.t_first === null ? 0 : summary.t_last - summary.t_first;
  const bucket = tBucket(span, summary.steps, pixels);
  const timeline = await api(path + "/timeline" + (bucket ? `?bucket=${bucket}` : ""));
  if (mine !== loading) return;
  last = { run, summary, timeline, bucket };
  drawnPixels = pixels;
  document.getElementById("loading").hidden = true;
  renderHead(run);
  renderFigures(run, summary);
  renderParameters(run);
  renderStats(summary);
  renderExports(run);
  document.getElementById("compare-link").href = "/ui/runs?pick=" + encodeURIComponent(run.id);
  await drawTimeline();
  clearTimeout(timer);
  if (run.status === "running") timer = setTimeout(refresh, REFRESH_MS);
}

function refresh() {
  load().catch((error) => {
    showError(error);
    // a running run keeps trying: the next answer may come through
    if (last && last.run.status === "running") timer = setTimeout(refresh, REFRESH_MS);
  });
}

async function main() {
  try {
    document.getElementById("title").textContent = runId;
    await startSession();
    if (!runId) return missing("Give a run id: /ui/runs/<id>.");
    for (const format of ["csv", "json", "parquet"]) {
      document.getElementById(`export-${format}`).addEventListener("click", (event) => crossOriginDownload(event).catch(showError));
    }
    onThemeChange(() => drawTimeline().catch(showError));
    window.addEventListener(
      "resize",
      debounce(() => {
        const plot = document.getElementById("timeline");
        // another width, another bucket (never more points than pixels)
        if (last && plot.clientWidth && plotPixels(plot) !== drawnPixels) refresh();
      }, 400),
    );
    await load();
  } catch (error) {
    document.getElementById("loading").hidden = true;
    showError(error);
  }
}

main();
