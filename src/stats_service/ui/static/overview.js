// Overview: every device with its status, last values, a sparkline of the last hour.
import { ago, api, apiBase, formatValue, showError, startSession } from "./common.js";
import { LiveFeed, liveBadge } from "./live.js";

const ONLINE_S = 120; // a device seen within this many seconds is online
const SPARK_BUCKET = "1m"; // 60 points for the last hour, bucketed by the server
const SPARK_DEVICES = 50; // devices per sparkline request
const LIVE_RENDER_MS = 1000; // live values redraw the table at most once a second
let devices = [];
let session = null;
let renderTimer = null;

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
  if (empty) showEmpty();
  render();
}

// The empty state: how to send a first reading to this server, over HTTP and MQTT.
function showEmpty() {
  document.getElementById("curl").textContent =
    `curl -X POST ${apiBase}/v1/ingest -H "X-API-Key: $KEY" \\\n` +
    `  -d '{"device": "esp32-kitchen", "metrics": {"temperature": 21.5, "humidity": 48}}'`;
  const broker = session && session.mqtt;
  const host = broker && broker !== "configured" ? new URL(broker.replace(/^mqtts?:/, "http:")) : null;
  const args = host ? `-h ${host.hostname}${host.port ? " -p " + host.port : ""}` : "-h <your broker>";
  document.getElementById("mqtt-hint").textContent = broker
    ? "This server subscribes to MQTT; publish a reading on a topic stats/<device>/<metric>:"
    : "This server is not subscribed to a broker yet: start it with STATS_MQTT_URL=mqtt://<broker>:1883, then publish on stats/<device>/<metric>:";
  document.getElementById("mqtt").textContent =
    `mosquitto_pub ${args} -t stats/esp32-kitchen/temperature \\\n` +
    `  -m '{"value": 21.5, "unit": "°C"}'`;
}

// A new reading: its device's last value and last seen change at once; the table is
// drawn again at most once a second. A device not listed yet brings a full reload.
function onPoints(message) {
  if (message.type !== "points" || !message.v.length) return;
  const device = devices.find((d) => d.name === message.device);
  if (!device) {
    if (!renderTimer) renderTimer = setTimeout(() => { renderTimer = null; load().catch(showError); }, LIVE_RENDER_MS);
    return;
  }
  const t = message.t[message.t.length - 1];
  if (!device.last_seen || t > device.last_seen) device.last_seen = t;
  const item = device.series.find((s) => s.series_id === message.series)
    || device.series.find((s) => s.metric === message.metric);
  if (item && (!item.t || t >= item.t)) {
    item.value = message.v[message.v.length - 1];
    item.t = t;
  } else if (!item) {
    device.series.push({ series_id: message.series, metric: message.metric, unit: message.unit, value: message.v[message.v.length - 1], t, spark: [] });
    device.series.sort((a, b) => a.metric.localeCompare(b.metric));
  }
  if (!renderTimer) renderTimer = setTimeout(() => { renderTimer = null; render(); }, LIVE_RENDER_MS);
}

async function main() {
  try {
    session = await startSession();
    document.getElementById("search").addEventListener("input", render);
    document.getElementById("sort").addEventListener("change", render);
    for (const button of document.querySelectorAll("button[data-copy]")) {
      button.addEventListener("click", () =>
        navigator.clipboard.writeText(document.getElementById(button.dataset.copy).textContent).catch(() => {}),
      );
    }
    await load();
    new LiveFeed(new URLSearchParams(), onPoints, liveBadge(document.getElementById("live"))).open();
    setInterval(() => load().catch(showError), 60_000); // the sparklines move on
  } catch (error) {
    showError(error);
  }
}

main();
