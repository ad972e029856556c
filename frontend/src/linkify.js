/** The client core's linkify (static/chat/core/linkify.js), shared with the template UI. */
export * from '../../static/chat/core/linkify.js';
