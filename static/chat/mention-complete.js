/*
 * The composer's @-autocompletion (template UI): typing "@" and the start of a name offers
 * the room's members and recent writers; Tab or Enter takes the highlighted one, Escape
 * closes the list, arrows move in it. The names come from `names()`; the server decides
 * who is actually mentioned.
 */
import { mentionQuery, suggestNames } from "./core/unread.js";

export function attachMentionComplete(input, { names, self }) {
  const list = document.createElement("ul");
  list.className = "mention-suggestions";
  list.id = "mention-suggestions";
  list.setAttribute("role", "listbox");
  list.hidden = true;
  input.form.prepend(list);
  input.setAttribute("aria-controls", list.id);
  let options = [];
  let active = 0;
  let at = null;

  function close() {
    list.hidden = true;
    options = [];
    input.removeAttribute("aria-activedescendant");
  }

  function render() {
    list.replaceChildren(
      ...options.map((name, i) => {
        const li = document.createElement("li");
        li.id = `mention-option-${i}`;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", String(i === active));
        li.textContent = `@${name}`;
        li.addEventListener("mousedown", (event) => {
          event.preventDefault();
          take(i);
        });
        return li;
      }),
    );
    list.hidden = options.length === 0;
    if (options.length) input.setAttribute("aria-activedescendant", `mention-option-${active}`);
  }

  function take(i) {
    const name = options[i];
    if (!name || !at) return;
    const caret = input.selectionStart;
    input.value = `${input.value.slice(0, at.start)}@${name} ${input.value.slice(caret)}`;
    const after = at.start + name.length + 2;
    input.setSelectionRange(after, after);
    close();
    input.dispatchEvent(new Event("input"));
  }

  input.addEventListener("input", () => {
    at = mentionQuery(input.value, input.selectionStart);
    options = at ? suggestNames(at.query, names(), { self }) : [];
    active = 0;
    render();
  });
  // Capture: before the composer's Enter-sends handler.
  input.addEventListener(
    "keydown",
    (event) => {
      if (list.hidden) return;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        active = (active + (event.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
        render();
      } else if (event.key === "Tab" || event.key === "Enter") {
        event.preventDefault();
        event.stopImmediatePropagation();
        take(active);
      } else if (event.key === "Escape") {
        event.stopImmediatePropagation();
        close();
      }
    },
    true,
  );
  input.addEventListener("blur", close);
}
