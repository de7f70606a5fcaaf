// Compare runs: one field of 2-10 runs on one chart (aligned on t, bucketed to the
// chart's width) and their summary figures side by side.
import { api, onThemeChange, plotly, showError, startSession, themedLayout } from "./common.js";
import {
  PLOT_CONFIG, RUN_ID, UNIT, compareHref, debounce, el, number, orderFields, parameterSymbol,
  plotPixels, runAxes, runHref, statusBadge, statusOf, summaryFigures, tBucket,
} from "./runs_common.js";

const MAX_COMPARE = 10;
const PARAMETERS = ["population", "beta", "gamma", "sigma", "mu"];
const given = new URLSearchParams(location.search);
const ids = [...new Set((given.get("ids") || "").split(",").map((s) => s.trim()).filter(Boolean))];
let runs = []; // GET /v1/runs/{id} of each, in the order given
let answer = null; // the latest comparison
let loading = 0;
let drawnPixels = 0;

function problem(title, text, others) {
  document.getElementById("loading").hidden = true;
  document.getElementById("content").hidden = true;
  document.getElementById("problem").hidden = false;
  document.getElementById("problem-title").textContent = title;
  const body = document.getElementById("problem-text");
  body.replaceChildren(text);
  if (others && others.length >= 2) {
    body.append(" ", el("a", { href: compareHref(others), text: `Compare the other ${others.length}` }), ".");
  }
}

function quoted(list) {
  return list.map((id) => `“${id}”`).join(", ");
}

async function fetchRuns() {
  const results = await Promise.allSettled(
    ids.map((id) => (RUN_ID.test(id) ? api("/v1/runs/" + encodeURIComponent(id)) : Promise.resolve(null))),
  );
  const found = [];
  const unknown = []; // in the order given
  ids.forEach((id, i) => {
    const result = results[i];
    if (result.status === "fulfilled" && result.value) found.push(result.value);
    else if (result.status === "fulfilled" || statusOf(result.reason) === 404) unknown.push(id);
    else throw result.reason;
  });
  return { found, unknown };
}

function fieldsOf(list) {
  const sets = list.map((run) => Object.keys(run.series || {}).filter((f) => f !== "t"));
  const common = sets.length ? sets[0].filter((f) => sets.every((s) => s.includes(f))) : [];
  return orderFields(common);
}

function chosenField() {
  return document.getElementById("field").value;
}

async function load() {
  const mine = ++loading;
  const field = chosenField();
  const plot = document.getElementById("plot");
  const pixels = plotPixels(plot);
  const steps = runs.reduce((sum, run) => sum + (run.steps || 0), 0);
  const span = Math.max(0, ...runs.map((run) => run.last_t || 0)); // t starts at 0 or later
  const bucket = tBucket(span, steps, pixels);
  const params = new URLSearchParams({ ids: runs.map((run) => run.id).join(",") });
  if (field) params.set("fields", field);
  if (bucket) params.set("bucket", String(bucket));
  const got = await api("/v1/runs/compare?" + params);
  if (mine !== loading) return;
  answer = { ...got, field, bucket: got.bucket };
  drawnPixels = pixels;
  document.getElementById("loading").hidden = true;
  await draw();
  renderSummary();
}

function draw() {
  if (!answer) return Promise.resolve();
  const { field } = answer;
  const plot = document.getElementById("plot");
  const traces = answer.ids.map((id) => {
    const run = runs.find((r) => r.id === id);
    const y = field ? (answer.runs[id] || {})[field] || [] : [];
    return {
      x: answer.t, y, name: id, type: "scatter", mode: answer.t.length <= 40 ? "lines+markers" : "lines",
      line: { width: 2 }, marker: { size: 4 }, connectgaps: true,
      hovertemplate: `${id}${run && run.name ? " (" + run.name + ")" : ""}: %{y:,.4~g} ${UNIT}<extra></extra>`,
    };
  });
  const layout = runAxes({ xaxis: { hoverformat: ",.4~g" }, yaxis: { title: { text: field ? `${field} (${UNIT})` : UNIT } } });
  if (!field || answer.t.length === 0) {
    const text = field ? "no steps yet" : "these runs have no field in common (no steps yet?)";
    layout.annotations = [{ text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }];
  }
  document.getElementById("chart-title").textContent = field ? `${field} of ${answer.ids.length} runs` : `${answer.ids.length} runs`;
  document.getElementById("bucket").textContent = answer.bucket
    ? `· mean per ${number(answer.bucket)} t (${answer.t.length} points)`
    : `· every step (${answer.t.length} points)`;
  return plotly().then((Plotly) => Plotly.react(plot, traces, themedLayout(layout), PLOT_CONFIG)).then(() => {
    plot.dataset.points = String(answer.t.length);
    plot.dataset.traces = String(traces.length);
  });
}

