/**
 * uploads.js: sharing files (issue 18), the same for both UIs. No DOM: a tray of files on
 * their way, and the rules for showing a shared file.
 *
 * A file goes in three steps (docs/protocol.md, "Files"): a slot from the site
 * (POST /api/uploads), the bytes straight to where the slot points (S3's presigned POST in
 * production: a multipart POST of the slot's fields and the file, with progress), then
 * POST /api/uploads/<id>/complete, which verifies it. The message names the finished
 * uploads' ids. A failed upload stays in the tray to be retried or dropped; it never
 * touches the outbox, so it blocks no other message.
 *
 * `request(path, {method, body})` is the host UI's JSON call to the site (session with
 * CSRF, or a bearer token); it resolves to the parsed answer or throws an error whose
 * `body` (or itself) has the site's `error` code and `message`.
 */

export const MAX_ATTACHMENTS = 10;

// What the site recognises, by extension (uploads/rules.py): the type it is sent as.
const TYPES = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  pdf: 'application/pdf',
  txt: 'text/plain',
  log: 'text/plain',
  md: 'text/plain',
  csv: 'text/plain',
  zip: 'application/zip',
  gz: 'application/gzip',
  tgz: 'application/gzip',
  '7z': 'application/x-7z-compressed',
};
const IMAGE_EXTENSION = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/gif': 'gif', 'image/webp': 'webp' };

/** The type a file is announced as: from its name's extension, else what the browser says. */
export function contentTypeOf(name, browserType = '') {
  const dot = String(name).lastIndexOf('.');
  const ext = dot >= 0 ? String(name).slice(dot + 1).toLowerCase() : '';
  return TYPES[ext] ?? (browserType || 'application/octet-stream');
}

/** A name for a pasted image, which often comes as "image.png" or with none at all. */
export function nameOf(file, now = new Date()) {
  const name = String(file?.name ?? '').trim();
  if (name && name !== 'image.png' && name !== 'blob') return name;
  const ext = IMAGE_EXTENSION[file?.type] ?? 'png';
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
  return `pasted-${stamp}.${ext}`;
}

export function isImage(contentType) {
  return ['image/png', 'image/jpeg', 'image/gif', 'image/webp'].includes(contentType);
}

/** "812 B", "48.2 KB", "3.1 MB". */
export function formatBytes(size) {
  const n = Number(size) || 0;
  if (n < 1000) return `${n} B`;
  if (n < 1000 * 1000) return `${(n / 1000).toFixed(1)} KB`;
  if (n < 1000 * 1000 * 1000) return `${(n / 1000 / 1000).toFixed(1)} MB`;
  return `${(n / 1000 / 1000 / 1000).toFixed(1)} GB`;
}

/** A short label of a type: "PNG image", "PDF", "ZIP archive", "Text". */
export function typeLabel(contentType) {
  const labels = {
    'application/pdf': 'PDF',
    'text/plain': 'Text',
    'application/zip': 'ZIP archive',
    'application/gzip': 'GZIP archive',
    'application/x-7z-compressed': '7z archive',
  };
  if (labels[contentType]) return labels[contentType];
  if (isImage(contentType)) return `${contentType.slice(6).toUpperCase()} image`;
  return contentType || 'File';
}

/** The few letters on a file's badge: its extension ("PDF", "TXT"), else "FILE". */
export function badgeOf(name) {
  const dot = String(name).lastIndexOf('.');
  const ext = dot > 0 ? String(name).slice(dot + 1) : '';
  return /^[A-Za-z0-9]{1,4}$/.test(ext) ? ext.toUpperCase() : 'FILE';
}

/** A shared file's URL made absolute against the site's origin (the React app may be elsewhere). */
export function absoluteUrl(url, base = '') {
  if (!url) return url;
  return /^https?:/i.test(url) ? url : `${base}${url}`;
}

