// Runs list: the tenant's runs (newest first) with the API's filters, paged with its
// cursor; tick 2-10 of them to compare.
import { api, apiBase, showError, startSession } from "./common.js";
import {
  compareHref, dateTime, debounce, el, keyParameters, number, runHref, statusBadge,
} from "./runs_common.js";

const PAGE = 50;
const MAX_COMPARE = 10;
const FILTERS = ["status", "model", "device", "from", "to"];
const picked = new Set(new URLSearchParams(location.search).getAll("pick"));
let runs = [];
let cursor = null;
let loading = 0; // the latest load wins

function filterParams() {
  const params = new URLSearchParams({ limit: String(PAGE) });
  for (const name of FILTERS) {
    const value = document.getElementById(name).value.trim();
    if (!value) continue;
    if (name === "from" || name === "to") {
      const when = new Date(value);
      if (Number.isNaN(when.getTime())) throw new Error(`"${name}" is not a date and time`);
      params.set(name, when.toISOString());
    } else {
      params.set(name, value);
    }
  }
  return params;
}

function filtered() {
  return FILTERS.some((name) => document.getElementById(name).value.trim());
}

function matches(run, query) {
  if (!query) return true;
  const text = [run.id, run.name, run.model, run.device, run.status, run.message, JSON.stringify(run.parameters)]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
  return query.split(/\s+/).every((word) => text.includes(word));
}

function row(run) {
  const box = el("input", { type: "checkbox", "aria-label": `Pick ${run.id} to compare` });
  box.checked = picked.has(run.id);
  box.dataset.run = run.id;
  box.addEventListener("change", () => {
    if (box.checked) picked.add(run.id);
    else picked.delete(run.id);
    renderPicked();
  });
  const link = el("a", { href: runHref(run.id), text: run.id });
  const name = run.name ? el("span", { class: "name", text: run.name }) : null;
  const params = keyParameters(run.parameters);
  const tr = el(
    "tr",
    { "data-run": run.id, class: picked.has(run.id) ? "picked" : "" },
    el("td", { class: "pick" }, box),
    el("td", {}, link, name),
    el("td", { text: (run.model || run.kind || "–").toUpperCase() }),
    el("td", { title: run.message || "" }, statusBadge(run.status)),
    el("td", { text: dateTime(run.started_at), title: run.started_at }),
    el("td", { text: dateTime(run.finished_at), title: run.finished_at || "" }),
    el("td", { class: "num", text: number(run.steps) }),
    el("td", { class: "params", text: params || "–", title: JSON.stringify(run.parameters) }),
  );
  return tr;
}

function render() {
  const query = document.getElementById("search").value.trim().toLowerCase();
  const shown = runs.filter((r) => matches(r, query));
  document.querySelector("#runs tbody").replaceChildren(...shown.map(row));
  const none = runs.length === 0;
  document.getElementById("runs").hidden = shown.length === 0;
  document.getElementById("empty").hidden = !(none && !filtered() && !cursor);
  document.getElementById("nomatch").hidden = !(shown.length === 0 && (!none || filtered()));
  document.getElementById("more").hidden = !cursor;
  const more = cursor ? " (more to load)" : "";
  document.getElementById("count").textContent = none
    ? ""
    : query
      ? `${shown.length} of ${runs.length} loaded runs match${more}`
      : `${runs.length} run${runs.length === 1 ? "" : "s"}${more}`;
  renderPicked();
}

function renderPicked() {
  const count = picked.size;
  const button = document.getElementById("compare");
  button.disabled = count < 2 || count > MAX_COMPARE;
  button.textContent = count ? `Compare ${count}` : "Compare";
  document.getElementById("picked").textContent =
    count > MAX_COMPARE
      ? `At most ${MAX_COMPARE} runs at once: untick ${count - MAX_COMPARE}.`
      : count < 2
        ? `Tick ${count ? "at least one more run" : "2–10 runs"} to compare.`
        : `${count} runs picked.`;
  for (const box of document.querySelectorAll("#runs tbody input[type=checkbox]")) {
    box.disabled = !box.checked && count >= MAX_COMPARE;
    box.closest("tr").classList.toggle("picked", box.checked);
  }
}

async function load(append = false) {
  const mine = ++loading;
  const params = filterParams();
  if (append && cursor) params.set("cursor", cursor);
  const page = await api("/v1/runs?" + params);
  if (mine !== loading) return;
  runs = append ? [...runs, ...page.items] : page.items;
  cursor = page.next_cursor;
  document.getElementById("loading").hidden = true;
  render();
}

function keepInUrl() {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const value = document.getElementById(name).value.trim();
    if (value) params.set(name, value);
  }
  const query = params.toString();
  history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
}

function reload() {
  keepInUrl();
  load().catch(showError);
}

function emptyState() {
  const curl =
    `curl -X POST ${apiBase}/v1/runs -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \\\n` +
    `  -d '{"schema": "epidemic-run/v1", "id": "sir-1", "model": "sir",\n` +
    `       "parameters": {"population": 10000, "beta": 0.3, "gamma": 0.1}}'\n\n` +
    `curl -X POST ${apiBase}/v1/runs/sir-1/steps -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \\\n` +
    `  -d '{"schema": "epidemic-run/v1", "steps": [\n` +
    `        {"t": 0, "susceptible": 9990, "infected": 10, "recovered": 0},\n` +
    `        {"t": 1, "susceptible": 9986.7, "infected": 12.2, "recovered": 1.1}]}'\n\n` +
    `curl -X POST ${apiBase}/v1/runs/sir-1/finish -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \\\n` +
    `  -d '{"schema": "epidemic-run/v1", "status": "finished"}'`;
  document.getElementById("curl").textContent = curl;
  document.getElementById("copy").addEventListener("click", () => {
    navigator.clipboard
      .writeText(curl)
      .then(() => {
        document.getElementById("copied").hidden = false;
      })
      .catch(() => {
        // no clipboard (plain http): select the text for a manual copy
        const range = document.createRange();
        range.selectNodeContents(document.getElementById("curl"));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
      });
  });
}

async function main() {
  try {
    const given = new URLSearchParams(location.search);
    for (const name of FILTERS) if (given.get(name)) document.getElementById(name).value = given.get(name);
    emptyState();
    await startSession();
    const form = document.getElementById("filters");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      reload();
    });
    for (const name of ["status", "model", "from", "to"]) document.getElementById(name).addEventListener("change", reload);
    document.getElementById("device").addEventListener("input", debounce(reload, 400));
    document.getElementById("search").addEventListener("input", render);
    form.addEventListener("reset", () => setTimeout(reload, 0));
    document.getElementById("more").addEventListener("click", () => load(true).catch(showError));
    document.getElementById("compare").addEventListener("click", () => location.assign(compareHref([...picked])));
    await load();
  } catch (error) {
    document.getElementById("loading").hidden = true;
    showError(error);
  }
}

main();
