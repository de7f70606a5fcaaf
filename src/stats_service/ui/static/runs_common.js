// Shared by the Runs pages (list, one run, compare): formatting, bucketing on t, figures.
import { formatValue } from "./common.js";

// Compartments in the contract's order, with a colour each (readable in both themes).
export const COMPARTMENTS = ["susceptible", "exposed", "infected", "recovered", "deceased"];
const COLORS = {
  susceptible: "#3b82f6", exposed: "#f59e0b", infected: "#ef4444", recovered: "#22c55e", deceased: "#8b5cf6",
};
export const UNIT = "people"; // the unit of every compartment's series (the contract's)
export const T_TITLE = "t (simulated time)";
export const MARGIN = { l: 64, r: 12, t: 30, b: 44 };
export const PLOT_CONFIG = { responsive: true, displaylogo: false };

export function colorOf(field) {
  return COLORS[field];
}

// Fields in compartment order first, then the others by name.
export function orderFields(fields) {
  const known = COMPARTMENTS.filter((f) => fields.includes(f));
  return [...known, ...fields.filter((f) => !COMPARTMENTS.includes(f)).sort()];
}

// Run ids as the contract spells them.
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

export function runHref(id) {
  return "/ui/runs/" + encodeURIComponent(id);
}

export function compareHref(ids) {
  return "/ui/runs/compare?ids=" + ids.map(encodeURIComponent).join(",");
}

// The width a chart has for its points: the element less the plot's margins.
export function plotPixels(element) {
  return Math.max(50, Math.floor(element.clientWidth - MARGIN.l - MARGIN.r));
}

// The smallest 1, 2 or 5 × 10^k that is at least `raw`.
export function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw - power * 1e-9) return +(m * power).toPrecision(12);
  return 10 * power;
}

// The bucket (in units of t) that keeps a timeline of `steps` steps over `span` t to at
// most one point per pixel; null when the steps already fit.
export function tBucket(span, steps, pixels) {
  if (!steps || steps <= pixels || !(span > 0)) return null;
  // buckets over [a, b]: at most span / width + 2 starts
  return niceStep(span / Math.max(1, pixels - 2));
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const STATUS_COLORS = { running: "--accent", finished: "--ok", failed: "--bad", cancelled: "--off" };

export function statusBadge(status) {
  const dot = el("span", { class: "dot" });
  dot.style.background = `var(${STATUS_COLORS[status] || "--off"})`;
  const badge = el("span", { class: `status run-${status}`, "data-status": status }, dot);
  badge.append(status);
  return badge;
}

export function dateTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function number(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs >= 1000 && abs < 1e9) return value.toLocaleString("en-US", { maximumFractionDigits: 1 });
  return formatValue(value);
}

export function percent(share) {
  if (share === null || share === undefined) return "–";
  return `${(share * 100).toFixed(1)} %`;
}

// The key parameters of a run, short: "N 10,000 · β 0.3 · γ 0.1".
const SYMBOLS = [["population", "N"], ["beta", "β"], ["gamma", "γ"], ["sigma", "σ"], ["mu", "μ"]];
export function keyParameters(parameters) {
  return SYMBOLS.filter(([name]) => parameters && parameters[name] !== undefined)
    .map(([name, symbol]) => `${symbol} ${number(parameters[name])}`)
    .join(" · ");
}

export function parameterSymbol(name) {
  const found = SYMBOLS.find(([key]) => key === name);
  return found && found[1] !== "N" ? `${name} (${found[1]})` : name === "population" ? "population (N)" : name;
}

// One .figure card: label, number, an optional line under it.
export function figure(key, label, value, sub, title) {
  return el(
    "div",
    { class: "figure", "data-figure": key, title },
    el("div", { class: "label", text: label }),
    el("div", { class: "number", text: value }),
    sub ? el("div", { class: "sub hint", text: sub }) : null,
  );
}

// The figures of a summary, as [key, label, value, sub, title] rows (run page and compare).
export function summaryFigures(summary) {
  const epi = summary.epidemic || {};
  const rows = [];
  if (summary.epidemic) {
    rows.push(["peak", "Peak infected", number(epi.peak_infected), epi.peak_t === null || epi.peak_t === undefined ? null : `at t = ${number(epi.peak_t)}`]);
    rows.push(["attack_rate", "Attack rate", percent(epi.attack_rate), epi.population ? `of N = ${number(epi.population)}` : "needs the population"]);
    const growth = epi.growth;
    rows.push([
      "r0_estimate", "R0 (from growth)", number(epi.r0_estimate),
      growth && growth.doubling_time ? `doubling every ${number(growth.doubling_time)} t` : epi.r0_method, epi.r0_method,
    ]);
    rows.push(["r0_parameters", "R0 (parameters)", number(epi.r0_parameters), "β / (γ + μ)"]);
  }
  rows.push([
    "duration", "Duration", number(summary.duration),
    summary.t_first === null ? "no steps yet" : `t ${number(summary.t_first)} → ${number(summary.t_last)}`,
  ]);
  if (summary.epidemic && epi.end_t !== null && epi.end_t !== undefined) {
    rows.push(["end_t", "Over at", `t = ${number(epi.end_t)}`, "first t after the peak with < 1 infected"]);
  }
  for (const name of orderFields(Object.keys(epi.final || {}))) {
    const value = epi.final[name];
    const share = epi.population && value !== null ? percent(value / epi.population) : null;
    rows.push([`final_${name}`, `Final ${name}`, number(value), share]);
  }
  return rows;
}

// Layout bits every run chart shares.
export function runAxes(extra = {}) {
  return {
    margin: MARGIN,
    xaxis: { title: { text: T_TITLE }, automargin: true, ...(extra.xaxis || {}) },
    yaxis: { title: { text: UNIT }, automargin: true, rangemode: "tozero", ...(extra.yaxis || {}) },
    hovermode: "x unified",
    legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom" },
  };
}

export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// The status of an API failure ("404 no such run" → 404), 0 when not one.
export function statusOf(error) {
  const match = /^(\d{3}) /.exec(String((error && error.message) || ""));
  return match ? Number(match[1]) : 0;
}
