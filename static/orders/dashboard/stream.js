// The live stream: Server-Sent Events from GET /api/order-scheduler/events.
//
// EventSource reconnects by itself and sends Last-Event-ID, so the server replays what
// was missed. This module only reports: "up" (connected, or a heartbeat arrived),
// "down" (the connection dropped or was refused: the page falls back to polling) and
// the events themselves. A refused stream (401, 403, 503) is not retried by the
// browser, so it is retried here after a while.

const RETRY_REFUSED_MS = 15000;

export class LiveStream {
  constructor(url, { onEvent, onUp, onDown }) {
    this.url = url;
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
    const source = new EventSource(this.url);
    this.source = source;
    const alive = () => {
      if (!this.up) {
        this.up = true;
        this.onUp();
      } else this.onUp({ heartbeat: true });
    };
    source.addEventListener("ready", alive);
    source.addEventListener("heartbeat", alive);
    source.addEventListener("message", (event) => {
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onEvent(data);
    });
    // Too far behind: what was missed is not replayed; re-read everything.
    source.addEventListener("reset", () => this.onEvent(null));
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
