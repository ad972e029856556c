/** The client core's avatars and grouping (static/chat/core/display.js), shared with the template UI. */
export * from '../../static/chat/core/display.js';