/** The end of a shared file's signed link (its `e`, in Unix seconds), or null without one. */
export function linkExpiry(url) {
  const match = /[?&]e=(\d+)(?:&|#|$)/.exec(String(url ?? ''));
  return match ? Number(match[1]) : null;
}

/** Whether a signed link has expired, or will within `marginSeconds` (a click takes a moment). */
export function linkExpired(url, nowMs = Date.now(), marginSeconds = 5) {
  const end = linkExpiry(url);
  return end !== null && end * 1000 <= nowMs + marginSeconds * 1000;
}

/**
 * Fresh links for shared files. A frame's links live minutes (CHAT_UPLOAD_URL_SECONDS), so
 * a leaked one soon stops working; a file clicked, or an image shown, later than that asks
 * the site for new ones: GET /api/uploads/<id> (docs/protocol.md "Files"). One request per
 * file at a time; an answer serves until its own links expire. Resolves to the attachment
 * entry with fresh `url` and `thumbnailUrl`, or null once the file is gone (its message
 * deleted or expired) or the reader may no longer read its room.
 */
export class FreshLinks {
  constructor({ request, now = () => Date.now() }) {
    this.request = request;
    this.now = now;
    this.entries = new Map(); // id -> the site's latest entry
    this.pending = new Map(); // id -> its request on the way
  }

  refresh(id, { force = false } = {}) {
    const known = this.entries.get(id);
    if (known && !force && !linkExpired(known.url, this.now())) return Promise.resolve(known);
    if (this.pending.has(id)) return this.pending.get(id);
    const job = (async () => {
      try {
        const answer = await this.request(`/api/uploads/${encodeURIComponent(id)}`);
        const entry = answer?.attachment ?? null;
        if (entry) this.entries.set(id, entry);
        else this.entries.delete(id);
        return entry;
      } catch {
        this.entries.delete(id);
        return null;
      } finally {
        this.pending.delete(id);
      }
    })();
    this.pending.set(id, job);
    return job;
  }

  /** The link to use now for an attachment's `kind` ('url' or 'thumbnailUrl'): its own while it works, else a fresh one (null: the file is gone). */
  async link(attachment, kind = 'url') {
    const own = attachment?.[kind];
    if (own && !linkExpired(own, this.now())) return own;
    const entry = await this.refresh(attachment.id);
    return entry?.[kind] ?? null;
  }
}

/**
 * Whether an image that failed to load from `failedSrc` should ask for a fresh link. Not when
 * the fresh link it was given failed while still valid (a file that is gone or broken: no
 * loop); yes for any other source and for an expired one, however often, as an image may fail
 * early (its thumbnail not made yet) and again much later (shown only after its link expired).
 */
export function retriesFresh(failedSrc, lastFreshSrc, nowMs = Date.now()) {
  return !lastFreshSrc || failedSrc !== lastFreshSrc || linkExpired(failedSrc, nowMs, 0);
}

/**
 * A click on a shared file's link (`anchor`, the UI's element: core sets its href, class and
 * title and clicks it, nothing else). A link that works is left to the browser; an expired
 * one waits for a fresh link, then is followed as the click would have been; a file that is
 * gone is marked so. `base` makes the site's links absolute (the React app may be elsewhere).
 */
export async function followFresh({ event, anchor, attachment, links, base = '' }) {
  if (!links || !linkExpired(anchor.href)) return;
  event.preventDefault();
  const fresh = await links.link(attachment, 'url');
  if (!fresh) {
    anchor.classList.add('attachment-gone');
    anchor.title = `${attachment.name}: this file is no longer available`;
    return;
  }
  anchor.href = absoluteUrl(fresh, base);
  anchor.click(); // now valid: followed as the user's click would be
}

function siteError(error) {
  const body = error?.body ?? error ?? {};
  return { code: body.error ?? error?.code ?? 'upload_failed', message: body.message ?? error?.message ?? 'upload failed' };
}

/**
 * Send one file: slot, bytes (progress 0..1 through onProgress), verification. Returns
 * {promise, abort}; the promise resolves to the attachment (the frame's shape) or rejects
 * with {code, message} ({code: 'cancelled'} after abort()).
 */
export function uploadFile({ file, roomId, request, base = '', onProgress = () => {}, XHR = globalThis.XMLHttpRequest }) {
  let xhr = null;
  let cancelled = false;
  const name = nameOf(file);
  const promise = (async () => {
    let slot;
    try {
      slot = await request('/api/uploads', {
        method: 'POST',
        body: { roomId, name, size: file.size, contentType: contentTypeOf(name, file.type) },
      });
    } catch (error) {
      throw siteError(error);
    }
    if (cancelled) throw { code: 'cancelled', message: 'cancelled' };
    await new Promise((resolve, reject) => {
      xhr = new XHR();
      xhr.open('POST', absoluteUrl(slot.url, base));
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(Math.min(1, event.loaded / event.total));
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve();
          return;
        }
        let answer = {};
        try {
          answer = JSON.parse(xhr.responseText);
        } catch {
          // S3 answers XML: its message is no use to a person
        }
        reject({ code: answer.error ?? 'upload_failed', message: answer.message ?? `the upload was refused (${xhr.status})` });
      };
      xhr.onerror = () => reject({ code: 'upload_failed', message: 'the upload did not get through' });
      xhr.onabort = () => reject({ code: 'cancelled', message: 'cancelled' });
      const form = new FormData();
      for (const [key, value] of Object.entries(slot.fields ?? {})) form.append(key, value);
      form.append('file', file, name);
      xhr.send(form);
    });
    try {
      const done = await request(`/api/uploads/${slot.uploadId}/complete`, { method: 'POST' });
      return done.attachment;
    } catch (error) {
      throw siteError(error);
    }
  })();
  return {
    promise,
    abort() {
      cancelled = true;
      xhr?.abort();
    },
  };
}

