// Device page: one chart per metric, bucketed by the server to at most a point per pixel.
// Recent ranges follow the live feed: new points re-read only the last bucket onwards.
import { chartMarks } from "./annotations.js";
import { api, formatValue, niceBucket, onThemeChange, plotly, previewChart, showError, startSession, themedLayout } from "./common.js";
import { LiveFeed, liveBadge } from "./live.js";

const device = decodeURIComponent(location.pathname.replace(/^\/ui\/devices\//, ""));
const state = { range: 3600, from: null, to: null, fn: "mean" };
const LIVE_THROTTLE_MS = 1000; // at most one tail re-read per second
let series = [];
let drawing = 0; // the latest draw wins: an older answer arriving late is dropped
let view = null; // what is drawn: { from, to, bucket, fns, groups: Map(id → group), marks: Map(id → marks) }
let feed = null;
let tailTimer = null;
let liveUpdates = 0;

function timeRange() {
  if (state.range === "custom") return { from: state.from, to: state.to };
  const to = new Date();
  return { from: new Date(to.getTime() - state.range * 1000), to };
}

function chartBox(s) {
  const box = document.createElement("section");
  box.className = "chart";
  const title = document.createElement("h2");
  title.textContent = s.unit ? `${s.metric} (${s.unit})` : s.metric;
  const tags = Object.entries(s.tags || {}).filter(([k]) => k !== "device");
  if (tags.length) title.textContent += " · " + tags.map(([k, v]) => `${k}=${v}`).join(" ");
  const plot = document.createElement("div");
  plot.className = "plot";
  plot.dataset.series = s.series_id;
  plot.dataset.metric = s.metric;
  box.append(title, plot);
  return box;
}

function traces(group, fn) {
  const x = group.t;
  const hover = (name) => `${name} %{y:.4~g}${group.unit ? " " + group.unit : ""}<extra></extra>`;
  const band = { color: "rgba(0, 0, 0, 0)", width: 0 };
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#2563eb";
  const fill = getComputedStyle(document.documentElement).getPropertyValue("--band").trim() || "rgba(37, 99, 235, 0.15)";
  return [
    { x, y: group.min, name: "min", mode: "lines", line: band, showlegend: false, hovertemplate: hover("min") },
    { x, y: group.max, name: "max", mode: "lines", line: band, fill: "tonexty", fillcolor: fill, showlegend: false, hovertemplate: hover("max") },
    {
      x, y: group[fn], name: fn, mode: x.length <= 60 ? "lines+markers" : "lines", // few points: visible
      line: { color: accent, width: 1.8 }, marker: { size: 4, color: accent }, hovertemplate: hover(fn),
    },
  ];
}

function emptyGroup(s) {
  return { t: [], min: [], max: [], mean: [], p95: [], unit: s.unit };
}

async function plotOne(plot) {
  const s = series.find((item) => item.series_id === plot.dataset.series);
  const group = view.groups.get(plot.dataset.series) || emptyGroup(s);
  const marks = view.marks.get(plot.dataset.series) || { shapes: [], annotations: [], count: 0 };
  const layout = themedLayout({
    margin: { l: 60, r: 10, t: 10, b: 30 },
    xaxis: { type: "date", range: [view.from.toISOString(), view.to.toISOString()] },
    yaxis: { title: { text: s.unit || "" }, automargin: true },
    hovermode: "x unified",
    showlegend: false,
    shapes: marks.shapes,
    annotations: [
      ...marks.annotations,
      ...(group.t.length === 0
        ? [{ text: "no data in this range", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }]
        : []),
    ],
  });
  const Plotly = await plotly();
  plot.querySelector("svg.preview")?.remove();
  await Plotly.react(plot, traces(group, state.fn), layout, { responsive: true, displaylogo: false });
  plot.dataset.points = String(group.t.length);
  plot.dataset.marks = String(marks.count);
  plot.title = `last ${formatValue(s.last_value, s.unit)}`;
}

async function plotAll() {
  if (!view) return;
  const plots = [...document.querySelectorAll(".plot")];
  if (!window.Plotly) {
    // the data came before the chart library: draw it plainly meanwhile
    for (const plot of plots) {
      const group = view.groups.get(plot.dataset.series);
      if (!group) continue;
      previewChart(plot, group.t, [{ y: group[state.fn] }], { lo: group.min, hi: group.max });
      plot.dataset.preview = String(group.t.length);
    }
  }
  for (const plot of plots) await plotOne(plot);
}

function aggregateParams(from, to, bucket) {
  return new URLSearchParams({
    device, from: from.toISOString(), to: to.toISOString(), bucket: bucket.label,
    fn: [...new Set([state.fn, "min", "max"])].join(","), group_by: "series", limit: "1000",
  });
}

async function draw() {
  const mine = ++drawing;
  const { from, to } = timeRange();
  if (!(from < to)) throw new Error("the start of the range must come before its end");
  const plots = [...document.querySelectorAll(".plot")];
  if (plots.length === 0) return;
  // the plot area is the element's width less the margins below
  const width = plots[0].clientWidth - 70;
  const bucket = niceBucket((to - from) / 1000, width);
  const [answer, marks] = await Promise.all([
    api("/v1/aggregate?" + aggregateParams(from, to, bucket)),
    Promise.all(series.map((s) => chartMarks({ series: [s.series_id], device, from, to }))),
  ]);
  if (mine !== drawing) return;
  document.getElementById("bucket").textContent = `bucket ${bucket.label} (≤ ${Math.ceil((to - from) / 1000 / bucket.seconds)} points)`;
  view = {
    from, to, bucket,
    groups: new Map(answer.groups.map((g) => [g.series_id, g])),
    marks: new Map(series.map((s, i) => [s.series_id, marks[i]])),
  };
  await plotAll();
  follow();
}

// New points arrived: re-read from the start of the last bucket drawn to now and slide
// the window (exact for every aggregate, and one small request per second at most).
async function refreshTail() {
  tailTimer = null;
  if (!view || state.range === "custom") return;
  const mine = drawing;
  const to = new Date();
  const from = new Date(to.getTime() - state.range * 1000);
  let tailStart = from;
  for (const group of view.groups.values()) {
    if (group.t.length) {
      const last = new Date(group.t[group.t.length - 1]);
      if (last < tailStart || tailStart === from) tailStart = last;
    }
  }
  if (tailStart < from) tailStart = from;
  const answer = await api("/v1/aggregate?" + aggregateParams(tailStart, to, view.bucket));
  if (mine !== drawing) return; // a full draw started meanwhile: it wins
  const fresh = new Map(answer.groups.map((g) => [g.series_id, g]));
  const keys = [...new Set([state.fn, "min", "max", "t"])];
  for (const [id, tail] of fresh) {
    const group = view.groups.get(id);
    if (!group) {
      view.groups.set(id, tail);
      continue;
    }
    const cut = group.t.findIndex((t) => new Date(t) >= new Date(tail.t[0] ?? to));
    const keepTo = cut === -1 ? group.t.length : cut;
    const first = group.t.findIndex((t) => new Date(t) >= from);
    const keepFrom = first === -1 ? keepTo : Math.min(first, keepTo);
    for (const key of keys) group[key] = [...(group[key] || []).slice(keepFrom, keepTo), ...(tail[key] || [])];
  }
  view.from = from;
  view.to = to;
  liveUpdates += 1;
  await plotAll();
  document.getElementById("charts").dataset.liveUpdates = String(liveUpdates);
}

function onPoints(message) {
  if (message.type !== "points") return;
  const known = series.find((s) => s.series_id === message.series);
  if (known) {
    known.last_value = message.v[message.v.length - 1];
    if (!tailTimer && state.range !== "custom") {
      tailTimer = setTimeout(() => refreshTail().catch(showError), LIVE_THROTTLE_MS);
    }
  } else if (!tailTimer) {
    // a metric this page does not show yet: list the device's metrics again
    tailTimer = setTimeout(() => loadSeries().catch(showError), LIVE_THROTTLE_MS);
  }
}

// Follow the live feed while the range ends now; a custom range or a zoom stops it.
function follow() {
  const wanted = state.range !== "custom";
  if (wanted && !feed) {
    feed = new LiveFeed(new URLSearchParams({ device }), onPoints, liveBadge(document.getElementById("live")));
    feed.open();
  } else if (!wanted && feed) {
    feed.close();
    feed = null;
  }
}

function refresh() {
  draw().catch(showError);
}

function localInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

function choose(range, bounds) {
  for (const button of document.querySelectorAll("#presets button")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === String(range)));
  }
  document.getElementById("custom").hidden = range !== "custom";
  if (range === "custom") {
    const { from, to } = bounds || timeRange();
    document.getElementById("from").value = localInput(from);
    document.getElementById("to").value = localInput(to);
    state.from = from;
    state.to = to;
  }
  state.range = range;
  refresh();
}

