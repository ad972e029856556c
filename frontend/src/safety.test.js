import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

const SRC = new URL('.', import.meta.url).pathname;
const STATIC_CHAT = new URL('../../static/chat/', import.meta.url).pathname;
// Ways to turn a string into markup or code; message text must never reach any of them.
const FORBIDDEN = ['dangerouslySetInnerHTML', 'innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function'];

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    // vendor/: third-party libraries (a sanitiser among them), checked by their own projects.
    if (entry.isDirectory()) return entry.name === 'test' || entry.name === 'vendor' ? [] : sources(path);
    return /\.(jsx?|mjs)$/.test(entry.name) && !entry.name.endsWith('.test.js') ? [path] : [];
  });
}

describe('the app source', () => {
  it('never builds markup or code from strings', () => {
    // The protocol client and the template page's script are shared code: checked too.
    const files = [...sources(SRC), ...sources(STATIC_CHAT)];
    expect(files.length).toBeGreaterThan(5);
    const offences = files.flatMap((file) =>
      FORBIDDEN.filter((word) => readFileSync(file, 'utf8').includes(word)).map((word) => `${file}: ${word}`),
    );
    expect(offences).toEqual([]);
  });
});
