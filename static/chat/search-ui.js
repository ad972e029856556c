/*
 * The template UI's search box (issue 19): results from /api/search through the shared
 * core (./core/search.js), rendered as text and <mark> only; a result opens its room and
 * shows the message in context (history loaded until its seq), marked for a moment.
 */
import { loadUntilSeq, sameOriginRequest, searchMessages } from "./core/search.js";

const TYPE_DELAY_MS = 300;

export function setupSearch({ connection, openRoom, revealMessage }) {
  const form = document.getElementById("search-form");
  if (!form) return;
  const input = document.getElementById("search-input");
  const panel = document.getElementById("search-panel");
  const status = document.getElementById("search-status");
  const list = document.getElementById("search-results");
  const more = document.getElementById("search-more");
  const request = sameOriginRequest();
  let generation = 0; // answers to an older query are dropped
  let cursor = null;
  let timer = null;

  function resultItem(result) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "search-result";
    button.dataset.roomId = result.roomId;
    button.dataset.seq = String(result.seq);
    const meta = document.createElement("span");
    meta.className = "search-meta";
    const when = new Date(result.timestamp);
    meta.textContent = `#${result.roomName} · ${result.username} · ${when.toLocaleDateString()} ${when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
    const text = document.createElement("span");
    text.className = "search-snippet";
    text.dir = "auto";
    for (const part of result.snippet) {
      if (part.match) {
        const mark = document.createElement("mark");
        mark.textContent = part.text;
        text.append(mark);
      } else {
        text.append(document.createTextNode(part.text));
      }
    }
    button.append(meta, text);
    button.addEventListener("click", () => open(result));
    li.append(button);
    return li;
  }

  async function open(result) {
    openRoom(result.roomId, result.roomName);
    const found = await loadUntilSeq(connection, result.roomId, result.seq);
    if (!revealMessage(result.roomId, result.seq) && !found) {
      status.textContent = "That message is no longer in the room.";
    }
  }

  async function run(q, { append = false } = {}) {
    const mine = ++generation;
    if (!q.trim()) {
      panel.hidden = true;
      list.replaceChildren();
      return;
    }
    panel.hidden = false;
    status.textContent = "Searching…";
    more.hidden = true;
    try {
      const page = await searchMessages(request, q, { cursor: append ? cursor : null });
      if (mine !== generation) return;
      cursor = page.nextCursor;
      if (!append) list.replaceChildren();
      list.append(...page.results.map(resultItem));
      const count = list.children.length;
      status.textContent = count ? `${count}${cursor ? "+" : ""} result${count === 1 ? "" : "s"}` : "No messages found.";
      more.hidden = !cursor;
    } catch (error) {
      if (mine !== generation) return;
      list.replaceChildren();
      status.textContent = error.code === "invalid_query" ? error.message : "Search is unavailable right now.";
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    run(input.value);
  });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => run(input.value), TYPE_DELAY_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    input.value = "";
    run("");
  });
  more.addEventListener("click", () => run(input.value, { append: true }));
}
