/**
 * linkify.js: split message text into plain-text and link segments, for both UIs (the
 * template UI builds text nodes and <a> elements from them, React renders them). Only
 * http(s) URLs (and www. addresses, as https) become links; everything else stays text:
 * no markup from a message ever reaches the DOM as HTML.
 */

// Candidates start with http://, https:// or www. (linked as https://); `javascript:`,
// `data:` and friends never match. The formatting of issue 17 (Markdown) replaces this.
const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?'")\]}>]+$/;

export function linkify(text) {
  const segments = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let candidate = match[0];
    // Punctuation that ends a sentence is not part of the URL; a closing bracket is,
    // when the URL opened one (https://en.wikipedia.org/wiki/Foo_(bar)).
    const trailing = candidate.match(TRAILING)?.[0] ?? '';
    let keep = candidate.length - trailing.length;
    for (const ch of trailing) {
      if (ch === ')' && count(candidate.slice(0, keep), '(') > count(candidate.slice(0, keep), ')')) keep += 1;
      else break;
    }
    candidate = candidate.slice(0, keep);
    const bare = !/^https?:/i.test(candidate);
    // "www." inside a word, an address or a path (mail.www.x, a@www.x, /www.x) is not a link of its own.
    if (bare && match.index > 0 && /[\w.@/-]/.test(text[match.index - 1])) continue;
    if (bare && !/^www\.[^./]+\.[^./]/i.test(candidate)) continue; // www.example.org, not "www." alone
    const href = safeHttpUrl(bare ? `https://${candidate}` : candidate);
    if (!href) continue;
    if (match.index > last) segments.push({ type: 'text', text: text.slice(last, match.index) });
    segments.push({ type: 'link', text: candidate, href });
    last = match.index + candidate.length;
  }
  if (last < text.length) segments.push({ type: 'text', text: text.slice(last) });
  return segments;
}

/** The normalised URL if it parses as http or https with a host, else null. */
export function safeHttpUrl(candidate) {
  let url;
  try {
    url = new URL(candidate);
  } catch {
    return null;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) return null;
  return url.href;
}

function count(text, ch) {
  let n = 0;
  for (const c of text) if (c === ch) n += 1;
  return n;
}
