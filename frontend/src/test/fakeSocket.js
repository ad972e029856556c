/**
 * A stand-in for the browser's WebSocket that a test drives from the server's side:
 * `accept()` opens it, `deliver(frame)` sends a server frame, `serverClose(code)` closes
 * it, and `frames` holds everything the client sent, parsed.
 */
export class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 3;

  constructor(url) {
    this.url = url;
    this.readyState = FakeSocket.CONNECTING;
    this.frames = [];
    this.closedByClient = null;
    this.autoPong = true;
    FakeSocket.instances.push(this);
  }

  send(text) {
    if (this.readyState !== FakeSocket.OPEN) throw new Error('send on a socket that is not open');
    const frame = JSON.parse(text);
    this.frames.push(frame);
    // A live server answers pings; a test that wants a dead one sets autoPong = false.
    if (frame.action === 'ping' && this.autoPong) queueMicrotask(() => this.deliver({ type: 'pong' }));
  }

  close(code) {
    this.closedByClient = code ?? 1005;
    this.readyState = FakeSocket.CLOSED;
  }

  // --- the server's side ---

  accept() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.({});
  }

  deliver(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  serverClose(code) {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code });
  }

  sentActions(action) {
    return this.frames.filter((f) => f.action === action);
  }

  static reset() {
    FakeSocket.instances = [];
  }

  static latest() {
    return FakeSocket.instances.at(-1);
  }
}

FakeSocket.instances = [];

export function message(roomId, seq, extra = {}) {
  return {
    type: 'message',
    roomId,
    messageId: `m-${roomId}-${seq}`,
    seq,
    userId: '2',
    username: 'bob',
    message: `message ${seq}`,
    timestamp: '2026-11-26T10:00:00.000Z',
    clientMessageId: null,
    ...extra,
  };
}

export function payload(frame) {
  const { type: _type, ...rest } = frame;
  return rest;
}

/** Every value a connection emits under `name`, in order. */
export function record(conn, name) {
  const seen = [];
  conn.on(name, (value) => seen.push(value));
  return seen;
}

/** Let awaited promises inside the connection run (under vi.useFakeTimers). */
export async function settle(vi) {
  await vi.advanceTimersByTimeAsync(1);
}

/** Open a connection joined to `general` with messages 1..lastSeq; returns its socket. */
export async function liveInGeneral(conn, vi, lastSeq = 3) {
  conn.joinRoom('general');
  conn.connect();
  await settle(vi);
  const socket = FakeSocket.latest();
  socket.accept();
  const messages = Array.from({ length: lastSeq }, (_, i) => payload(message('general', i + 1)));
  socket.deliver({ type: 'joined', roomId: 'general', lastSeq, messages, recovered: true });
  return socket;
}
