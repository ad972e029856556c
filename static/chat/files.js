/*
 * files.js: sharing files in the template UI (issue 18). The tray of files on their way
 * (attach button, drag and drop onto the room, paste into the composer), and how a message
 * shows its files: images as thumbnails that open full size, other files as a card with
 * name, size and type. The uploading itself is core/uploads.js, shared with the React app.
 * Every name reaches the DOM as text; URLs are the site's own signed paths.
 */
import {
  FreshLinks,
  UploadTray,
  badgeOf,
  followFresh,
  formatBytes,
  isImage,
  retriesFresh,
  typeLabel,
} from "./core/uploads.js";

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === "csrftoken") return decodeURIComponent(rest.join("="));
  }
  return "";
}

/** The site's JSON API with the session and its CSRF token. */
async function request(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw { body: data ?? { error: "upload_failed", message: `HTTP ${response.status}` } };
  return data;
}

// A frame's links live minutes: a file opened, or an image shown, later gets fresh ones.
const links = new FreshLinks({ request });

/** An image whose link had expired when it was loaded: load it once more with a fresh one. */
async function reloadFresh(img, attachment) {
  if (!retriesFresh(img.src, img.dataset.freshSrc)) return;
  img.dataset.freshSrc = img.src; // until the fresh link is in: a second error waits for it
  const entry = await links.refresh(attachment.id, { force: true });
  const fresh = entry?.thumbnailUrl ?? entry?.url;
  if (fresh) {
    img.src = fresh;
    img.dataset.freshSrc = img.src; // as the browser made it absolute
  }
  if (entry?.url) img.closest("a").href = entry.url;
}

function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A message's files, under its text (`list`: the frame's `attachments`). */
export function renderAttachments(li, list) {
  const files = Array.isArray(list) ? list : [];
  const key = files.map((a) => `${a.id}:${a.url ?? ""}`).join(",");
  let box = li.querySelector(".attachments");
  if (box && box.dataset.key === key) return;
  if (!files.length) {
    box?.remove();
    return;
  }
  if (!box) {
    box = node("div", "attachments");
    li.querySelector(".text").after(box);
  }
  box.dataset.key = key;
  box.replaceChildren(
    ...files.map((a) => {
      const link = node("a", isImage(a.contentType) ? "attachment attachment-image" : "attachment attachment-file");
      link.href = a.url ?? "#";
      link.rel = "noopener noreferrer";
      link.dataset.attachmentId = a.id;
      link.addEventListener("click", (event) => followFresh({ event, anchor: link, attachment: a, links }));
      if (isImage(a.contentType)) {
        link.target = "_blank"; // the full-size image, in a tab of its own
        link.title = `${a.name} (${formatBytes(a.size)}): open full size`;
        const img = node("img");
        img.src = a.thumbnailUrl ?? a.url ?? "";
        img.alt = a.name;
        img.loading = "lazy";
        img.addEventListener("error", () => reloadFresh(img, a));
        if (a.width && a.height) {
          const scale = Math.min(1, 320 / Math.max(a.width, a.height));
          img.width = Math.max(1, Math.round(a.width * scale));
          img.height = Math.max(1, Math.round(a.height * scale));
        }
        link.append(img);
      } else {
        link.setAttribute("download", a.name);
        const icon = node("span", "file-badge", badgeOf(a.name));
        icon.setAttribute("aria-hidden", "true");
        const name = node("span", "attachment-name", a.name);
        name.dir = "auto";
        const detail = node("span", "attachment-detail", `${typeLabel(a.contentType)} · ${formatBytes(a.size)}`);
        const text = node("span", "attachment-text");
        text.append(name, detail);
        link.append(icon, text);
      }
      return link;
    }),
  );
}

/**
 * The composer's files. `roomId()` is the open room; `changed()` after every change.
 * Returns {tray, clear, busy, takeDone, hasFiles}.
 */
export function setupFiles({ room, form, input, roomId, changed = () => {} }) {
  const box = document.getElementById("upload-tray");
  const picker = document.getElementById("file-input");
  const attach = document.getElementById("attach-button");

  const tray = new UploadTray({
    request,
    onChange: (items) => {
      draw(items);
      changed(items);
    },
  });

  function chip(item) {
    const li = node("li", `upload-chip upload-${item.status}`);
    li.dataset.status = item.status;
    if (item.preview && item.status !== "failed") {
      const img = node("img", "upload-preview");
      img.src = item.preview;
      img.alt = "";
      li.append(img);
    } else {
      const icon = node("span", "file-badge", badgeOf(item.name));
      icon.setAttribute("aria-hidden", "true");
      li.append(icon);
    }
    const body = node("div", "upload-body");
    const name = node("span", "upload-name", item.name);
    name.dir = "auto";
    const detail = node("span", "upload-detail");
    if (item.status === "failed") detail.textContent = `Not uploaded: ${item.error || item.code}`;
    else if (item.status === "done") detail.textContent = `${typeLabel(item.contentType)} · ${formatBytes(item.size)}`;
    else detail.textContent = `Uploading… ${Math.round(item.progress * 100)}%`;
    body.append(name, detail);
    if (item.status === "uploading") {
      const bar = node("progress", "upload-progress");
      bar.max = 1;
      bar.value = item.progress;
      bar.setAttribute("aria-label", `Uploading ${item.name}`);
      body.append(bar);
    }
    li.append(body);
    if (item.status === "failed") {
      const retry = node("button", "link-button upload-retry", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => tray.retry(item.key));
      li.append(retry);
    }
    const drop = node("button", "icon-button upload-drop", "×");
    drop.type = "button";
    drop.setAttribute("aria-label", item.status === "uploading" ? `Cancel ${item.name}` : `Remove ${item.name}`);
    drop.addEventListener("click", () => {
      tray.drop(item.key);
      input.focus();
    });
    li.append(drop);
    return li;
  }

  function draw(items) {
    box.hidden = items.length === 0;
    box.replaceChildren(...items.map(chip));
  }

  function add(files) {
    const id = roomId();
    if (!id || !files?.length) return;
    tray.add(files, id);
  }

  attach.addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    add(picker.files);
    picker.value = "";
    input.focus();
  });
  input.addEventListener("paste", (event) => {
    const files = event.clipboardData?.files;
    if (files && files.length) {
      event.preventDefault(); // a pasted screenshot is a file, not text
      add(files);
    }
  });
  let depth = 0;
  const hasFiles = (event) => Array.from(event.dataTransfer?.types ?? []).includes("Files");
  room.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    room.classList.add("drop-target");
  });
  room.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) room.classList.remove("drop-target");
  });
  room.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  room.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    room.classList.remove("drop-target");
    add(event.dataTransfer.files);
    input.focus();
  });
  form.classList.add("with-files");
  return tray;
}
