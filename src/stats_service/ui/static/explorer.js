// Explorer page: any series of the tenant (by device, metric and tags) overlaid on one
// chart, bucketed by the server to at most a point per pixel; the view lives in the URL
// (?series=<id>,<id>&range=3600&fn=mean, or from=/to= for a custom range) and exports as
// CSV, JSON or PNG. Pure helpers are exported (the browser tests import them).
// With one series on the chart, the Forecast toggle (?forecast=1) asks
// /v1/series/{id}/forecast for a fifth of the range after its end, in the chart's bucket,
// and draws the point forecast dashed with its 80 % and 95 % bands.
import { chartMarks } from "./annotations.js";
import { api, apiBase, formatValue, niceBucket, onThemeChange, plotly, previewChart, showError, startSession, themeColors, themedLayout } from "./common.js";

export const MAX_SERIES = 10;
export const PRESETS = [900, 3600, 86400, 604800, 2592000];
const DEFAULT_RANGE = 3600;
const FUNCTIONS = ["mean", "min", "max", "p95"];
const PAGE = 50; // series per page of the picker
const MARGIN = { l: 64, r: 16, r2: 64, t: 12, b: 40 };
// readable on the light and the dark theme alike
export const PALETTE = [
  "#3b82f6", "#ef4444", "#22c55e", "#f59e0b", "#a855f7",
  "#06b6d4", "#ec4899", "#84cc16", "#f97316", "#14b8a6",
];

// ---- pure helpers -----------------------------------------------------------------

// Tags worth showing: every tag but `device` when it only repeats the series' device.
export function tagText(series) {
  const tags = Object.entries(series.tags || {})
    .filter(([key, value]) => !(key === "device" && value === series.device))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return tags.length ? "{" + tags.map(([k, v]) => `${k}=${v}`).join(",") + "}" : "";
}

// The legend's name: device · metric {tags}.
export function seriesLabel(series) {
  const tags = tagText(series);
  const head = series.device ? `${series.device} · ${series.metric}` : series.metric;
  return tags ? `${head} ${tags}` : head;
}

// A CSV column's name: device/metric{tags} (unit).
export function columnName(series) {
  const head = (series.device ? `${series.device}/` : "") + series.metric + tagText(series);
  return series.unit ? `${head} (${series.unit})` : head;
}

export function unitName(unit) {
  return unit || "no unit";
}

// The distinct units of a selection in the order they came: [left axis, right axis].
export function unitsOf(list) {
  const units = [];
  for (const s of list) if (!units.includes(s.unit || "")) units.push(s.unit || "");
  return units;
}

// Why `candidate` cannot join `list` on one chart, or "" when it can.
export function refusal(list, candidate) {
  if (list.some((s) => s.id === candidate.id)) return `${seriesLabel(candidate)} is already on the chart.`;
  if (list.length >= MAX_SERIES) {
    return `Not added: ${seriesLabel(candidate)}. One chart shows at most ${MAX_SERIES} series; remove one first.`;
  }
  const units = unitsOf(list);
  const unit = candidate.unit || "";
  if (units.length >= 2 && !units.includes(unit)) {
    return (
      `Not added: ${seriesLabel(candidate)} is in ${unitName(unit)}, and the chart already has two units, ` +
      `${unitName(units[0])} on the left axis and ${unitName(units[1])} on the right. A third unit would ` +
      "have no axis to be read against: remove the series of one unit first."
    );
  }
  return "";
}

// `key=value, key=value` of the tag box as [[key, value]]; an error names a bad part.
export function parseTags(text) {
  const pairs = [];
  for (const part of String(text || "").split(",")) {
    const item = part.trim();
    if (!item) continue;
    const at = item.indexOf("=");
    if (at <= 0 || at === item.length - 1) throw new Error(`tag filter "${item}": write key=value, e.g. room=kitchen`);
    pairs.push([item.slice(0, at).trim(), item.slice(at + 1).trim()]);
  }
  return pairs;
}

