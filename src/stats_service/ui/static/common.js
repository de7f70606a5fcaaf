// Shared by the dashboard's pages: API calls with the session cookie, formatting.
let csrf = "";

export class SignedOut extends Error {}

// The API's base URL (STATS_PUBLIC_URL), or this page's origin.
export const apiBase = document.querySelector('meta[name="stats-api-base"]')?.content || location.origin;

export async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const method = (options.method || "GET").toUpperCase();
  if (!["GET", "HEAD", "OPTIONS"].includes(method)) headers["X-CSRF-Token"] = csrf;
  // the dashboard's own routes (/ui/...) are on this origin; the API may be elsewhere
  const url = path.startsWith("/v1/") ? apiBase + path : path;
  const credentials = url.startsWith(location.origin) || url.startsWith("/") ? "same-origin" : "include";
  const answer = await fetch(url, { ...options, method, headers, credentials });
  if (answer.status === 401) {
    location.assign("/ui/login?next=" + encodeURIComponent(location.pathname));
    throw new SignedOut("signed out");
  }
  const body = await answer.json().catch(() => null);
  if (!answer.ok) {
    const detail = body && (body.detail || body.title);
    throw new Error(`${answer.status} ${detail || answer.statusText}`);
  }
  return body;
}

export async function startSession() {
  const session = await api("/ui/session");
  csrf = session.csrf;
  const who = document.getElementById("who");
  if (who) who.textContent = session.anonymous ? `${session.tenant} (anonymous read)` : `${session.tenant} · ${session.role}`;
  const form = document.getElementById("logout");
  if (form && !session.anonymous) {
    form.elements.csrf.value = csrf;
    form.hidden = false;
  }
  const admin = document.getElementById("nav-admin");
  if (admin) admin.hidden = session.role !== "admin";
  const here = location.pathname;
  for (const link of document.querySelectorAll(".nav a")) {
    const target = link.getAttribute("href");
    const current = target === "/ui/" ? here === "/ui/" || here.startsWith("/ui/devices/") : here.startsWith(target);
    if (current) link.setAttribute("aria-current", "page");
  }
  return session;
}

// The CSRF token of the session (for forms and requests built by a page itself).
export function csrfToken() {
  return csrf;
}

// Colours of the current theme (CSS variables of dashboard.css) for charts.
export function themeColors() {
  const style = getComputedStyle(document.documentElement);
  const read = (name) => style.getPropertyValue(name).trim();
  return { fg: read("--fg"), muted: read("--muted"), line: read("--line"), card: read("--card"), accent: read("--accent") };
}

// A Plotly layout in the page's theme: transparent backgrounds, themed text and grid.
export function themedLayout(layout) {
  const c = themeColors();
  const axis = (a) => ({ gridcolor: c.line, zerolinecolor: c.line, linecolor: c.line, ...(a || {}) });
  const themed = {
    ...layout,
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: c.fg, ...(layout.font || {}) },
    hoverlabel: { bgcolor: c.card, font: { color: c.fg }, ...(layout.hoverlabel || {}) },
    legend: { font: { color: c.fg }, ...(layout.legend || {}) },
  };
  for (const key of Object.keys(themed)) if (/^[xy]axis\d*$/.test(key)) themed[key] = axis(themed[key]);
  if (!themed.xaxis) themed.xaxis = axis();
  if (!themed.yaxis) themed.yaxis = axis();
  return themed;
}

// Run `redraw` when the theme changes (charts take their colours at draw time).
export function onThemeChange(redraw) {
  document.addEventListener("themechange", () => redraw());
}

export function showError(error) {
  if (error instanceof SignedOut) return;
  const box = document.getElementById("error");
  box.textContent = String(error.message || error);
  box.hidden = false;
}