let nextKey = 1;

/**
 * The composer's files: each {key, name, size, contentType, status: uploading | done |
 * failed, progress, attachment?, code?, error?, preview?}. `onChange(items)` after every
 * change. `preview` is a blob: URL of an image, made by `makePreview` (URL.createObjectURL).
 */
export class UploadTray {
  constructor({ request, base = '', onChange = () => {}, XHR, makePreview, revokePreview } = {}) {
    this.request = request;
    this.base = base;
    this.onChange = onChange;
    this.XHR = XHR;
    this.makePreview = makePreview ?? ((file) => globalThis.URL?.createObjectURL?.(file) ?? null);
    this.revokePreview = revokePreview ?? ((url) => globalThis.URL?.revokeObjectURL?.(url));
    this.items = [];
    this.running = new Map(); // key -> {file, roomId, abort}
  }

  emit() {
    this.onChange(this.items.map((item) => ({ ...item })));
  }

  /** Start uploading files for a room; past MAX_ATTACHMENTS the rest are refused. */
  add(files, roomId) {
    const refused = [];
    for (const file of Array.from(files ?? [])) {
      if (this.items.length >= MAX_ATTACHMENTS) {
        refused.push(file);
        continue;
      }
      const name = nameOf(file);
      const contentType = contentTypeOf(name, file.type);
      const item = {
        key: `u${nextKey++}`,
        name,
        size: file.size,
        contentType,
        status: 'uploading',
        progress: 0,
        preview: isImage(contentType) ? this.makePreview(file) : null,
      };
      this.items.push(item);
      this.start(item, file, roomId);
    }
    this.emit();
    return refused;
  }

  start(item, file, roomId) {
    const job = uploadFile({
      file,
      roomId,
      request: this.request,
      base: this.base,
      XHR: this.XHR,
      onProgress: (progress) => {
        item.progress = progress;
        this.emit();
      },
    });
    this.running.set(item.key, { file, roomId, abort: job.abort });
    job.promise.then(
      (attachment) => {
        if (!this.items.includes(item)) return;
        item.status = 'done';
        item.attachment = attachment;
        item.progress = 1;
        this.emit();
      },
      (error) => {
        if (!this.items.includes(item)) return;
        item.status = 'failed';
        item.code = error?.code ?? 'upload_failed';
        item.error = error?.message ?? 'upload failed';
        this.emit();
      },
    );
  }

  /** Cancel an upload on its way, or drop a failed or finished one. */
  drop(key) {
    const item = this.items.find((i) => i.key === key);
    if (!item) return;
    this.running.get(key)?.abort();
    this.running.delete(key);
    if (item.preview) this.revokePreview(item.preview);
    this.items = this.items.filter((i) => i !== item);
    this.emit();
  }

  retry(key) {
    const item = this.items.find((i) => i.key === key);
    const job = this.running.get(key);
    if (!item || !job || item.status !== 'failed') return;
    item.status = 'uploading';
    item.progress = 0;
    item.code = undefined;
    item.error = undefined;
    this.start(item, job.file, job.roomId);
    this.emit();
  }

  get busy() {
    return this.items.some((i) => i.status === 'uploading');
  }

  /** The finished files' attachments, in the order added. */
  attachments() {
    return this.items.filter((i) => i.status === 'done').map((i) => i.attachment);
  }

  /** The message took the finished files: they leave the tray (failed ones stay). */
  takeDone() {
    const done = this.items.filter((i) => i.status === 'done');
    for (const item of done) {
      this.running.delete(item.key);
      if (item.preview) this.revokePreview(item.preview);
    }
    this.items = this.items.filter((i) => i.status !== 'done');
    this.emit();
    return done.map((i) => i.attachment);
  }

  clear() {
    for (const item of [...this.items]) this.drop(item.key);
  }
}