// Zoom (a drag on any chart) reads that range again at its own bucket size, for every
// chart; a double click (autorange) goes back to the last hour.
function onZoom(event) {
  if (event["xaxis.autorange"]) return choose(3600);
  const a = event["xaxis.range[0]"] ?? event["xaxis.range"]?.[0];
  const b = event["xaxis.range[1]"] ?? event["xaxis.range"]?.[1];
  if (a === undefined || b === undefined) return;
  const from = new Date(String(a).replace(" ", "T") + (String(a).includes("Z") ? "" : "Z"));
  const to = new Date(String(b).replace(" ", "T") + (String(b).includes("Z") ? "" : "Z"));
  if (from < to) choose("custom", { from, to });
}

async function loadSeries() {
  tailTimer = null;
  const answer = await api(`/v1/devices/${encodeURIComponent(device)}/metrics`);
  const same = answer.metrics.length === series.length && answer.metrics.every((m, i) => m.series_id === series[i]?.series_id);
  series = answer.metrics;
  if (!same) {
    const boxes = series.map(chartBox);
    document.getElementById("charts").replaceChildren(...boxes);
    document.getElementById("empty").hidden = series.length > 0;
  }
  await draw();
  // plotly emits its events on the element once it has drawn there
  for (const plot of document.querySelectorAll(".plot")) {
    if (!plot.dataset.zoomable) {
      plot.on("plotly_relayout", onZoom);
      plot.dataset.zoomable = "1";
    }
  }
}

async function main() {
  try {
    document.getElementById("title").textContent = device;
    document.title = `${device} · StatisticsService`;
    // Plotly is fetched meanwhile (preloaded) but compiled only once the first data is
    // drawn plainly: compiling it holds the page's thread for a second or more
    const session = startSession();
    for (const button of document.querySelectorAll("#presets button")) {
      const value = button.dataset.range;
      button.addEventListener("click", () => choose(value === "custom" ? "custom" : Number(value)));
    }
    document.getElementById("apply").addEventListener("click", () => {
      state.from = new Date(document.getElementById("from").value);
      state.to = new Date(document.getElementById("to").value);
      refresh();
    });
    document.getElementById("fn").addEventListener("change", (event) => {
      state.fn = event.target.value;
      refresh();
    });
    onThemeChange(() => plotAll().catch(showError));
    for (const button of document.querySelectorAll("#presets button")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === "3600"));
    }
    await Promise.all([session, loadSeries()]);
  } catch (error) {
    showError(error);
  }
}

main();
