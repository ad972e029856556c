/**
 * Files: sharing files in the React app (issue 18), the same as the template page. The
 * tray of files on their way (attach button, drag and drop onto the room, paste into the
 * composer) and a message's files: images as thumbnails that open full size, other files
 * as a card with name, size and type. The uploading is the shared client's uploads.js.
 */

import { createContext, useContext, useEffect, useMemo, useRef, useState } from 'react';

import {
  FreshLinks,
  UploadTray,
  absoluteUrl,
  badgeOf,
  followFresh,
  formatBytes,
  isImage,
  retriesFresh,
  typeLabel,
} from '../../static/chat/core/uploads.js';

/** The composer's tray: {tray, items}. Uploads go through the app's API (its token or session). */
export function useUploads(api) {
  const [items, setItems] = useState([]);
  const tray = useMemo(
    () => new UploadTray({ request: (path, options) => api.request(path, options), base: api.base, onChange: setItems }),
    [api],
  );
  useEffect(() => () => tray.clear(), [tray]);
  return { tray, items };
}

/**
 * Fresh links for every message's files (core FreshLinks, through the app's API): a frame's
 * links live minutes, so a file opened, or an image shown, later gets new ones.
 */
export const FileLinksContext = createContext(null);

export function useFileLinks(api) {
  return useMemo(() => new FreshLinks({ request: (path, options) => api.request(path, options) }), [api]);
}

/** A thumbnail that, when a load fails (its link expired), loads again with a fresh link (retriesFresh says when). */
function Thumbnail({ attachment, base, links, ...props }) {
  const [fresh, setFresh] = useState(null);
  const lastFresh = useRef(null);
  const own = absoluteUrl(attachment.thumbnailUrl, base) || absoluteUrl(attachment.url, base);
  const reload = async (event) => {
    const failed = event.currentTarget.src;
    if (!links || !retriesFresh(failed, lastFresh.current)) return;
    lastFresh.current = failed; // until the fresh link is in: a second error waits for it
    const entry = await links.refresh(attachment.id, { force: true });
    const url = entry?.thumbnailUrl ?? entry?.url;
    if (url) {
      lastFresh.current = new URL(absoluteUrl(url, base), window.location.href).href;
      setFresh(absoluteUrl(url, base));
    }
  };
  return <img src={fresh ?? own} onError={reload} {...props} />;
}

/** Files dropped on `onFiles`' target: props for the element that takes them. */
export function useDropTarget(onFiles) {
  const [over, setOver] = useState(false);
  const depth = useRef(0);
  const hasFiles = (event) => Array.from(event.dataTransfer?.types ?? []).includes('Files');
  return {
    over,
    props: {
      onDragEnter: (event) => {
        if (!hasFiles(event)) return;
        depth.current += 1;
        setOver(true);
      },
      onDragLeave: () => {
        depth.current = Math.max(0, depth.current - 1);
        if (!depth.current) setOver(false);
      },
      onDragOver: (event) => {
        if (hasFiles(event)) event.preventDefault();
      },
      onDrop: (event) => {
        if (!hasFiles(event)) return;
        event.preventDefault();
        depth.current = 0;
        setOver(false);
        onFiles(event.dataTransfer.files);
      },
    },
  };
}

function Chip({ item, tray }) {
  return (
    <li className={`upload-chip upload-${item.status}`} data-status={item.status}>
      {item.preview && item.status !== 'failed' ? (
        <img className="upload-preview" src={item.preview} alt="" />
      ) : (
        <span className="file-badge" aria-hidden="true">
          {badgeOf(item.name)}
        </span>
      )}
      <div className="upload-body">
        <span className="upload-name" dir="auto">
          {item.name}
        </span>
        <span className="upload-detail">
          {item.status === 'failed'
            ? `Not uploaded: ${item.error || item.code}`
            : item.status === 'done'
              ? `${typeLabel(item.contentType)} · ${formatBytes(item.size)}`
              : `Uploading… ${Math.round(item.progress * 100)}%`}
        </span>
        {item.status === 'uploading' && (
          <progress className="upload-progress" max={1} value={item.progress} aria-label={`Uploading ${item.name}`} />
        )}
      </div>
      {item.status === 'failed' && (
        <button type="button" className="link-button upload-retry" onClick={() => tray.retry(item.key)}>
          Retry
        </button>
      )}
      <button
        type="button"
        className="icon-button upload-drop"
        aria-label={`${item.status === 'uploading' ? 'Cancel' : 'Remove'} ${item.name}`}
        onClick={() => tray.drop(item.key)}
      >
        ×
      </button>
    </li>
  );
}

/** The attach button (a hidden file input behind it) and the tray of files on their way. */
export function FilePicker({ tray, items, onFiles }) {
  const input = useRef(null);
  return (
    <>
      {items.length > 0 && (
        <ul className="upload-tray" aria-label="Files to send">
          {items.map((item) => (
            <Chip key={item.key} item={item} tray={tray} />
          ))}
        </ul>
      )}
      <button
        type="button"
        id="attach-button"
        className="icon-button attach-button"
        aria-label="Attach files"
        title="Attach files (you can also drop or paste them)"
        onClick={() => input.current?.click()}
      />
      <input
        ref={input}
        id="file-input"
        type="file"
        multiple
        hidden
        onChange={(event) => {
          onFiles(event.target.files);
          event.target.value = '';
        }}
      />
    </>
  );
}

/** A message's files (the frame's `attachments`); URLs are the site's, made absolute. */
export function Attachments({ list, base = '' }) {
  const links = useContext(FileLinksContext);
  if (!Array.isArray(list) || list.length === 0) return null;
  return (
    <div className="attachments">
      {list.map((a) => {
        const url = absoluteUrl(a.url, base);
        if (isImage(a.contentType)) {
          const scale = a.width && a.height ? Math.min(1, 320 / Math.max(a.width, a.height)) : 1;
          return (
            <a
              key={a.id}
              className="attachment attachment-image"
              href={url}
              target="_blank"
              rel="noopener noreferrer"
              title={`${a.name} (${formatBytes(a.size)}): open full size`}
              data-attachment-id={a.id}
              onClick={(event) => followFresh({ event, anchor: event.currentTarget, attachment: a, links, base })}
            >
              <Thumbnail
                attachment={a}
                base={base}
                links={links}
                alt={a.name}
                loading="lazy"
                width={a.width ? Math.max(1, Math.round(a.width * scale)) : undefined}
                height={a.height ? Math.max(1, Math.round(a.height * scale)) : undefined}
              />
            </a>
          );
        }
        return (
          <a
            key={a.id}
            className="attachment attachment-file"
            href={url}
            download={a.name}
            rel="noopener noreferrer"
            data-attachment-id={a.id}
            onClick={(event) => followFresh({ event, anchor: event.currentTarget, attachment: a, links, base })}
          >
            <span className="file-badge" aria-hidden="true">
              {badgeOf(a.name)}
            </span>
            <span className="attachment-text">
              <span className="attachment-name" dir="auto">
                {a.name}
              </span>
              <span className="attachment-detail">{`${typeLabel(a.contentType)} · ${formatBytes(a.size)}`}</span>
            </span>
          </a>
        );
      })}
    </div>
  );
}
