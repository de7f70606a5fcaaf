"""The web dashboard: plain HTML pages and small JavaScript modules served by the service
itself under `/ui/` (no build step, no CDN: plotly.js comes from the installed `plotly`
package). The pages read the JSON API with the session cookie of `/ui/login`."""
