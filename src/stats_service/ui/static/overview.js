// Overview: every device with its status, last values, a sparkline of the last hour.
import { ago, api, apiBase, formatValue, showError, startSession } from "./common.js";

const ONLINE_S = 120; // a device seen within this many seconds is online
const SPARK_BUCKET = "1m"; // 60 points for the last hour, bucketed by the server
const SPARK_DEVICES = 50; // devices per sparkline request
let devices = [];

function sparkline(values) {
  const points = values.filter((v) => v !== null && v !== undefined);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 80 22");
  svg.setAttribute("preserveAspectRatio", "none");
  if (points.length < 2) return svg;
  const lo = Math.min(...points), hi = Math.max(...points);
  const span = hi - lo || 1;
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute(
    "points",
    points.map((v, i) => `${(i * 80) / (points.length - 1)},${20 - ((v - lo) * 18) / span}`).join(" "),
  );
  svg.append(line);
  return svg;
}

function isOnline(device, now) {
  return device.last_seen && now - Date.parse(device.last_seen) <= ONLINE_S * 1000;
}

function render() {
  const now = Date.now();
  const query = document.getElementById("search").value.trim().toLowerCase();
  const sort = document.getElementById("sort").value;
  const shown = devices.filter(
    (d) => !query || d.name.toLowerCase().includes(query) || d.metrics.some((m) => m.toLowerCase().includes(query)),
  );
  const key = {
    name: (a, b) => a.name.localeCompare(b.name),
    last_seen: (a, b) => (b.last_seen || "").localeCompare(a.last_seen || ""),
    status: (a, b) => isOnline(b, now) - isOnline(a, now) || a.name.localeCompare(b.name),
  }[sort];
  shown.sort(key);
  const body = document.querySelector("#devices tbody");
  body.replaceChildren(
    ...shown.map((d) => {
      const row = document.createElement("tr");
      row.dataset.device = d.name;
      const online = isOnline(d, now);
      const status = document.createElement("td");
      status.innerHTML = `<span class="status ${online ? "online" : "offline"}"><span class="dot"></span></span>`;
      status.firstChild.append(online ? "online" : "offline");
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/ui/devices/" + encodeURIComponent(d.name);
      link.textContent = d.name;
      name.append(link);
      const values = document.createElement("td");
      const list = document.createElement("div");
      list.className = "values";
      for (const s of d.series) {
        const item = document.createElement("span");
        item.className = "value";
        item.title = `${s.metric}: last hour, 1-minute means`;
        const label = document.createElement("span");
        label.className = "name";
        label.textContent = s.metric;
        item.append(label, formatValue(s.value, s.unit), sparkline(s.spark));
        list.append(item);
      }
      values.append(list);
      const seen = document.createElement("td");
      seen.textContent = ago(d.last_seen, now);
      seen.title = d.last_seen || "";
      row.append(status, name, values, seen);
      return row;
    }),
  );
}

async function load() {
  const [listed, latest] = await Promise.all([
    api("/v1/devices?limit=1000"),
    api("/v1/latest?limit=10000"),
  ]);
  // the sparklines: the devices' series in a few requests (a selection is required)
  const names = listed.items.map((d) => d.name);
  const chunks = [];
  for (let i = 0; i < names.length; i += SPARK_DEVICES) chunks.push(names.slice(i, i + SPARK_DEVICES));
  const sparkPages = await Promise.all(
    chunks.map((chunk) => {
      const params = new URLSearchParams({
        device: chunk.join(","), from: "now-1h", to: "now", bucket: SPARK_BUCKET,
        fn: "mean", group_by: "series", limit: "1000",
      });
      return api("/v1/aggregate?" + params);
    }),
  );
  const sparks = new Map(sparkPages.flatMap((page) => page.groups.map((g) => [g.series_id, g.mean])));
  const byDevice = new Map();
  for (const item of latest.items) {
    // one value per metric: a metric with several series (tags) shows its latest one
    if (!byDevice.has(item.device)) byDevice.set(item.device, new Map());
    const metrics = byDevice.get(item.device);
    const seen = metrics.get(item.metric);
    if (!seen || (item.t || "") > (seen.t || "")) {
      metrics.set(item.metric, { ...item, spark: sparks.get(item.series_id) || [] });
    }
  }
  devices = listed.items.map((d) => ({
    ...d,
    series: [...(byDevice.get(d.name) || new Map()).values()].sort((a, b) => a.metric.localeCompare(b.metric)),
  }));
  document.getElementById("loading").hidden = true;
  const empty = devices.length === 0;
  document.getElementById("devices").hidden = empty;
  document.getElementById("empty").hidden = !empty;
  if (empty) {
    const curl =
      `curl -X POST ${apiBase}/v1/ingest -H "X-API-Key: $KEY" \\\n` +
      `  -d '{"device": "esp32-kitchen", "metrics": {"temperature": 21.5, "humidity": 48}}'`;
    document.getElementById("curl").textContent = curl;
  }
  render();
}

async function main() {
  try {
    await startSession();
    document.getElementById("search").addEventListener("input", render);
    document.getElementById("sort").addEventListener("change", render);
    document.getElementById("copy").addEventListener("click", () =>
      navigator.clipboard.writeText(document.getElementById("curl").textContent).catch(() => {}),
    );
    await load();
    setInterval(() => load().catch(showError), 30_000);
  } catch (error) {
    showError(error);
  }
}

main();