function renderSummary() {
  const head = el("tr", {}, el("th", { text: "" }));
  for (const id of answer.ids) {
    const run = runs.find((r) => r.id === id);
    head.append(
      el("th", { class: "num", "data-run": id }, el("a", { href: runHref(id), text: id }), run && run.name ? el("span", { class: "name", text: run.name }) : null),
    );
  }
  const rows = [];
  const add = (key, label, cells) => rows.push(el("tr", { "data-row": key }, el("th", { text: label, scope: "row" }), ...cells));
  const cell = (text, title) => el("td", { class: "num", text, title });
  const byId = (fn) => answer.ids.map((id) => fn(runs.find((r) => r.id === id) || {}, answer.summaries[id]));
  add("model", "Model", byId((run) => cell((run.model || run.kind || "–").toUpperCase())));
  add("status", "Status", byId((run) => el("td", { class: "num" }, statusBadge(run.status))));
  add("steps", "Steps", byId((run, s) => cell(number(s.steps))));
  for (const name of PARAMETERS) {
    if (!runs.some((run) => run.parameters && run.parameters[name] !== undefined)) continue;
    add(`param_${name}`, parameterSymbol(name), byId((run) => cell(number((run.parameters || {})[name]))));
  }
  // the summary figures, in the order of the run page, a row each
  const figures = new Map();
  for (const id of answer.ids) {
    for (const [key, label, value, sub, title] of summaryFigures(answer.summaries[id])) {
      if (!figures.has(key)) figures.set(key, { label, values: new Map() });
      figures.get(key).values.set(id, [key === "peak" && sub ? `${value} (${sub})` : value, title || sub || ""]);
    }
  }
  for (const [key, { label, values }] of figures) {
    add(key, label, answer.ids.map((id) => cell(...(values.get(id) || ["–", ""]))));
  }
  document.querySelector("#summary thead").replaceChildren(head);
  document.querySelector("#summary tbody").replaceChildren(...rows);
}

function refresh() {
  load().catch(showError);
}

async function main() {
  try {
    plotly().catch(showError); // loads and compiles while the page asks for its data
    await startSession();
    if (ids.length === 0) return problem("Nothing to compare", "No runs were given: the address needs ?ids=a,b (2–10 run ids).");
    if (ids.length === 1) return problem("Pick one more run", `Comparing needs at least 2 runs; only ${quoted(ids)} was given.`);
    if (ids.length > MAX_COMPARE) {
      return problem("Too many runs", `At most ${MAX_COMPARE} runs can be compared at once; ${ids.length} were given.`, ids.slice(0, MAX_COMPARE));
    }
    const { found, unknown } = await fetchRuns();
    if (unknown.length) {
      const plural = unknown.length > 1 ? "s" : "";
      return problem(
        `No run${plural} named ${quoted(unknown)}`,
        `The API knows no run${plural} ${quoted(unknown)} in your tenant, so there is nothing to compare ${unknown.length > 1 ? "them" : "it"} with.`,
        found.map((run) => run.id),
      );
    }
    runs = found;
    const select = document.getElementById("field");
    const fields = fieldsOf(runs);
    select.replaceChildren(...fields.map((f) => el("option", { value: f, text: f })));
    const wanted = given.get("field");
    select.value = fields.includes(wanted) ? wanted : fields.includes("infected") ? "infected" : fields[0] || "";
    select.disabled = fields.length === 0;
    select.addEventListener("change", () => {
      const params = new URLSearchParams(location.search);
      params.set("field", chosenField());
      history.replaceState(null, "", location.pathname + "?" + params.toString().replaceAll("%2C", ","));
      refresh();
    });
    document.getElementById("content").hidden = false; // the plot needs its width
    document.title = `Compare ${runs.length} runs · StatisticsService`;
    onThemeChange(() => draw().catch(showError));
    window.addEventListener(
      "resize",
      debounce(() => {
        if (answer && plotPixels(document.getElementById("plot")) !== drawnPixels) refresh();
      }, 400),
    );
    await load();
  } catch (error) {
    document.getElementById("loading").hidden = true;
    showError(error);
  }
}

main();
