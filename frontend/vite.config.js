import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// `base: './'` makes every asset URL relative to index.html, so one build runs at /app/
// on the Django site, at the root of a CloudFront distribution, or under any other path.
export default defineConfig({
  base: './',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    // The protocol client lives in ../static/chat/core/ (the template page loads it too);
    // the build bundles it from there (and the shared design.css and vendored libraries), and the dev server may read them.
    fs: { allow: ['.', '../static/chat/core', '../static/chat/design.css', '../static/chat/vendor'] },
    // `npm run dev` next to `make run`: the API and the socket stay on the Django server.
    proxy: {
      '/api': 'http://127.0.0.1:8000',
      '/accounts': 'http://127.0.0.1:8000',
      '/ws': { target: 'ws://127.0.0.1:8000', ws: true },
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.js'],
  },
});