// The view kept in the URL's query string.
export function readQuery(search) {
  const query = new URLSearchParams(search);
  const ids = (query.get("series") || "").split(",").map((s) => s.trim()).filter((s) => /^-?\d{1,19}$/.test(s));
  const fn = FUNCTIONS.includes(query.get("fn")) ? query.get("fn") : "mean";
  const from = query.get("from") ? new Date(query.get("from")) : null;
  const to = query.get("to") ? new Date(query.get("to")) : null;
  if (from && to && !isNaN(from) && !isNaN(to) && from < to) return { ids: [...new Set(ids)], range: "custom", from, to, fn };
  const seconds = Number(query.get("range"));
  const range = Number.isFinite(seconds) && seconds >= 1 ? Math.round(seconds) : DEFAULT_RANGE;
  return { ids: [...new Set(ids)], range, from: null, to: null, fn };
}

export function writeQuery(view) {
  const query = new URLSearchParams();
  if (view.ids.length) query.set("series", view.ids.join(","));
  if (view.range === "custom") {
    query.set("from", view.from.toISOString());
    query.set("to", view.to.toISOString());
  } else {
    query.set("range", String(view.range));
  }
  query.set("fn", view.fn);
  return "?" + query.toString().replace(/%2C/g, ",").replace(/%3A/g, ":"); // readable; both allowed
}

// /v1/aggregate selections that cover `list`: one per device (its metrics), and one per
// series without a device (its metric and tags). The answer is filtered by series id.
export function aggregateSelections(list) {
  const byDevice = new Map();
  const selections = [];
  for (const s of list) {
    if (s.device) {
      if (!byDevice.has(s.device)) byDevice.set(s.device, new Set());
      byDevice.get(s.device).add(s.metric);
    } else {
      const params = { metric: s.metric };
      for (const [k, v] of Object.entries(s.tags || {})) if (!v.includes(",")) params[`tag.${k}`] = v;
      selections.push(params);
    }
  }
  for (const [device, metrics] of byDevice) selections.unshift({ device, metric: [...metrics].join(",") });
  return selections;
}

// A time for file names: 20261206T204500Z.
export function fileStamp(date) {
  return date.toISOString().replace(/\.\d+Z$/, "Z").replace(/[-:]/g, "");
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

// CSV of a drawn view: t, then one column per series (the chosen function).
export function toCsv(view) {
  const times = [...new Set(view.series.flatMap((s) => s.t))].sort();
  const columns = view.series.map((s) => new Map(s.t.map((t, i) => [t, s.values[i]])));
  const lines = [["t", ...view.series.map(columnName)].map(csvCell).join(",")];
  for (const t of times) lines.push([t, ...columns.map((c) => c.get(t))].map(csvCell).join(","));
  return lines.join("\r\n") + "\r\n";
}

// JSON of a drawn view: the series' metadata and their bucketed values.
export function toJson(view) {
  return {
    from: view.from.toISOString(),
    to: view.to.toISOString(),
    bucket: view.bucket,
    fn: view.fn,
    series: view.series.map((s) => ({
      id: s.id, device: s.device, metric: s.metric, tags: s.tags, unit: s.unit,
      label: seriesLabel(s), axis: s.axis, t: s.t, [view.fn]: s.values, min: s.min, max: s.max,
    })),
  };
}

// Times on the chart are UTC, as the API gives them and as the chart marks place their
// lines. Plotly shows a date string's wall clock: the ISO time in UTC; its zoom answers
// "2026-12-06 20:45:10.123", read back as UTC.
function plotTime(date) {
  return date.toISOString();
}

export function fromPlotTime(text) {
  const raw = String(text).trim().replace(" ", "T");
  const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(raw) ? raw : raw + "Z");
  return isNaN(date) ? null : date;
}

// A Date for an <input type=datetime-local> that is read as UTC, and back.
function utcInput(date) {
  return date.toISOString().slice(0, 19);
}

function fromUtcInput(value) {
  return value ? fromPlotTime(value) : null;
}

// ---- forecasts -------------------------------------------------------------------

