import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import App from './App.jsx';
// One design for both UIs: the template UI's tokens and shared parts, then this app's layout.
import '../../static/chat/design.css';
import './styles.css';

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
