/**
 * Sharing files in the shared client (static/chat/core/uploads.js, issue 18): what a file
 * is announced as, the tray's life (progress, failure, retry, drop), and a message that
 * carries finished uploads through the outbox and back in its frames.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  FreshLinks,
  UploadTray,
  badgeOf,
  contentTypeOf,
  formatBytes,
  linkExpired,
  retriesFresh,
  linkExpiry,
  nameOf,
  typeLabel,
  uploadFile,
} from '../../static/chat/core/uploads.js';
import { messageOf } from '../../static/chat/core/rooms.js';
import { FakeSocket, liveInGeneral, message, settle } from './test/fakeSocket.js';
import { ChatConnection, localOutboxStore } from './websocket.js';

/** An XMLHttpRequest a test answers: `respond(status, body)`, `progress(loaded, total)`. */
class FakeXHR {
  constructor() {
    this.upload = {};
    this.aborted = false;
    FakeXHR.last = this;
  }
  open(method, url) {
    this.method = method;
    this.url = url;
  }
  send(form) {
    this.form = form;
    FakeXHR.sent.push(this);
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
  progress(loaded, total) {
    this.upload.onprogress?.({ lengthComputable: true, loaded, total });
  }
  respond(status, body = '') {
    this.status = status;
    this.responseText = body;
    this.onload?.();
  }
}
FakeXHR.sent = [];

function site(answers = {}) {
  const calls = [];
  const request = vi.fn(async (path, options = {}) => {
    calls.push({ path, ...options });
    if (path === '/api/uploads') {
      if (answers.slot) throw answers.slot;
      return { uploadId: 'a'.repeat(32), url: 'https://bucket.test/', fields: { key: 'incoming/x', policy: 'p' } };
    }
    if (answers.complete) throw answers.complete;
    return { attachment: { id: 'a'.repeat(32), name: 'cat.png', size: 3, contentType: 'image/png', url: '/api/uploads/a/file' } };
  });
  return { request, calls };
}

const file = (name, type, size = 3) => new File([new Uint8Array(size)], name, { type });

beforeEach(() => {
  FakeXHR.sent = [];
});

describe('what a file is sent as', () => {
  it('takes the type from the extension, which the site checks against the bytes', () => {
    expect(contentTypeOf('Photo.JPG', '')).toBe('image/jpeg');
    expect(contentTypeOf('notes.md', 'text/markdown')).toBe('text/plain');
    expect(contentTypeOf('page.html', 'text/html')).toBe('text/html');
    expect(contentTypeOf('noext', '')).toBe('application/octet-stream');
  });

  it('names a pasted screenshot after the moment it was pasted', () => {
    const now = new Date('2026-12-03T06:04:05Z');
    expect(nameOf({ name: 'image.png', type: 'image/png' }, now)).toBe('pasted-20261203-060405.png');
    expect(nameOf({ name: '', type: 'image/jpeg' }, now)).toBe('pasted-20261203-060405.jpg');
    expect(nameOf({ name: 'plan.pdf', type: 'application/pdf' }, now)).toBe('plan.pdf');
  });

  it('shows sizes, types and badges as people read them', () => {
    expect([formatBytes(812), formatBytes(48213), formatBytes(3_100_000)]).toEqual(['812 B', '48.2 KB', '3.1 MB']);
    expect([typeLabel('application/pdf'), typeLabel('image/png')]).toEqual(['PDF', 'PNG image']);
    expect([badgeOf('a.pdf'), badgeOf('README'), badgeOf('x.verylong')]).toEqual(['PDF', 'FILE', 'FILE']);
  });
});

describe('one upload', () => {
  it('asks for a slot, posts its fields and the file with progress, then has it verified', async () => {
    const { request, calls } = site();
    const seen = [];
    const job = uploadFile({ file: file('cat.png', 'image/png'), roomId: 'general', request, XHR: FakeXHR, onProgress: (p) => seen.push(p) });
    await vi.waitFor(() => expect(FakeXHR.sent).toHaveLength(1));
    expect(calls[0]).toMatchObject({ path: '/api/uploads', method: 'POST', body: { roomId: 'general', name: 'cat.png', size: 3, contentType: 'image/png' } });
    const xhr = FakeXHR.last;
    expect([xhr.method, xhr.url]).toEqual(['POST', 'https://bucket.test/']);
    expect([...xhr.form.keys()]).toEqual(['key', 'policy', 'file']); // the file goes last, as S3 wants
    xhr.progress(1, 2);
    xhr.respond(204);
    const attachment = await job.promise;
    expect(attachment.id).toBe('a'.repeat(32));
    expect(seen).toEqual([0.5, 1]);
    expect(calls[1]).toMatchObject({ path: `/api/uploads/${'a'.repeat(32)}/complete`, method: 'POST' });
  });

  it('says why the site refused it', async () => {
    const { request } = site({ complete: { body: { error: 'upload_type_mismatch', message: 'not image/png' } } });
    const job = uploadFile({ file: file('cat.png', 'image/png'), roomId: 'general', request, XHR: FakeXHR });
    await vi.waitFor(() => expect(FakeXHR.sent).toHaveLength(1));
    FakeXHR.last.respond(204);
    await expect(job.promise).rejects.toEqual({ code: 'upload_type_mismatch', message: 'not image/png' });
  });
});

describe('the tray', () => {
  it('keeps a failed file to retry or drop, and hands finished ones to a message', async () => {
    const { request } = site();
    const changes = [];
    const tray = new UploadTray({ request, XHR: FakeXHR, makePreview: () => 'blob:x', revokePreview: () => {}, onChange: (i) => changes.push(i) });
    tray.add([file('cat.png', 'image/png'), file('a.pdf', 'application/pdf')], 'general');
    expect(tray.items.map((i) => [i.status, i.preview])).toEqual([['uploading', 'blob:x'], ['uploading', null]]);
    await vi.waitFor(() => expect(FakeXHR.sent).toHaveLength(2));
    FakeXHR.sent[0].respond(204);
    FakeXHR.sent[1].respond(403, '<Error>policy</Error>');
    await vi.waitFor(() => expect(tray.items.map((i) => i.status)).toEqual(['done', 'failed']));
    expect(tray.busy).toBe(false);
    expect(tray.items[1].code).toBe('upload_failed');

    tray.retry(tray.items[1].key);
    expect(tray.items[1].status).toBe('uploading');
    await vi.waitFor(() => expect(FakeXHR.sent).toHaveLength(3));
    FakeXHR.sent[2].respond(500);
    await vi.waitFor(() => expect(tray.items[1].status).toBe('failed'));

    expect(tray.takeDone().map((a) => a.id)).toEqual(['a'.repeat(32)]);
    expect(tray.items.map((i) => i.name)).toEqual(['a.pdf']); // the failed one stays
    tray.drop(tray.items[0].key);
    expect(tray.items).toEqual([]);
    expect(changes.length).toBeGreaterThan(4);
  });

  it('cancels an upload on its way', async () => {
    const { request } = site();
    const tray = new UploadTray({ request, XHR: FakeXHR, makePreview: () => null });
    tray.add([file('a.txt', 'text/plain')], 'general');
    await vi.waitFor(() => expect(FakeXHR.sent).toHaveLength(1));
    tray.drop(tray.items[0].key);
    expect(FakeXHR.last.aborted).toBe(true);
    expect(tray.items).toEqual([]);
  });

  it('takes at most ten files', () => {
    const tray = new UploadTray({ request: site().request, XHR: FakeXHR, makePreview: () => null });
    const refused = tray.add(Array.from({ length: 12 }, (_, n) => file(`f${n}.txt`, 'text/plain')), 'general');
    expect(tray.items).toHaveLength(10);
    expect(refused).toHaveLength(2);
  });
});

describe('a message with files', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeSocket.reset();
  });
  afterEach(() => vi.useRealTimers());

  it('sends the uploads as ids, keeps them in the outbox, and shows them from frames', async () => {
    const storage = new Map();
    const store = localOutboxStore('alice', {
      get length() {
        return storage.size;
      },
      key: (i) => [...storage.keys()][i] ?? null,
      getItem: (k) => storage.get(k) ?? null,
      setItem: (k, v) => storage.set(k, v),
      removeItem: (k) => storage.delete(k),
    });
    const conn = new ChatConnection({ url: 'ws://chat.test/ws/', WebSocket: FakeSocket, random: () => 0.5, outboxStore: store });
    const socket = await liveInGeneral(conn, vi, 1);
    const file = { id: 'b'.repeat(32), name: 'a.pdf', size: 9, contentType: 'application/pdf' };
    conn.send('general', '', { attachments: [file] });
    await settle(vi);
    const sent = socket.frames.find((f) => f.action === 'sendMessage');
    expect(sent).toMatchObject({ message: '', attachments: ['b'.repeat(32)] });
    expect(JSON.parse([...storage.values()][0]).attachments).toEqual([file]);
    expect(conn.outboxItems()[0].attachments).toEqual([file]);

    const shown = messageOf(message('general', 2, { attachments: [{ ...file, url: '/u' }] }));
    expect(shown.attachments[0].url).toBe('/u');
    expect(messageOf(message('general', 3, { removed: true, attachments: [file] })).attachments).toEqual([]);
  });
});

