/**
 * format.js: a message's text as safe HTML, the same in both UIs (docs/protocol.md,
 * "Formatting"). The text is stored and sent as typed; only the display formats it.
 *
 * The subset: bold, italic, strike, inline code, fenced code blocks, block quotes, lists,
 * line breaks, and links made from http(s) and www. addresses in the text. No raw HTML
 * (markdown-it escapes it), no images, no headings, no [text](url) links (the shown text
 * of a link is its address). The HTML markdown-it writes then goes through DOMPurify with
 * an allow-list of tags and attributes, http(s) hrefs only; every link opens in a new tab
 * with rel="noopener noreferrer nofollow ugc". Both libraries are vendored in ../vendor/ (README there).
 *
 * No string of HTML ever reaches the page: DOMPurify hands back DOM nodes
 * (`renderMarkdown`, for the template UI) and `markdownTree` turns them into plain
 * {tag, attrs, children} objects (for React's createElement). Both need a DOM (DOMPurify
 * parses with it): in a browser, always.
 */
import markdownit from '../vendor/markdown-it.min.js';
import * as purifyModule from '../vendor/purify.min.js';

const ALLOWED_TAGS = ['p', 'br', 'strong', 'em', 's', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'a'];
const ALLOWED_ATTR = ['href', 'target', 'rel', 'start'];
const SAFE_URL = /^https?:\/\//i;
// What the text of a link must start with: an address typed with its scheme, or www.
// ("main.py" is no link, though .py is a country's domain).
const LINK_TEXT = /^(?:https?:\/\/|www\.)/i;

const md = markdownit('zero', { html: false, linkify: true, breaks: true, typographer: false });
md.enable([
  // block
  'paragraph', 'fence', 'blockquote', 'list',
  // inline
  'newline', 'escape', 'backticks', 'emphasis', 'strikethrough', 'linkify',
  // core: find links in text (linkify)
  'linkify',
]);
md.linkify.set({ fuzzyLink: true, fuzzyEmail: false, fuzzyIP: false });
// Only http(s): linkify would also take ftp: and mailto:.
md.validateLink = (url) => SAFE_URL.test(url);

let purifier = null;

function purify() {
  if (purifier) return purifier;
  // A UMD build: a bundler hands it over as the default export; a browser's module loader
  // runs it for its effect (globalThis.DOMPurify).
  const factory = purifyModule.default ?? globalThis.DOMPurify;
  purifier = factory(globalThis.window);
  purifier.addHook('afterSanitizeAttributes', (node) => {
    if (node.nodeName === 'A') {
      const href = node.getAttribute('href') ?? '';
      if (!SAFE_URL.test(href) || !LINK_TEXT.test(node.textContent ?? '')) {
        // Left as an <a> with no href: it reads as plain text.
        node.removeAttribute('href');
        node.removeAttribute('target');
        node.removeAttribute('rel');
      } else {
        // A www. address typed without a scheme opens over https (linkify-it says http).
        const url = /^www\./i.test(node.textContent ?? '') && /^http:\/\/www\./i.test(href) ? `https://${href.slice(7)}` : href;
        node.setAttribute('href', new URL(url).href); // normalised, as the address bar shows it
        node.setAttribute('target', '_blank');
        // Not the page's opener, no referrer; and no endorsement of user-posted links.
        node.setAttribute('rel', 'noopener noreferrer nofollow ugc');
      }
    }
  });
  return purifier;
}

/** A message's text, formatted, as a DocumentFragment of allowed nodes only. */
export function renderMarkdown(text) {
  const fragment = purify().sanitize(md.render(String(text ?? '')), {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOWED_URI_REGEXP: SAFE_URL,
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  });
  // markdown-it ends every block with a newline: between blocks it is no text of the message.
  for (const child of Array.from(fragment.childNodes)) {
    if (child.nodeType === 3 && !child.data.trim()) child.remove();
  }
  return fragment;
}

function treeOf(node) {
  if (node.nodeType === 3) return node.data;
  if (node.nodeType !== 1) return null;
  const tag = node.nodeName.toLowerCase();
  if (!ALLOWED_TAGS.includes(tag)) return null;
  const attrs = {};
  for (const name of ALLOWED_ATTR) if (node.hasAttribute(name)) attrs[name] = node.getAttribute(name);
  return { tag, attrs, children: Array.from(node.childNodes, treeOf).filter((c) => c !== null) };
}

/** The formatted text as plain data: strings and {tag, attrs, children} (React renders it). */
export function markdownTree(text) {
  return Array.from(renderMarkdown(text).childNodes, treeOf).filter((c) => c !== null);
}

/** The text without formatting, for one-line places (a reply's quote, a notification). */
export function plainText(text) {
  return String(text ?? '').replace(/\s+/gu, ' ').trim();
}
