/** The client core's words for errors (static/chat/core/words.js), shared with the template UI. */
export * from '../../static/chat/core/words.js';
