import { describe, expect, it } from 'vitest';

import { linkify, safeHttpUrl } from './linkify.js';

describe('linkify', () => {
  it('makes http and https URLs links and leaves the rest as text', () => {
    expect(linkify('see https://example.com/a?b=1 and http://x.test.')).toEqual([
      { type: 'text', text: 'see ' },
      { type: 'link', text: 'https://example.com/a?b=1', href: 'https://example.com/a?b=1' },
      { type: 'text', text: ' and ' },
      { type: 'link', text: 'http://x.test', href: 'http://x.test/' },
      { type: 'text', text: '.' },
    ]);
  });

  it('never links other schemes', () => {
    for (const text of ['javascript:alert(1)', 'data:text/html,<script>alert(1)</script>', 'ftp://x.test', 'vbscript:x']) {
      expect(linkify(text)).toEqual([{ type: 'text', text }]);
    }
    expect(safeHttpUrl('javascript://example.com/%0aalert(1)')).toBeNull();
  });

  it('keeps markup as text and stops a URL at a quote or angle bracket', () => {
    const segments = linkify('<a href="https://evil.test">x</a>');
    expect(segments.filter((s) => s.type === 'link').map((s) => s.href)).toEqual(['https://evil.test/']);
    expect(segments.map((s) => s.text).join('')).toBe('<a href="https://evil.test">x</a>');
  });

  it('keeps a closing parenthesis that the URL opened', () => {
    expect(linkify('(https://en.wikipedia.org/wiki/Foo_(bar))')[1]).toEqual({
      type: 'link',
      text: 'https://en.wikipedia.org/wiki/Foo_(bar)',
      href: 'https://en.wikipedia.org/wiki/Foo_(bar)',
    });
  });
});

describe('linkify www.', () => {
  it('links a bare www. address as https, but not one inside a word or an address', () => {
    expect(linkify('go to www.example.org/a, now')).toEqual([
      { type: 'text', text: 'go to ' },
      { type: 'link', text: 'www.example.org/a', href: 'https://www.example.org/a' },
      { type: 'text', text: ', now' },
    ]);
    expect(linkify('mail me at bob@www.example.org')).toEqual([{ type: 'text', text: 'mail me at bob@www.example.org' }]);
    expect(linkify('www. is a prefix')).toEqual([{ type: 'text', text: 'www. is a prefix' }]);
    expect(linkify('http://www.example.org')[0].href).toBe('http://www.example.org/');
  });
});
