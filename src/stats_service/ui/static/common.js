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
