import { describe, expect, it } from 'vitest';

import { DEFAULT_CONFIG, endpoints, loadConfig } from './config.js';

describe('runtime config', () => {
  it('defaults to the origin that served the page', () => {
    const page = new URL('https://chat.example.com/app/');
    expect(endpoints(DEFAULT_CONFIG, page)).toEqual({
      api: 'https://chat.example.com',
      ws: 'wss://chat.example.com/ws/',
      sameOrigin: true,
    });
  });

  it('points one build at an API on another origin', () => {
    const page = new URL('https://d111.cloudfront.net/index.html');
    const config = { ...DEFAULT_CONFIG, apiBaseUrl: 'http://api.example.com:8000/' };
    expect(endpoints(config, page)).toEqual({
      api: 'http://api.example.com:8000',
      ws: 'ws://api.example.com:8000/ws/',
      sameOrigin: false,
    });
    expect(endpoints({ ...config, webSocketUrl: 'wss://ws.example.com/prod' }, page).ws).toBe('wss://ws.example.com/prod');
  });

  it('reads config.json beside index.html and falls back to the defaults', async () => {
    const asked = [];
    const fetchOk = async (url) => {
      asked.push(url);
      return { ok: true, json: async () => ({ apiBaseUrl: 'https://api.test' }) };
    };
    const config = await loadConfig(fetchOk, 'https://cdn.test/app/index.html');
    expect(asked).toEqual(['https://cdn.test/app/config.json']);
    expect(config.apiBaseUrl).toBe('https://api.test');
    expect(config.socketToken).toBe('id');
    const missing = await loadConfig(async () => ({ ok: false }), 'https://cdn.test/');
    expect(missing).toEqual({ ...DEFAULT_CONFIG });
  });
});
