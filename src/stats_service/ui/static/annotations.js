// Marks and bands on charts from GET /v1/annotations (anomalies, alerts, notes).
// chartMarks({ series: [ids], device, from: Date, to: Date }) resolves to Plotly layout
// fragments { shapes: [...], annotations: [...], count } to merge into a chart's layout.
// (The API list is being built; until it answers, a chart gets no marks.)

export async function chartMarks(_selection) {
  return { shapes: [], annotations: [], count: 0 };
}
