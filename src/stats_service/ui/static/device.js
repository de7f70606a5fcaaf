// Device page: one chart per metric, bucketed by the server to at most a point per pixel.
import { api, formatValue, niceBucket, showError, startSession } from "./common.js";

/* global Plotly */
const device = decodeURIComponent(location.pathname.replace(/^\/ui\/devices\//, ""));
const state = { range: 3600, from: null, to: null, fn: "mean" };
let series = [];
let drawing = 0; // the latest draw wins: an older answer arriving late is dropped

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
  const band = { color: "rgba(37, 99, 235, 0)", width: 0 };
  return [
    { x, y: group.min, name: "min", mode: "lines", line: band, showlegend: false, hovertemplate: hover("min") },
    {
      x, y: group.max, name: "max", mode: "lines", line: band, fill: "tonexty",
      fillcolor: "rgba(37, 99, 235, 0.15)", showlegend: false, hovertemplate: hover("max"),
    },
    {
      x, y: group[fn], name: fn, mode: x.length <= 60 ? "lines+markers" : "lines", // few points: visible
      line: { color: "#2563eb", width: 1.8 }, marker: { size: 4 }, hovertemplate: hover(fn),
    },
  ];
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
  const fns = [...new Set([state.fn, "min", "max"])].join(",");
  const params = new URLSearchParams({
    device, from: from.toISOString(), to: to.toISOString(), bucket: bucket.label,
    fn: fns, group_by: "series", limit: "1000",
  });
  const answer = await api("/v1/aggregate?" + params);
  if (mine !== drawing) return;
  document.getElementById("bucket").textContent = `bucket ${bucket.label} (≤ ${Math.ceil((to - from) / 1000 / bucket.seconds)} points)`;
  const groups = new Map(answer.groups.map((g) => [g.series_id, g]));
  for (const plot of plots) {
    const s = series.find((item) => item.series_id === plot.dataset.series);
    const group = groups.get(plot.dataset.series) || { t: [], min: [], max: [], [state.fn]: [], unit: s.unit };
    const layout = {
      margin: { l: 60, r: 10, t: 10, b: 30 },
      xaxis: { type: "date", range: [from.toISOString(), to.toISOString()] },
      yaxis: { title: { text: s.unit || "" }, automargin: true },
      hovermode: "x unified",
      showlegend: false,
      annotations: group.t.length === 0 ? [{ text: "no data in this range", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] : [],
    };
    await Plotly.react(plot, traces(group, state.fn), layout, { responsive: true, displaylogo: false });
    plot.dataset.points = String(group.t.length);
    plot.title = `last ${formatValue(s.last_value, s.unit)}`;
  }
}

function refresh() {
  draw().catch(showError);
}

function localInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

function choose(range) {
  for (const button of document.querySelectorAll("#presets button")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === String(range)));
  }
  document.getElementById("custom").hidden = range !== "custom";
  if (range === "custom") {
    const { from, to } = timeRange();
    document.getElementById("from").value = localInput(from);
    document.getElementById("to").value = localInput(to);
    state.from = from;
    state.to = to;
  }
  state.range = range;
  refresh();
}

async function main() {
  try {
    document.getElementById("title").textContent = device;
    document.title = `${device} · StatisticsService`;
    await startSession();
    const answer = await api(`/v1/devices/${encodeURIComponent(device)}/metrics`);
    series = answer.metrics;
    document.getElementById("charts").replaceChildren(...series.map(chartBox));
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
    choose(3600);
  } catch (error) {
    showError(error);
  }
}

main();
