// The live feed (WS /v1/live) for a page: authenticated by the session cookie, reconnects
// with a growing pause, stops for good when the session has ended.

const RETRY_S = [1, 2, 5, 10, 30];
const SIGNED_OUT = 4401;
const REFUSED = new Set([4400, 4403]);

export class LiveFeed {
  // params: URLSearchParams of the selection (device=, metric=, series=, run=, tag.k=)
  // onMessage(message): every points/states message; onStatus(status): connecting, live,
  // retrying, off
  constructor(params, onMessage, onStatus = () => {}) {
    this.params = params;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.socket = null;
    this.tries = 0;
    this.closed = false;
    this.timer = null;
  }

  url() {
    const base = document.querySelector('meta[name="stats-api-base"]')?.content || location.origin;
    const target = new URL("/v1/live?" + this.params, base);
    target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
    return target.toString();
  }

  open() {
    this.closed = false;
    this.onStatus("connecting");
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "hello") {
        this.tries = 0;
        this.onStatus("live");
      } else if (message.type === "points" || message.type === "states") {
        this.onMessage(message);
      }
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.closed) return;
      this.socket = null;
      if (event.code === SIGNED_OUT) {
        location.assign("/ui/login?next=" + encodeURIComponent(location.pathname));
        return;
      }
      if (REFUSED.has(event.code)) {
        this.onStatus("off");
        return;
      }
      this.onStatus("retrying");
      const wait = RETRY_S[Math.min(this.tries, RETRY_S.length - 1)];
      this.tries += 1;
      this.timer = setTimeout(() => this.open(), wait * 1000);
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.onStatus("off");
  }
}

const STATUS_TEXT = { live: "live", connecting: "connecting…", retrying: "reconnecting…", off: "paused" };

// An onStatus for LiveFeed that keeps a `.status` badge (dot + text) up to date.
export function liveBadge(box) {
  return (status) => {
    box.dataset.status = status;
    box.className = `status ${status === "live" ? "live-on" : ""}`;
    box.lastChild.textContent = STATUS_TEXT[status] || status;
  };
}
