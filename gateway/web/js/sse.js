// Server-Sent Events over fetch. EventSource cannot send an Authorization header, so the
// stream is read from fetch's ReadableStream and parsed here, as the HTML standard's event
// stream rules say: lines end in CRLF, LF or CR; `data:` lines join with "\n"; `id:` sets
// the last event id, `retry:` the reconnection delay; a line starting with ":" is a comment
// (the gateway's heartbeat); a blank line dispatches the event.
//
// After a drop (the gateway restarting, a proxy closing the connection, no byte for
// READ_TIMEOUT_MS) the stream connects again with Last-Event-ID, after the server's
// `retry:` delay, doubling on each failure in a row up to MAX_DELAY_MS. The gateway then
// sends its current snapshot at once. An `end` event ends the stream for good.

const READ_TIMEOUT_MS = 45_000; // the gateway's heartbeat comes every 15 s
const MAX_DELAY_MS = 30_000;

export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.lastEventId = "";
    this.retry = null;
  }

  push(text) {
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i += 1) {
      const ch = this.buffer[i];
      if (ch !== "\n" && ch !== "\r") continue;
      if (ch === "\r" && i + 1 === this.buffer.length) break; // maybe the first half of CRLF
      this.line(this.buffer.slice(start, i));
      if (ch === "\r" && this.buffer[i + 1] === "\n") i += 1;
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment: the heartbeat
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") this.data.push(value);
    else if (name === "event") this.type = value;
    else if (name === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  dispatch() {
    if (this.data.length === 0) {
      this.type = "";
      return;
    }
    const event = {type: this.type || "message", data: this.data.join("\n"), id: this.lastEventId};
    this.data = [];
    this.type = "";
    this.onEvent(event);
  }
}

function wait(ms, signal) {
  return new Promise((resolve) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      window.clearTimeout(timer);
      resolve();
    }, {once: true});
  });
}

// new EventStream({open, onEvent, onState}).start(): open(lastEventId, signal) returns the
// fetch Response; onEvent({type, data, id}); onState(state, detail) with state one of
// "connecting", "live", "reconnecting", "ended", "error".
export class EventStream {
  constructor({open, onEvent, onState}) {
    this.open = open;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastEventId = "";
    this.retryMs = 2000;
    this.controller = new AbortController();
    this.connections = 0;
  }

  start() {
    this.run().catch((error) => {
      if (!this.controller.signal.aborted) this.onState("error", error.message);
    });
    return this;
  }

  stop() {
    this.controller.abort();
  }

  async run() {
    const stopped = this.controller.signal;
    let failures = 0;
    while (!stopped.aborted) {
      this.onState(this.connections === 0 ? "connecting" : "reconnecting");
      let outcome;
      try {
        outcome = await this.connect();
      } catch (error) {
        if (stopped.aborted) return;
        if (error?.fatal) {
          this.onState("error", error.message);
          return;
        }
        outcome = "dropped";
      }
      if (stopped.aborted) return;
      if (outcome === "ended") {
        this.onState("ended");
        return;
      }
      if (outcome === "delivered") failures = 0;
      failures += 1;
      this.onState("reconnecting");
      await wait(Math.min(this.retryMs * 2 ** (failures - 1), MAX_DELAY_MS), stopped);
    }
  }

  // One connection: "ended" after an `end` event, "delivered" when it carried events
  // before it dropped, "dropped" when it carried none.
  async connect() {
    const connection = new AbortController();
    const stopAll = () => connection.abort();
    this.controller.signal.addEventListener("abort", stopAll, {once: true});
    let idle = null;
    const resetIdle = () => {
      window.clearTimeout(idle);
      idle = window.setTimeout(() => connection.abort(), READ_TIMEOUT_MS);
    };
    try {
      resetIdle();
      const response = await this.open(this.lastEventId, connection.signal);
      this.connections += 1;
      const type = response.headers.get("Content-Type") ?? "";
      if (response.status === 401 || response.status === 404) {
        const error = new Error(response.status === 404 ? "the campaign is gone" : "the API key was refused");
        error.fatal = true;
        throw error;
      }
      if (!response.ok || !type.startsWith("text/event-stream")) return "dropped";
      this.onState("live");
      let delivered = false;
      let ended = false;
      const parser = new SseParser((event) => {
        delivered = true;
        if (event.id) this.lastEventId = event.id;
        if (event.type === "end") ended = true;
        this.onEvent(event);
      });
      parser.lastEventId = this.lastEventId;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          resetIdle();
          parser.push(value);
          if (parser.retry !== null) this.retryMs = parser.retry;
          if (ended) {
            reader.cancel().catch(() => {});
            return "ended";
          }
        }
      } catch (error) {
        if (this.controller.signal.aborted) throw error;
        // cut mid-stream (a network error, or no byte for READ_TIMEOUT_MS): reconnect
      }
      return delivered ? "delivered" : "dropped";
    } finally {
      window.clearTimeout(idle);
      this.controller.signal.removeEventListener("abort", stopAll);
    }
  }
}
