/**
 * The React app's door to Chatsite's protocol client. The client itself lives in
 * static/chat/core/ (plain JavaScript, no build step) so that the Django-template page
 * loads the very same module; Vite bundles it into the app's build from there.
 */
export * from '../../static/chat/core/client.js';
