// @ts-check
// botserver chat widget. On any site whose origin is listed in the bot's allowedOrigins:
//
//   <script src="https://bot.example.com/widget.js" data-bot="<bot id>" async></script>
//
// adds a chat bubble (bottom right) that opens and closes a frame with the bot's guest chat,
// https://bot.example.com/widget/<bot id>. The server's origin is taken from this script's own address. Everything
// lives in a shadow root with its own stylesheet, so the host page needs no CSS and its CSS does not leak in.
(() => {
  const script = document.currentScript;
  if (!(script instanceof HTMLScriptElement)) return;
  const botId = script.dataset.bot ?? '';
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(botId)) return;
  const origin = new URL(script.src, location.href).origin;
  const frameUrl = `${origin}/widget/${encodeURIComponent(botId)}`;
  const CLOSE_MESSAGE = 'botserver-widget:close';

  const CSS = `
    :host { all: initial; }
    .bubble {
      position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
      width: 56px; height: 56px; border-radius: 50%; border: 0; padding: 0;
      display: flex; align-items: center; justify-content: center;
      background: #1a56b0; color: #ffffff; cursor: pointer;
      box-shadow: 0 4px 14px rgba(0, 0, 0, 0.3);
    }
    .bubble:hover { background: #17499a; }
    .bubble:focus-visible { outline: 3px solid #ff9e1b; outline-offset: 3px; }
    .bubble svg { width: 28px; height: 28px; fill: currentColor; }
    .panel {
      position: fixed; right: 20px; bottom: 88px; z-index: 2147483000;
      width: min(380px, calc(100vw - 40px)); height: min(560px, calc(100vh - 120px));
      border-radius: 12px; overflow: hidden; background: #ffffff;
      box-shadow: 0 8px 30px rgba(0, 0, 0, 0.3);
    }
    .panel[hidden] { display: none; }
    iframe { width: 100%; height: 100%; border: 0; display: block; }
  `;

  /** @param {string} d @returns {SVGSVGElement} */
  function icon(d) {
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    path.setAttribute('d', d);
    svg.append(path);
    return svg;
  }
  const CHAT_ICON = 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z';
  const CLOSE_ICON = 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z';

  function mount() {
    const host = document.createElement('div');
    host.dataset.botserverWidget = botId;
    const root = host.attachShadow({ mode: 'open' });
    const styled = 'adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function';
    if (styled) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    }

    const panel = document.createElement('div');
    panel.className = 'panel';
    panel.id = 'botserver-chat-panel';
    panel.hidden = true;
    const bubble = document.createElement('button');
    bubble.type = 'button';
    bubble.className = 'bubble';
    bubble.setAttribute('aria-controls', panel.id);
    bubble.setAttribute('aria-expanded', 'false');
    bubble.setAttribute('aria-label', 'Open the chat');
    bubble.append(icon(CHAT_ICON));
    root.append(panel, bubble);
    if (!styled) {
      // Without constructable stylesheets: at least where it goes and that it stays above the page.
      const place = { position: 'fixed', right: '20px', zIndex: '2147483000' };
      Object.assign(bubble.style, place, { bottom: '20px', width: '56px', height: '56px', borderRadius: '50%' });
      Object.assign(panel.style, place, { bottom: '88px', width: '360px', height: '520px', background: '#ffffff' });
    }

    /** @type {HTMLIFrameElement | null} */
    let frame = null;

    function open() {
      if (frame === null) {
        // Loaded on the first open only: no request to the bot server before the visitor asks for the chat.
        frame = document.createElement('iframe');
        frame.title = 'Chat';
        frame.src = frameUrl;
        frame.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-forms');
        frame.referrerPolicy = 'strict-origin';
        panel.append(frame);
      }
      panel.hidden = false;
      bubble.setAttribute('aria-expanded', 'true');
      bubble.setAttribute('aria-label', 'Close the chat');
      bubble.replaceChildren(icon(CLOSE_ICON));
      frame.focus();
    }

    function close() {
      panel.hidden = true;
      bubble.setAttribute('aria-expanded', 'false');
      bubble.setAttribute('aria-label', 'Open the chat');
      bubble.replaceChildren(icon(CHAT_ICON));
      bubble.focus();
    }

    bubble.addEventListener('click', () => (panel.hidden ? open() : close()));
    bubble.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !panel.hidden) close();
    });
    window.addEventListener('message', (event) => {
      if (frame === null || event.origin !== origin || event.source !== frame.contentWindow) return;
      const data = /** @type {unknown} */ (event.data);
      if (typeof data === 'object' && data !== null && /** @type {{ type?: unknown }} */ (data).type === CLOSE_MESSAGE && !panel.hidden) close();
    });
    document.body.append(host);
  }

  if (document.body !== null) mount();
  else document.addEventListener('DOMContentLoaded', mount, { once: true });
})();
