// Admin: tenants (list, create, edit limits), API keys of a tenant (list, create — the
// secret shown once —, revoke after a confirm step), usage per day with a bar chart.
// What is offered follows the signed-in key: an admin of `default` manages every
// tenant; an admin of another tenant sees its own tenant, keys and usage only.
import {
  SignedOut, api, apiBase, csrfToken, onThemeChange, plotly, showError, startSession, themeColors, themedLayout,
} from "./common.js";

const USAGE_DAYS = 30;
const COUNTERS = ["points", "bytes", "requests", "rejected"];
let session = null;
let superuser = false;
let tenants = [];
let usage = null;

// -- requests that change state: the API's problem details kept for the form ----------

class Problem extends Error {
  constructor(status, body, fallback) {
    const detail = body && (body.detail || body.title);
    super(`${status} ${detail || fallback}`);
    this.status = status;
    this.errors = (body && body.errors) || [];
  }
}

async function send(method, path, body) {
  const headers = { Accept: "application/json", "X-CSRF-Token": csrfToken() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = apiBase + path;
  const credentials = url.startsWith(location.origin) ? "same-origin" : "include";
  const answer = await fetch(url, {
    method, headers, credentials, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (answer.status === 401) {
    location.assign("/ui/login?next=" + encodeURIComponent(location.pathname));
    throw new SignedOut("signed out");
  }
  const result = await answer.json().catch(() => null);
  if (!answer.ok) throw new Problem(answer.status, result, answer.statusText);
  return result;
}

// Field errors (`loc` "body.name") under their inputs; the rest in the form's own line.
function showFormError(form, error) {
  if (error instanceof SignedOut) return;
  clearFormErrors(form);
  const general = form.querySelector(".form-error");
  const unplaced = [];
  for (const problem of error.errors || []) {
    const field = String(problem.loc || "").split(".").pop();
    const slot = form.querySelector(`.error[data-for="${CSS.escape(field)}"]`);
    if (slot) {
      slot.textContent = problem.msg;
      slot.hidden = false;
      slot.closest(".field")?.classList.add("invalid");
    } else {
      unplaced.push(`${problem.loc}: ${problem.msg}`);
    }
  }
  if (unplaced.length || !(error.errors || []).length) {
    general.textContent = unplaced.length ? unplaced.join("; ") : String(error.message || error);
    general.hidden = false;
  }
}

function clearFormErrors(form) {
  for (const slot of form.querySelectorAll(".error")) {
    slot.hidden = true;
    slot.textContent = "";
  }
  for (const field of form.querySelectorAll(".invalid")) field.classList.remove("invalid");
}

// A number typed in a form: the text itself when it is not a whole number, so the API
// says what is wrong with it (field by field) instead of the page guessing.
function numberOf(text) {
  const value = text.trim();
  if (value === "") return undefined;
  return /^-?\d+$/.test(value) ? Number(value) : value;
}

// -- small DOM helpers -----------------------------------------------------------------

function cell(content, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "–";
  return td;
}

function badge(text, className = "") {
  const span = document.createElement("span");
  span.className = `badge ${className}`.trim();
  span.textContent = text;
  return span;
}

function when(iso) {
  if (!iso) return "–";
  const moment = new Date(iso);
  const text = document.createElement("time");
  text.dateTime = iso;
  text.title = moment.toString();
  text.textContent = moment.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  return text;
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

function selectedTenant() {
  return document.getElementById("tenant").value || session.tenant;
}

// -- tenants -----------------------------------------------------------------------------

async function loadTenants() {
  tenants = await api("/v1/admin/tenants");
  renderTenants();
  const picker = document.getElementById("tenant");
  const current = picker.value || session.tenant;
  picker.replaceChildren(
    ...tenants.map((t) => {
      const option = document.createElement("option");
      option.value = option.textContent = t.name;
      return option;
    }),
  );
  picker.value = tenants.some((t) => t.name === current) ? current : tenants[0]?.name || session.tenant;
  picker.disabled = !superuser || tenants.length < 2;
}

function renderTenants() {
  const body = document.querySelector("#tenants tbody");
  body.replaceChildren(
    ...tenants.map((t) => {
      const row = document.createElement("tr");
      row.dataset.tenant = t.name;
      const flag = (on) => badge(on ? "yes" : "no", on ? "on" : "");
      const name = cell(t.name, "name");
      if (superuser) name.append(" ", button("Edit", "link phone-only", () => openTenantEdit(t)));
      row.append(
        name,
        cell(when(t.created_at), "created"),
        cell(String(t.retention_days), "num"),
        cell(t.max_series.toLocaleString("en"), "num"),
        cell(t.max_batch_points.toLocaleString("en"), "num"),
        cell(flag(t.anonymous_read)),
        cell(flag(t.anonymous_write)),
      );
      if (superuser) row.append(cell(button("Edit", "link", () => openTenantEdit(t)), "edit-col"));
      return row;
    }),
  );
  document.getElementById("tenants-empty").hidden = tenants.length > 0;
  for (const th of document.querySelectorAll("#tenants .edit-col")) th.hidden = !superuser;
}

async function createTenant(event) {
  event.preventDefault();
  const form = event.target;
  clearFormErrors(form);
  const body = { name: form.elements.name.value.trim() };
  const retention = numberOf(form.elements.retention_days.value);
  if (retention !== undefined) body.retention_days = retention;
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const created = await send("POST", "/v1/admin/tenants", body);
    form.reset();
    document.getElementById("tenant").value = created.name;
    await loadTenants();
    document.getElementById("tenant").value = created.name;
    await Promise.all([loadKeys(), loadUsage()]);
  } catch (error) {
    showFormError(form, error);
  } finally {
    submit.disabled = false;
  }
}

let editing = null;

function openTenantEdit(tenant) {
  editing = tenant;
  const dialog = document.getElementById("tenant-edit");
  const form = dialog.querySelector("form");
  clearFormErrors(form);
  document.getElementById("tenant-edit-title").textContent = `Edit tenant ${tenant.name}`;
  for (const name of ["retention_days", "max_series", "max_batch_points"]) form.elements[name].value = tenant[name];
  form.elements.anonymous_read.checked = tenant.anonymous_read;
  form.elements.anonymous_write.checked = tenant.anonymous_write;
  dialog.showModal();
}

async function saveTenant(event) {
  event.preventDefault();
  const form = event.target;
  clearFormErrors(form);
  const body = {};
  for (const name of ["retention_days", "max_series", "max_batch_points"]) {
    const value = numberOf(form.elements[name].value);
    if (value !== undefined && value !== editing[name]) body[name] = value;
  }
  for (const name of ["anonymous_read", "anonymous_write"]) {
    if (form.elements[name].checked !== editing[name]) body[name] = form.elements[name].checked;
  }
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    if (Object.keys(body).length) await send("PATCH", `/v1/admin/tenants/${encodeURIComponent(editing.name)}`, body);
    document.getElementById("tenant-edit").close();
    await loadTenants();
  } catch (error) {
    showFormError(form, error);
  } finally {
    submit.disabled = false;
  }
}

// -- keys --------------------------------------------------------------------------------

async function loadKeys() {
  const tenant = selectedTenant();
  const keys = await api("/v1/admin/keys?tenant=" + encodeURIComponent(tenant));
  if (tenant !== selectedTenant()) return; // another tenant was picked meanwhile
  keys.sort((a, b) => Boolean(a.revoked_at) - Boolean(b.revoked_at) || b.created_at.localeCompare(a.created_at));
  const body = document.querySelector("#keys tbody");
  body.replaceChildren(...keys.map(keyRow));
  document.getElementById("keys-empty").hidden = keys.length > 0;
  document.getElementById("keys").hidden = keys.length === 0;
}

function keyRow(key) {
  const row = document.createElement("tr");
  row.dataset.key = key.id;
  row.dataset.name = key.name || "";
  if (key.revoked_at) row.className = "revoked";
  const role = document.createElement("span");
  role.append(badge(key.role, `role-${key.role}`));
  if (key.device) role.append(` device ${key.device}`);
  const ident = document.createElement("span");
  ident.className = "mono";
  const id = document.createElement("span");
  id.className = "key-id";
  id.textContent = ` · ${key.id}`;
  ident.append(`${key.prefix}…`, id);
  const status = document.createElement("span");
  status.className = "status-cell";
  status.append(key.revoked_at ? badge("revoked", "bad") : badge("active", "on"));
  if (key.revoked_at) status.append(when(key.revoked_at));
  const name = cell(key.name || "(no name)", "name");
  const prefix = document.createElement("div");
  prefix.className = "mono hint phone-only";
  prefix.textContent = `${key.prefix}…`;
  name.append(prefix);
  row.append(
    name, cell(role), cell(ident, "ident"), cell(when(key.created_at), "created"), cell(status),
    cell(key.revoked_at ? "" : revokeControls(key)),
  );
  return row;
}

// Revoke, then a confirm step in the row itself: "Revoke key?" with Yes / Cancel.
function revokeControls(key) {
  const box = document.createElement("div");
  box.className = "actions";
  const ask = () => {
    const yes = button("Yes, revoke", "primary", async () => {
      yes.disabled = true;
      try {
        await send("DELETE", `/v1/admin/keys/${encodeURIComponent(key.id)}`);
        await loadKeys();
      } catch (error) {
        showError(error);
        document.getElementById("error").scrollIntoView({ block: "nearest" });
        reset();
      }
    });
    yes.dataset.confirm = "revoke";
    const label = document.createElement("span");
    label.textContent = "Revoke? It stops working at once.";
    label.className = "hint";
    box.replaceChildren(label, yes, button("Cancel", "", reset));
    yes.focus();
  };
  const reset = () => {
    const revoke = button("Revoke", "link", ask);
    revoke.dataset.action = "revoke";
    box.replaceChildren(revoke);
  };
  reset();
  return box;
}

async function createKey(event) {
  event.preventDefault();
  const form = event.target;
  clearFormErrors(form);
  const tenant = selectedTenant();
  const body = { tenant, role: form.elements.role.value };
  const name = form.elements.name.value.trim();
  if (name) body.name = name;
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const created = await send("POST", "/v1/admin/keys", body);
    form.elements.name.value = "";
    showNewKey(created);
    await loadKeys();
  } catch (error) {
    showFormError(form, error);
  } finally {
    submit.disabled = false;
  }
}

// The secret lives only in this card (and this page's memory): a reload forgets it.
function showNewKey(created) {
  document.getElementById("new-key-value").textContent = created.key;
  document.getElementById("new-key-what").textContent =
    `${created.name ? `“${created.name}”, ` : ""}role ${created.role}, tenant ${created.tenant}`;
  document.getElementById("new-key-copied").textContent = "";
  const card = document.getElementById("new-key");
  card.hidden = false;
  card.scrollIntoView({ block: "nearest" });
}

function hideNewKey() {
  document.getElementById("new-key-value").textContent = "";
  document.getElementById("new-key").hidden = true;
}

async function copyNewKey() {
  const value = document.getElementById("new-key-value");
  const note = document.getElementById("new-key-copied");
  try {
    await navigator.clipboard.writeText(value.textContent);
    note.textContent = "Copied.";
  } catch {
    // no clipboard access (permissions, plain HTTP elsewhere than localhost): select it
    const range = document.createRange();
    range.selectNodeContents(value);
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    note.textContent = document.execCommand("copy") ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.";
  }
}

// -- usage -------------------------------------------------------------------------------

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

async function loadUsage() {
  const tenant = selectedTenant();
  const to = new Date();
  const from = new Date(to.getTime() - (USAGE_DAYS - 1) * 86400_000);
  const query = new URLSearchParams({ from: isoDay(from), to: isoDay(to) });
  if (superuser) query.set("tenant", tenant);
  const answer = await api("/v1/usage?" + query);
  if (tenant !== selectedTenant()) return;
  usage = answer;
  document.getElementById("usage-range").textContent = `${answer.from} – ${answer.to}, tenant ${tenant}`;
  const days = [...answer.days].reverse();
  const body = document.querySelector("#usage tbody");
  body.replaceChildren(
    ...days.map((d) => {
      const row = document.createElement("tr");
      row.dataset.day = d.day;
      row.append(cell(d.day, "day"), ...COUNTERS.map((c) => cell(d[c].toLocaleString("en"), "num")));
      return row;
    }),
  );
  document.getElementById("usage-empty").hidden = days.length > 0;
  document.getElementById("usage").hidden = days.length === 0;
  drawUsage();
}

// Every day of the range (days without usage are 0), one bar per day.
function drawUsage() {
  const plot = document.getElementById("usage-plot");
  if (!usage) return;
  const counter = document.getElementById("usage-counter").value;
  const byDay = new Map(usage.days.map((d) => [d.day, d[counter]]));
  const x = [], y = [];
  for (let t = Date.parse(usage.from + "T00:00:00Z"); t <= Date.parse(usage.to + "T00:00:00Z"); t += 86400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    x.push(day);
    y.push(byDay.get(day) || 0);
  }
  const max = Math.max(0, ...y);
  plot.dataset.days = String(x.length);
  plot.dataset.total = String(y.reduce((a, b) => a + b, 0));
  plot.hidden = usage.days.length === 0; // the empty state says it; no chart of zeros
  if (plot.hidden) {
    window.Plotly?.purge(plot); // nothing to clear when the library is not loaded yet
    return;
  }
  const colors = themeColors();
  const trace = {
    type: "bar", x, y, name: counter, marker: { color: colors.accent },
    hovertemplate: `%{x}<br>%{y:,} ${counter}<extra></extra>`,
  };
  const layout = themedLayout({
    margin: { l: 56, r: 12, t: 8, b: 36 },
    xaxis: { type: "date", tickformat: "%b %d" },
    // whole counts: no "500m" ticks for small numbers, SI prefixes for large ones
    yaxis: {
      title: { text: counter }, rangemode: "tozero", tickformat: max >= 10000 ? "~s" : ",d", dtick: max < 10 ? 1 : undefined,
    },
    bargap: 0.2,
    showlegend: false,
  });
  plotly().then((Plotly) => Plotly.react(plot, [trace], layout, { displayModeBar: false, responsive: true })).catch(showError);
}

// -- start ------------------------------------------------------------------------------

async function reloadTenantParts() {
  hideNewKey();
  await Promise.all([loadKeys(), loadUsage()]);
}

async function main() {
  session = await startSession();
  superuser = session.role === "admin" && session.tenant === "default" && !session.anonymous;
  document.getElementById("scope").textContent = superuser
    ? "all tenants (admin of default)"
    : `tenant ${session.tenant} only`;
  document.getElementById("tenant-form").hidden = !superuser;
  document.getElementById("tenants-readonly").hidden = superuser;
  document.getElementById("tenant-form").addEventListener("submit", createTenant);
  const dialog = document.getElementById("tenant-edit");
  dialog.querySelector("form").addEventListener("submit", saveTenant);
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  document.getElementById("key-form").addEventListener("submit", createKey);
  document.getElementById("new-key-copy").addEventListener("click", () => copyNewKey().catch(showError));
  document.getElementById("new-key-done").addEventListener("click", hideNewKey);
  document.getElementById("tenant").addEventListener("change", () => reloadTenantParts().catch(showError));
  document.getElementById("usage-counter").addEventListener("change", drawUsage);
  onThemeChange(drawUsage);
  await loadTenants();
  await Promise.all([loadKeys(), loadUsage()]);
  document.body.dataset.ready = "true";
}

main().catch(showError);