describe('fresh links for shared files', () => {
  const id = 'c'.repeat(32);
  const signed = (end) => `/api/uploads/${id}/file?e=${end}&s=sig`;

  it('reads when a signed link ends, and calls it expired a little before', () => {
    expect(linkExpiry(signed(1000))).toBe(1000);
    expect(linkExpiry(`https://chat.test${signed(1000)}`)).toBe(1000);
    expect(linkExpiry('/static/x.png')).toBeNull();
    expect(linkExpired(signed(1000), 900_000)).toBe(false);
    expect(linkExpired(signed(1000), 996_000)).toBe(true); // within the margin of a click
    expect(linkExpired(signed(1000), 1_001_000)).toBe(true);
    expect(linkExpired('/static/x.png', 9e15)).toBe(false);
  });

  it('asks for a fresh link after any failure but that of a fresh link still valid', () => {
    const now = 500_000;
    const own = signed(400); // expired
    const fresh = signed(1000);
    expect(retriesFresh(own, null, now)).toBe(true); // the first failure
    expect(retriesFresh(fresh, fresh, now)).toBe(false); // the fresh link itself failed: gone, no loop
    expect(retriesFresh(`${own}&late=1`, fresh, now)).toBe(true); // another source, later
    expect(retriesFresh(fresh, fresh, 1_001_000)).toBe(true); // the fresh link has since expired
    expect(retriesFresh('/static/x.png', '/static/x.png', now)).toBe(false); // no expiry to go by
  });

  it('keeps a link that works and asks the site once for one that has expired', async () => {
    let now = 1_000_000;
    const asked = [];
    const request = vi.fn(async (path) => {
      asked.push(path);
      return { attachment: { id, url: signed(now / 1000 + 300), thumbnailUrl: null } };
    });
    const links = new FreshLinks({ request, now: () => now });
    const shared = { id, url: signed(1100), thumbnailUrl: null };
    expect(await links.link(shared)).toBe(signed(1100));
    expect(request).not.toHaveBeenCalled();

    now = 1_200_000; // the frame's link has expired
    const [a, b] = await Promise.all([links.link(shared), links.link(shared)]);
    expect(a).toBe(signed(1500));
    expect(b).toBe(a);
    expect(asked).toEqual([`/api/uploads/${id}`]); // one request for both
    expect(await links.link(shared)).toBe(a); // the fresh one serves while it works
    expect(asked).toHaveLength(1);
    now = 1_600_000;
    expect(await links.link(shared)).toBe(signed(1900));
    expect(asked).toHaveLength(2);
  });

  it('says a file that is gone is gone', async () => {
    const request = vi.fn(async () => {
      throw { body: { error: 'unknown_upload', message: 'no such file' } };
    });
    const links = new FreshLinks({ request, now: () => 2_000_000 });
    expect(await links.link({ id, url: signed(1000) })).toBeNull();
    expect(await links.refresh(id, { force: true })).toBeNull();
  });
});