export const FORECAST_SHARE = 0.2; // the horizon: this share of the range
const FORECAST_MAX_HORIZON = 1000; // the API's limit (buckets)
const FORECAST_MAX_HISTORY = 1200; // buckets of history asked for (keeps it a quick answer)

// Query parameters of the forecast of a chart over [from, to) in `bucket`.
export function forecastParams(from, to, bucket) {
  const buckets = Math.max(1, Math.round((to - from) / 1000 / bucket.seconds));
  const horizon = Math.min(FORECAST_MAX_HORIZON, Math.max(1, Math.round(buckets * FORECAST_SHARE)));
  const start = new Date(Math.max(from.getTime(), to.getTime() - FORECAST_MAX_HISTORY * bucket.seconds * 1000));
  return { from: start.toISOString(), to: to.toISOString(), bucket: bucket.label, horizon: String(horizon), levels: "80,95" };
}

// Plotly traces of a forecast answer: per level (widest first) a band between lo and hi,
// then the point forecast dashed; all start at the last drawn point so they join the line.
export function forecastTraces(answer, last, color, yaxis = "y", unit = "") {
  const head = last ? [last.t] : [];
  const x = [...head, ...answer.t];
  const start = last ? [last.value] : [];
  const out = [];
  const levels = Object.keys(answer.intervals).sort((a, b) => Number(b) - Number(a));
  levels.forEach((level, i) => {
    const band = answer.intervals[level];
    const edge = { color: hexAlpha(color, 0), width: 0 };
    const alpha = i === levels.length - 1 ? 0.26 : 0.13;
    out.push({
      x, y: [...start, ...band.lo], yaxis, name: `${level} % low`, mode: "lines", line: edge, showlegend: false,
      hovertemplate: `${level} % low %{y:.4~g}${unit}<extra></extra>`, meta: { forecast: "lo", level },
    });
    out.push({
      x, y: [...start, ...band.hi], yaxis, name: `forecast ${level} %`, mode: "lines", line: edge, fill: "tonexty",
      fillcolor: hexAlpha(color, alpha), showlegend: true, legendgroup: "forecast",
      hovertemplate: `${level} % high %{y:.4~g}${unit}<extra></extra>`, meta: { forecast: "band", level },
    });
  });
  out.push({
    x, y: [...start, ...answer.forecast], yaxis, name: `forecast (${answer.model})`, mode: "lines",
    line: { color, width: 2, dash: "dash" }, legendgroup: "forecast",
    hovertemplate: `forecast %{y:.4~g}${unit}<extra>${answer.model}</extra>`, meta: { forecast: "mean" },
  });
  return out;
}

