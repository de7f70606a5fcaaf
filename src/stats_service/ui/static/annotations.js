// Marks and bands on charts from GET /v1/annotations (anomalies, alerts, notes).
// chartMarks({ series: [ids], device, from: Date, to: Date }) resolves to Plotly layout
// fragments { shapes: [...], annotations: [...], count } to merge into a chart's layout:
// a moment is a dashed vertical line, a range a translucent band, each with a short label
// at the top of the plot whose hover shows the title, the text, kind, severity and time.
// The chart shows the annotations of those series, the device-wide ones of the device and
// the tenant-wide ones. It never fails: if the list cannot be read, the chart gets no marks.
import { api } from "./common.js";

const PAGE = 500; // annotations per request
const MAX_PAGES = 4; // at most 2000 marks on one chart
const MAX_SERIES = 1000; // the API's limit of series ids per request
const LABEL_CHARS = 28;
const LABEL_ROWS = 3; // labels close together are stacked on up to three rows

// Colour of a mark: a warning or critical one by its severity, otherwise by its kind.
const SEVERITY = { warning: "#d97706", critical: "#dc2626" };
const KIND = { note: "#7c3aed", anomaly: "#0891b2", alert: "#ea580c" };

function colourOf(item) {
  return SEVERITY[item.severity] || KIND[item.kind] || KIND.note;
}

function translucent(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// Plotly renders a few HTML tags in text: user text is shown as typed, never as markup.
function escape(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function shortTitle(title) {
  return title.length > LABEL_CHARS ? title.slice(0, LABEL_CHARS - 1) + "…" : title;
}

// In UTC, like the charts' time axes and the API.
function when(item) {
  const fmt = (iso) => new Date(iso).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  return item.end ? `${fmt(item.start)} – ${fmt(item.end)}` : fmt(item.start);
}

function hoverText(item) {
  const lines = [`<b>${escape(item.title)}</b>`];
  if (item.text) lines.push(escape(item.text).replace(/\n/g, "<br>"));
  lines.push(`${escape(item.kind)} · ${escape(item.severity)} · ${escape(item.source)}`);
  lines.push(when(item));
  return lines.join("<br>");
}

async function listAll(selection) {
  const params = new URLSearchParams({
    from: selection.from.toISOString(), to: selection.to.toISOString(),
    include_global: "true", order: "start", limit: String(PAGE),
  });
  if (selection.device) params.set("device", selection.device);
  const ids = (selection.series || []).map(String).filter((id) => /^-?\d{1,20}$/.test(id));
  if (ids.length) params.set("series", ids.slice(0, MAX_SERIES).join(","));
  const items = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    if (cursor) params.set("cursor", cursor);
    const answer = await api("/v1/annotations?" + params);
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return items;
}

// Layout fragments of `items` for a chart of [from, to].
export function marksOf(items, from, to) {
  const shapes = [];
  const annotations = [];
  // a label takes the highest row that is free over its width: about 6 px a character of
  // a plot about as wide as the page (less the axes), as a span of time
  const plotPx = Math.max(200, Math.min(document.documentElement.clientWidth || 1000, 1200) - 110);
  const span = (item) => ((shortTitle(item.title).length * 6 + 12) / plotPx) * (to - from);
  const rows = new Array(LABEL_ROWS).fill(-Infinity);
  for (const item of items) {
    const colour = colourOf(item);
    const start = new Date(item.start);
    if (item.end) {
      shapes.push({
        type: "rect", xref: "x", yref: "paper", x0: item.start, x1: item.end, y0: 0, y1: 1,
        fillcolor: translucent(colour, 0.16), line: { width: 0 }, layer: "below",
      });
    } else {
      shapes.push({
        type: "line", xref: "x", yref: "paper", x0: item.start, x1: item.start, y0: 0, y1: 1,
        line: { color: colour, width: 1.5, dash: "dash" }, layer: "above",
      });
    }
    // the label sits where the mark or band is visible (a band may start before `from`)
    const at = start < from ? from : start;
    if (at > to) continue;
    // in the right half of the chart a label reads leftwards, so it stays inside it
    const leftwards = at - from > (to - from) / 2;
    const width = span(item);
    const left = leftwards ? at - width : at.getTime();
    let row = rows.findIndex((end) => left >= end);
    if (row < 0) row = rows.indexOf(Math.min(...rows));
    rows[row] = left + width;
    annotations.push({
      x: at.toISOString(), xref: "x", y: 1 - row * 0.1, yref: "paper",
      xanchor: leftwards ? "right" : "left", yanchor: "top",
      text: escape(shortTitle(item.title)), showarrow: false,
      // no font colour: the label takes the chart's themed text colour (themedLayout's
      // font, from themeColors()), so it follows a theme change even when a page redraws
      // with marks it fetched before
      font: { size: 10 }, bgcolor: translucent(colour, 0.18),
      bordercolor: colour, borderwidth: 1, borderpad: 2,
      hovertext: hoverText(item),
      hoverlabel: { bgcolor: colour, bordercolor: colour, font: { color: "#ffffff", size: 12 } },
    });
  }
  return { shapes, annotations, count: items.length };
}

export async function chartMarks(selection) {
  try {
    const { from, to } = selection || {};
    if (!(from instanceof Date) || !(to instanceof Date) || !(from < to)) {
      return { shapes: [], annotations: [], count: 0 };
    }
    const items = await listAll(selection);
    return marksOf(items, from, to);
  } catch {
    return { shapes: [], annotations: [], count: 0 }; // no marks, never a broken chart
  }
}