export function formatValue(value, unit) {
  if (value === null || value === undefined) return "–";
  const abs = Math.abs(value);
  const text = abs !== 0 && (abs >= 1e6 || abs < 1e-3) ? value.toExponential(3) : String(+value.toFixed(3));
  return unit ? `${text} ${unit}` : text;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

// Bucket sizes the charts may ask for, in seconds, with the API's spelling.
const NICE = [
  [1, "1s"], [2, "2s"], [5, "5s"], [10, "10s"], [15, "15s"], [30, "30s"],
  [60, "1m"], [120, "2m"], [300, "5m"], [600, "10m"], [900, "15m"], [1800, "30m"],
  [3600, "1h"], [7200, "2h"], [10800, "3h"], [21600, "6h"], [43200, "12h"],
  [86400, "1d"], [172800, "2d"], [604800, "7d"],
];

// The smallest nice bucket that gives at most one point per pixel.
export function niceBucket(rangeSeconds, widthPixels) {
  const raw = rangeSeconds / Math.max(1, Math.floor(widthPixels));
  for (const [seconds, label] of NICE) if (seconds >= raw) return { seconds, label };
  const days = Math.ceil(raw / 86400);
  return { seconds: days * 86400, label: `${days}d` };
}

// Plotly (the bundle of the `plotly` package, served from /ui/static/): loaded once, on
// demand and asynchronously, so a page's API requests run while the browser compiles it
// (pages preload it in <head>). Resolves to the Plotly object.
let plotlyLoading = null;
export function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoading) {
    plotlyLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/ui/static/plotly.min.js";
      script.async = true;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        plotlyLoading = null;
        reject(new Error("the chart library (/ui/static/plotly.min.js) could not be loaded"));
      };
      document.head.append(script);
    });
  }
  return plotlyLoading;
}

// A plain SVG drawing of a chart's data, shown at once while Plotly loads (it is large:
// compiling it takes a second or more on a small machine the first time), then replaced
// by the interactive chart. lines: [{ y: [...], color }], band: { lo: [...], hi: [...] }.
export function previewChart(element, x, lines, band = null) {
  const width = Math.max(1, element.clientWidth), height = Math.max(1, element.clientHeight);
  const pad = { l: 60, r: 10, t: 10, b: 30 };
  const times = x.map((t) => (typeof t === "number" ? t : Date.parse(t))); // dates or numbers
  const values = [...lines.flatMap((l) => l.y), ...(band ? [...band.lo, ...band.hi] : [])].filter((v) => v !== null && Number.isFinite(v));
  element.querySelector("svg.preview")?.remove();
  if (times.length === 0 || values.length === 0) return;
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  let [lo, hi] = [Math.min(...values), Math.max(...values)];
  if (hi === lo) [lo, hi] = [lo - 1, hi + 1];
  const px = (t) => pad.l + ((t - t0) / (t1 - t0 || 1)) * (width - pad.l - pad.r);
  const py = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (height - pad.t - pad.b);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "preview");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  const path = (points) => points.map(([a, b], i) => `${i ? "L" : "M"}${a.toFixed(1)},${b.toFixed(1)}`).join("");
  const colors = themeColors();
  if (band) {
    const upper = times.map((t, i) => [t, band.hi[i]]).filter(([, v]) => v !== null);
    const lower = times.map((t, i) => [t, band.lo[i]]).filter(([, v]) => v !== null).reverse();
    const area = document.createElementNS(ns, "path");
    area.setAttribute("d", path([...upper, ...lower].map(([t, v]) => [px(t), py(v)])) + "Z");
    area.setAttribute("fill", getComputedStyle(document.documentElement).getPropertyValue("--band").trim());
    svg.append(area);
  }
  for (const line of lines) {
    const drawn = document.createElementNS(ns, "path");
    drawn.setAttribute("d", path(times.map((t, i) => [t, line.y[i]]).filter(([, v]) => v !== null).map(([t, v]) => [px(t), py(v)])));
    drawn.setAttribute("fill", "none");
    drawn.setAttribute("stroke", line.color || colors.accent);
    drawn.setAttribute("stroke-width", "1.8");
    svg.append(drawn);
  }
  for (const [v, y] of [[hi, pad.t], [lo, height - pad.b]]) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", String(pad.l - 6));
    label.setAttribute("y", String(y + 4));
    label.setAttribute("text-anchor", "end");
    label.setAttribute("font-size", "11");
    label.setAttribute("fill", colors.muted);
    label.textContent = String(+v.toPrecision(4));
    svg.append(label);
  }
  element.append(svg);
}
