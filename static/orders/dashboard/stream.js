// The live stream: Server-Sent Events from GET /api/order-scheduler/events.
//
// EventSource reconnects by itself and sends Last-Event-ID, so the server replays what
// was missed. This module only reports: "up" (connected, or a heartbeat arrived),
// "down" (the connection dropped or was refused: the page falls back to polling) and
// the events themselves. A refused stream (401, 403, 503) is not retried by the
// browser, so it is retried here after a while.

const RETRY_REFUSED_MS = 15000;

export class LiveStream {
  // `since`: the last event the page already shows (the server rendered it after that
  // one); every (re)start resumes after the last event seen, so nothing falls between.
  constructor(url, { since, onEvent, onUp, onDown }) {
    this.url = url;
    this.since = since;
    this.onEvent = onEvent;
    this.onUp = onUp;
    this.onDown = onDown;
    this.source = null;
    this.retry = null;
    this.up = false;
  }

  start() {
    if (this.source) return;
    clearTimeout(this.retry);
    if (!window.EventSource) {
      this.onDown("unsupported");
      return;
    }
    const separator = this.url.includes("?") ? "&" : "?";
    const source = new EventSource(this.since === null || this.since === undefined ? this.url : `${this.url}${separator}since=${this.since}`);
    this.source = source;
    const seen = (event) => {
      if (event.lastEventId) this.since = Number(event.lastEventId);
    };
    const alive = (event) => {
      seen(event);
      if (!this.up) {
        this.up = true;
        this.onUp();
      } else this.onUp({ heartbeat: true });
    };
    source.addEventListener("ready", alive);
    source.addEventListener("heartbeat", alive);
    source.addEventListener("message", (event) => {
      seen(event);
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onEvent(data);
    });
    // Too far behind: what was missed is not replayed; re-read everything.
    source.addEventListener("reset", (event) => {
      seen(event);
      this.onEvent(null);
    });
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      if (this.up) {
        this.up = false;
        this.onDown("dropped");
      }
      if (source.readyState === EventSource.CLOSED) {
        // Refused (signed out, no stream free): the browser gives up; try again later.
        this.source = null;
        this.onDown("refused");
        this.retry = setTimeout(() => this.start(), RETRY_REFUSED_MS);
      }
    });
  }

  stop() {
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
    this.up = false;
  }
}