// One line about a forecast answer: the model, its backtest errors, the season, notes.
export function forecastSummary(answer) {
  const season = answer.season.buckets
    ? `season ${answer.season.duration || answer.season.buckets + " buckets"}${answer.season.detected ? " (detected)" : ""}`
    : "no season";
  const errors = answer.mase === null ? "" : ` · backtest MASE ${answer.mase.toFixed(2)}, sMAPE ${answer.smape.toFixed(1)} %`;
  const others = answer.candidates
    .filter((c) => !c.chosen)
    .map((c) => `${c.model} ${c.mase === null ? "–" : c.mase.toFixed(2)}`)
    .join(", ");
  return (
    `Forecast: ${answer.model}${errors} · ${season} · ${answer.horizon} × ${answer.bucket} ahead` +
    (others ? ` · other candidates (MASE): ${others}` : "") +
    (answer.history.interpolated ? ` · ${answer.history.interpolated} empty bucket(s) interpolated` : "")
  );
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The forecast of one series; long work answers 202 with a task, polled until it ends.
async function fetchForecast(series, from, to, bucket) {
  const params = new URLSearchParams(forecastParams(from, to, bucket));
  const answer = await api(`/v1/series/${encodeURIComponent(series.id)}/forecast?${params}`);
  if (!answer || !answer.task_id) return answer;
  for (let i = 0; i < 600; i++) {
    // not api(): /tasks takes API keys (not the session), and a 401 must not sign out
    const reply = await fetch(`${apiBase}/tasks/${answer.task_id}`, { headers: { Accept: "application/json" }, credentials: "include" });
    const task = await reply.json().catch(() => null);
    if (!reply.ok || !task) throw new Error(`the forecast runs as task ${answer.task_id}, which this page cannot read (${reply.status}); shorten the range`);
    if (task.state === "SUCCESS") return task.result;
    if (task.state === "FAILURE") throw new Error(task.error || "the forecast task failed");
    await sleep(500);
  }
  throw new Error("the forecast task did not finish in 5 minutes");
}

// ---- the page --------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const state = { series: [], range: DEFAULT_RANGE, from: null, to: null, fn: "mean", beforeZoom: null, forecast: false };
let view = null; // the data of the last draw (for the exports)
let drawing = 0; // the latest draw wins: an older answer arriving late is dropped
let picking = 0;
let nextCursor = null;
let devices = [];

function timeRange() {
  if (state.range === "custom") return { from: state.from, to: state.to };
  const to = new Date();
  return { from: new Date(to.getTime() - state.range * 1000), to };
}

function saveUrl() {
  const query = writeQuery({ ids: state.series.map((s) => s.id), range: state.range, from: state.from, to: state.to, fn: state.fn });
  history.replaceState(null, "", location.pathname + query + (state.forecast ? "&forecast=1" : ""));
}

function notice(text) {
  const box = $("notice");
  box.textContent = text || "";
  box.hidden = !text;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function axisOf(series) {
  const units = unitsOf(state.series);
  return units.indexOf(series.unit || "") === 1 ? "y2" : "y";
}

function renderChosen() {
  const list = $("chosen");
  list.replaceChildren(
    ...state.series.map((s, i) => {
      const item = document.createElement("li");
      item.dataset.series = s.id;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = PALETTE[i % PALETTE.length];
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = seriesLabel(s);
      name.title = `${seriesLabel(s)} · id ${s.id}`;
      const axis = document.createElement("span");
      axis.className = "axis";
      axis.textContent = `${unitName(s.unit)}${state.series.length > 1 && unitsOf(state.series).length > 1 ? (axisOf(s) === "y2" ? " · right" : " · left") : ""}`;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove ${seriesLabel(s)}`);
      remove.addEventListener("click", () => removeSeries(s.id));
      item.append(swatch, name, axis, remove);
      return item;
    }),
  );
  const toggle = $("forecast");
  toggle.disabled = state.series.length !== 1;
  toggle.checked = state.forecast && !toggle.disabled;
  toggle.parentElement.title = toggle.disabled
    ? "Forecasts are drawn for a single series: keep one on the chart"
    : "Forecast the series after the range (a fifth of the range ahead)";
  for (const button of document.querySelectorAll("#results button.add")) {
    const on = state.series.some((s) => s.id === button.dataset.series);
    button.disabled = on;
    button.textContent = on ? "Added" : "Add";
  }
}

function addSeries(series) {
  const why = refusal(state.series, series);
  if (why) {
    notice(why);
    return false;
  }
  notice("");
  state.series.push(series);
  renderChosen();
  saveUrl();
  refresh();
  return true;
}

function removeSeries(id) {
  state.series = state.series.filter((s) => s.id !== id);
  notice("");
  renderChosen();
  saveUrl();
  refresh();
}

function plotWidth() {
  const plot = $("plot");
  const right = unitsOf(state.series).length > 1 ? MARGIN.r2 : MARGIN.r;
  return Math.max(50, plot.clientWidth - MARGIN.l - right);
}

async function fetchGroups(list, from, to, bucket, fns) {
  const wanted = new Set(list.map((s) => s.id));
  const found = new Map();
  await Promise.all(
    aggregateSelections(list).map(async (selection) => {
      let cursor = null;
      for (let page = 0; page < 20; page++) {
        const params = new URLSearchParams({
          ...selection, from: from.toISOString(), to: to.toISOString(), bucket: bucket.label,
          fn: fns.join(","), group_by: "series", limit: "1000",
        });
        if (cursor) params.set("cursor", cursor);
        const answer = await api("/v1/aggregate?" + params);
        for (const group of answer.groups) if (wanted.has(group.series_id)) found.set(group.series_id, group);
        cursor = answer.next_cursor;
        if (!cursor) break;
      }
    }),
  );
  return found;
}

function marksOf(list, from, to) {
  const devicesOf = [...new Set(list.map((s) => s.device).filter(Boolean))];
  const selection = { series: list.map((s) => s.id), device: devicesOf.length === 1 ? devicesOf[0] : undefined, from, to };
  return Promise.resolve()
    .then(() => chartMarks(selection))
    .then((marks) => ({ shapes: marks?.shapes || [], annotations: marks?.annotations || [], count: Number(marks?.count) || 0 }))
    .catch((error) => {
      showError(new Error(`chart marks could not be loaded: ${error.message || error}`));
      return { shapes: [], annotations: [], count: 0 };
    });
}

function hexAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function traces(drawn, fn) {
  const out = [];
  const band = drawn.length === 1;
  drawn.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const x = s.t; // ISO times in UTC
    const unit = s.unit ? " " + s.unit : "";
    const yaxis = s.axis;
    if (band) {
      const edge = { color: hexAlpha(color, 0), width: 0 };
      out.push({ x, y: s.min, yaxis, name: "min", mode: "lines", line: edge, showlegend: false, hovertemplate: `min %{y:.4~g}${unit}<extra></extra>` });
      out.push({
        x, y: s.max, yaxis, name: "max", mode: "lines", line: edge, fill: "tonexty", fillcolor: hexAlpha(color, 0.18),
        showlegend: false, hovertemplate: `max %{y:.4~g}${unit}<extra></extra>`,
      });
    }
    out.push({
      x, y: s.values, yaxis, name: seriesLabel(s) + (s.unit ? ` (${s.unit})` : ""), mode: x.length <= 60 ? "lines+markers" : "lines",
      line: { color, width: 1.8 }, marker: { size: 4, color }, connectgaps: false,
      hovertemplate: `${fn} %{y:.4~g}${unit}<extra>${seriesLabel(s).replace(/</g, "&lt;")}</extra>`,
    });
  });
  return out;
}

function layoutOf(drawn, from, to, marks, until = null) {
  const units = unitsOf(drawn);
  const c = themeColors();
  const phone = $("plot").clientWidth < 560;
  const layout = {
    margin: { l: MARGIN.l, r: units.length > 1 ? MARGIN.r2 : MARGIN.r, t: MARGIN.t, b: MARGIN.b },
    xaxis: { type: "date", range: [plotTime(from), plotTime(until && until > to ? until : to)], automargin: true },
    yaxis: { title: { text: unitName(units[0]) }, automargin: true },
    hovermode: "x unified",
    showlegend: true,
    legend: { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom", font: { size: phone ? 11 : 12 } },
    shapes: [...marks.shapes],
    annotations: [...marks.annotations],
    dragmode: "zoom",
  };
  if (units.length > 1) {
    layout.yaxis2 = { title: { text: unitName(units[1]) }, overlaying: "y", side: "right", automargin: true, showgrid: false, tickmode: "auto" };
  }
  if (drawn.every((s) => s.t.length === 0)) {
    layout.annotations.push({ text: "no data in this range", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 });
  }
  return { ...themedLayout(layout), paper_bgcolor: c.card };
}

function setExports(on) {
  for (const id of ["export-csv", "export-json", "export-png"]) {
    $(id).disabled = !on;
    $(id).hidden = state.series.length === 0;
  }
}

async function draw() {
  const mine = ++drawing;
  const plot = $("plot");
  const empty = state.series.length === 0;
  $("empty").hidden = !empty;
  plot.hidden = empty;
  if (empty) {
    window.Plotly?.purge(plot); // its event handlers too (nothing drawn before it loaded)
    plot.zoomBound = false;
    view = null;
    setExports(false);
    $("bucket").textContent = "";
    $("summary").textContent = "";
    $("forecast-info").hidden = true;
    plot.dataset.forecast = "";
    plot.dataset.points = "0";
    plot.dataset.marks = "0";
    return;
  }
  const { from, to } = timeRange();
  if (!(from < to)) throw new Error("the start of the range must come before its end");
  const bucket = niceBucket((to - from) / 1000, plotWidth());
  const fns = [...new Set([state.fn, "min", "max"])];
  const list = [...state.series];
  const forecasting = state.forecast && list.length === 1;
  const forecast = forecasting
    ? fetchForecast(list[0], from, to, bucket).then(
        (answer) => ({ answer }),
        (error) => ({ error }),
      )
    : Promise.resolve(null);
  const [groups, marks, predicted] = await Promise.all([fetchGroups(list, from, to, bucket, fns), marksOf(list, from, to), forecast]);
  if (mine !== drawing) return;
  const drawn = list.map((s) => {
    const group = groups.get(s.id);
    return {
      ...s,
      unit: s.unit,
      axis: axisOf(s),
      t: group ? group.t : [],
      values: group ? group[state.fn] : [],
      min: group ? group.min : [],
      max: group ? group.max : [],
    };
  });
  const aligned = drawn.every((s) => s.axis === drawn[0].axis && s.t.length === drawn[0].t.length && s.t[0] === drawn[0].t[0]);
  if (!window.Plotly && drawn.length > 0 && aligned) {
    // the data came before the chart library: draw it plainly while it compiles
    const band = drawn.length === 1 ? { lo: drawn[0].min, hi: drawn[0].max } : null;
    previewChart(plot, drawn[0].t, drawn.map((s) => ({ y: s.values })), band);
    plot.dataset.preview = String(drawn.reduce((sum, s) => sum + s.t.length, 0));
  }
  const Plotly = await plotly();
  plot.querySelector("svg.preview")?.remove();
  const lines = traces(drawn, state.fn);
  let until = null;
  const answer = predicted?.answer;
  if (answer && answer.t.length) {
    const s = drawn[0];
    let at = s.values.length - 1;
    while (at >= 0 && (s.values[at] === null || s.values[at] === undefined)) at--;
    const last = at >= 0 ? { t: s.t[at], value: s.values[at] } : null;
    lines.push(...forecastTraces(answer, last, PALETTE[0], s.axis, s.unit ? " " + s.unit : ""));
    until = new Date(new Date(answer.t[answer.t.length - 1]).getTime() + bucket.seconds * 1000);
  }
  $("forecast-info").hidden = !predicted;
  if (predicted) {
    $("forecast-info").textContent = answer ? forecastSummary(answer) : "Forecast: not available (see the message above).";
  }
  if (predicted?.error) showError(new Error(`forecast: ${predicted.error.message || predicted.error}`));
  plot.dataset.forecast = answer ? answer.model : "";
  await Plotly.react(plot, lines, layoutOf(drawn, from, to, marks, until), {
    responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"],
  });
  if (!plot.zoomBound) {
    plot.on("plotly_relayout", onRelayout); // Plotly gives the element .on at its first plot
    plot.zoomBound = true;
  }
  if (mine !== drawing) return;
  const points = drawn.reduce((sum, s) => sum + s.t.length, 0);
  view = { from, to, bucket: bucket.label, fn: state.fn, series: drawn };
  setExports(true);
  const most = Math.ceil((to - from) / 1000 / bucket.seconds);
  $("bucket").textContent = `bucket ${bucket.label} (≤ ${most} points a series)`;
  $("summary").textContent = `${drawn.length} series · ${points} points · ${state.fn} · times in UTC`;
  plot.dataset.bucket = bucket.label;
  plot.dataset.marks = String(marks.count);
  plot.dataset.points = String(points);
}

// A plot that gets narrower (a phone turned, a window resized) or much wider asks again
// once its bucket would change: never more points than pixels.
function watchWidth() {
  let settle = 0;
  new ResizeObserver(() => {
    clearTimeout(settle);
    settle = setTimeout(() => {
      if (!view || $("plot").hidden) return;
      const { from, to } = timeRange();
      if (niceBucket((to - from) / 1000, plotWidth()).label !== view.bucket) refresh();
    }, 250);
  }).observe($("plot"));
}

function refresh() {
  clearError();
  draw().catch(showError);
}

function pressPreset() {
  for (const button of document.querySelectorAll("#presets button")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === String(state.range)));
  }
  $("custom").hidden = state.range !== "custom";
  if (state.range === "custom") {
    $("from").value = utcInput(state.from);
    $("to").value = utcInput(state.to);
  }
  $("fn").value = state.fn;
}

function choose(range) {
  if (range === "custom") {
    const { from, to } = timeRange();
    state.from = from;
    state.to = to;
  }
  state.range = range;
  state.beforeZoom = null;
  pressPreset();
  saveUrl();
  refresh();
}

// Plotly's zoom and pan: load the new range with a bucket sized to it; a double click
// (autorange) goes back to the range before the first zoom.
function onRelayout(event) {
  const a = event["xaxis.range[0]"] ?? (event["xaxis.range"] || [])[0];
  const b = event["xaxis.range[1]"] ?? (event["xaxis.range"] || [])[1];
  if (a !== undefined && b !== undefined) {
    const from = fromPlotTime(a);
    const to = fromPlotTime(b);
    if (!from || !to || !(from < to)) return;
    if (!state.beforeZoom) state.beforeZoom = { range: state.range, from: state.from, to: state.to };
    Object.assign(state, { range: "custom", from, to });
  } else if (event["xaxis.autorange"] && state.beforeZoom) {
    Object.assign(state, state.beforeZoom, { beforeZoom: null });
  } else {
    return;
  }
  pressPreset();
  saveUrl();
  refresh();
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function exportName() {
  return `explore-${fileStamp(view.from)}-${fileStamp(view.to)}`;
}

// ---- the picker ------------------------------------------------------------------

async function loadDevices() {
  devices = [];
  let cursor = null;
  for (let page = 0; page < 10; page++) {
    const answer = await api("/v1/devices?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    devices.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  const select = $("device");
  for (const d of devices) select.append(new Option(d.name, d.name));
  fillMetrics(devices.flatMap((d) => d.metrics || []));
}

const knownMetrics = new Set();

function fillMetrics(extra = []) {
  for (const m of extra) knownMetrics.add(m);
  const select = $("metric");
  const device = devices.find((d) => d.name === $("device").value);
  const chosen = select.value;
  const names = [...(device ? new Set(device.metrics || []) : knownMetrics)].sort();
  select.replaceChildren(new Option("any metric", ""), ...names.map((m) => new Option(m, m)));
  select.value = names.includes(chosen) ? chosen : "";
}

function resultRow(s) {
  const row = document.createElement("tr");
  row.dataset.series = s.id;
  const name = document.createElement("td");
  const head = document.createElement("span");
  head.textContent = s.device ? `${s.device} · ${s.metric}` : s.metric;
  name.append(head);
  const tags = tagText(s);
  if (tags) {
    const t = document.createElement("span");
    t.className = "tags";
    t.textContent = " " + tags;
    name.append(t);
  }
  const unit = document.createElement("td");
  unit.textContent = s.unit || "–";
  const last = document.createElement("td");
  last.className = "num last";
  last.textContent = s.last_value !== null && s.last_value !== undefined ? formatValue(s.last_value, s.unit) : s.last_state || "–";
  const act = document.createElement("td");
  act.className = "act";
  const add = document.createElement("button");
  add.type = "button";
  add.className = "add";
  add.dataset.series = s.id;
  add.setAttribute("aria-label", `Add ${seriesLabel(s)}`);
  add.addEventListener("click", () => addSeries(s));
  act.append(add);
  row.append(name, unit, last, act);
  return row;
}

async function loadResults(more = false) {
  const mine = ++picking;
  const params = new URLSearchParams({ limit: String(PAGE) });
  if ($("device").value) params.set("device", $("device").value);
  if ($("metric").value) params.set("metric", $("metric").value);
  let tags;
  try {
    tags = parseTags($("tags").value);
  } catch (error) {
    $("matches").textContent = error.message;
    return;
  }
  for (const [k, v] of tags) params.set(`tag.${k}`, v);
  if (more && nextCursor) params.set("cursor", nextCursor);
  const answer = await api("/v1/series?" + params);
  if (mine !== picking) return;
  const body = $("results").tBodies[0];
  const rows = answer.items.map(resultRow);
  if (more) body.append(...rows);
  else body.replaceChildren(...rows);
  nextCursor = answer.next_cursor;
  $("more").hidden = !nextCursor;
  const count = body.rows.length;
  $("matches").textContent = count === 0 ? "no series match" : `${count}${nextCursor ? "+" : ""} series`;
  if (!$("device").value) fillMetrics(answer.items.map((s) => s.metric));
  renderChosen();
}

function pick(more = false) {
  loadResults(more).catch(showError);
}

// ---- start -----------------------------------------------------------------------

async function restore(ids) {
  const found = await Promise.all(
    ids.map((id) =>
      api(`/v1/series/${encodeURIComponent(id)}`).catch((error) => {
        showError(new Error(`series ${id} of the link could not be loaded: ${error.message}`));
        return null;
      }),
    ),
  );
  const refused = [];
  for (const s of found) {
    if (!s) continue;
    const why = refusal(state.series, s);
    if (why) refused.push(why);
    else state.series.push(s);
  }
  if (refused.length) notice(refused.join(" "));
}

async function main() {
  try {
    await startSession();
    const query = readQuery(location.search);
    Object.assign(state, { range: query.range, from: query.from, to: query.to, fn: query.fn });
    state.forecast = new URLSearchParams(location.search).get("forecast") === "1";
    $("forecast").addEventListener("change", (event) => {
      state.forecast = event.target.checked;
      saveUrl();
      refresh();
    });
    pressPreset();
    for (const button of document.querySelectorAll("#presets button")) {
      const value = button.dataset.range;
      button.addEventListener("click", () => choose(value === "custom" ? "custom" : Number(value)));
    }
    $("apply").addEventListener("click", () => {
      const from = fromUtcInput($("from").value);
      const to = fromUtcInput($("to").value);
      if (!from || !to) return showError(new Error("give both the start and the end of the range"));
      Object.assign(state, { range: "custom", from, to, beforeZoom: null });
      saveUrl();
      refresh();
    });
    $("fn").addEventListener("change", (event) => {
      state.fn = event.target.value;
      saveUrl();
      refresh();
    });
    $("refresh").addEventListener("click", refresh);
    $("device").addEventListener("change", () => {
      fillMetrics();
      pick();
    });
    $("metric").addEventListener("change", () => pick());
    let typing = 0;
    $("tags").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => pick(), 300);
    });
    $("more").addEventListener("click", () => pick(true));
    $("export-csv").addEventListener("click", () => view && download(exportName() + ".csv", "text/csv", toCsv(view)));
    $("export-json").addEventListener("click", () => view && download(exportName() + ".json", "application/json", JSON.stringify(toJson(view), null, 2) + "\n"));
    $("export-png").addEventListener("click", () => {
      if (!view) return;
      const plot = $("plot");
      window.Plotly.downloadImage(plot, { format: "png", filename: exportName(), width: plot.clientWidth, height: plot.clientHeight }).catch(showError);
    });
    onThemeChange(() => state.series.length && refresh());
    await Promise.all([loadDevices(), restore(query.ids)]);
    renderChosen();
    saveUrl();
    // a shared view on a phone: the chart first, the picker a tap away
    if (state.series.length && matchMedia("(max-width: 640px)").matches) $("picker").open = false;
    pick();
    draw().catch(showError); // not refresh(): that would clear what restore() reported
    watchWidth();
  } catch (error) {
    showError(error);
  }
}

main();
