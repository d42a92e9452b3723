// Stockade storefront indicator: <stockade-stock sku="TEE-M"></stockade-stock>
// One live connection per page for every element; public reads only. docs/storefront.md
(() => {
  if (customElements.get('stockade-stock')) return;
  const me = document.currentScript;
  const base = (me && (me.dataset.server || new URL(me.src).origin)) || location.origin;
  const els = new Set(), levels = new Map();
  let src = null, opened = 0, timer = null, poller = null;

  const api = p => fetch(base + p, { cache: 'no-store' }).then(r => r.ok ? r.json() : null);
  const skus = () => [...new Set([...els].map(e => e.sku).filter(Boolean))].sort();
  const paint = sku => els.forEach(e => e.sku === sku && e.show(levels.get(sku)));
  const set = (sku, available, status, version) => {
    const old = levels.get(sku);
    if (old && version !== undefined && old.version > version) return; // an older answer
    levels.set(sku, { available, status, version: version ?? (old && old.version) ?? 0 });
    paint(sku);
  };
  const load = sku => api('/api/inventory/products/' + encodeURIComponent(sku))
    .then(s => s && set(sku, s.available, s.status, s.version)).catch(() => {});
  const loadAll = () => skus().forEach(load);

  function poll() { // when the stream cannot stay open: every 15 s, no faster
    if (!poller) poller = setInterval(loadAll, 15000);
  }
  function open() {
    timer = null;
    const list = skus();
    if (src) src.close();
    src = null;
    if (!list.length) return;
    if (!window.EventSource || Date.now() - opened < 2000) { poll(); timer = setTimeout(open, 5000); return; }
    opened = Date.now();
    src = new EventSource(base + '/api/events?sku=' + list.map(encodeURIComponent).join(','));
    src.addEventListener('hello', () => { clearInterval(poller); poller = null; loadAll(); });
    src.addEventListener('notice', m => {
      const n = JSON.parse(m.data);
      set(n.sku, n.current.available, n.status, n.version);
    });
    src.addEventListener('resync', () => reopen(0));
    src.onerror = () => { // the browser retries; if it gives up, poll and try again later
      if (src && src.readyState === EventSource.CLOSED) { poll(); reopen(10000); }
    };
  }
  const reopen = wait => { if (!timer) timer = setTimeout(open, wait); };

  class StockadeStock extends HTMLElement {
    static get observedAttributes() { return ['sku']; }
    constructor() {
      super();
      const root = this.attachShadow({ mode: 'open' });
      root.innerHTML = '<style>:host{font:var(--stockade-font,inherit)}' +
        '[data-s=in],[data-s=back]{color:var(--stockade-color-in,#1a7f37)}' +
        '[data-s=low]{color:var(--stockade-color-low,#9a6700)}' +
        '[data-s=out]{color:var(--stockade-color-out,#cf222e)}</style>' +
        '<span part="label" role="status" aria-live="polite"></span>';
      this.label = root.querySelector('span');
      this.wasOut = false;
    }
    get sku() { return this.getAttribute('sku'); }
    connectedCallback() { els.add(this); this.show(levels.get(this.sku)); load(this.sku); reopen(0); }
    disconnectedCallback() { els.delete(this); reopen(0); }
    attributeChangedCallback() { if (this.isConnected) { load(this.sku); reopen(0); } }
    text(name, fallback, n) {
      return (this.getAttribute('text-' + name) || fallback).replace('{n}', n);
    }
    show(level) {
      if (!level) return;
      const { available, status } = level;
      const low = Number(this.getAttribute('low-at') || 5);
      let state, text;
      if (available !== null && (available <= 0 || status === 'out_of_stock' || status === 'short')) {
        state = 'out'; text = this.text('out', 'Sold out'); this.wasOut = true;
      } else if (status === 'preorder') {
        state = 'pre'; text = this.text('preorder', 'Pre-order');
      } else if (status === 'backorder') {
        state = 'backorder'; text = this.text('backorder', 'On backorder: ships when restocked');
      } else if (available !== null && available <= low) {
        state = 'low'; text = this.text('low', 'Only {n} left', available);
      } else if (this.wasOut) {
        state = 'back'; text = this.text('back', 'Back in stock');
      } else {
        state = 'in'; text = this.text('in', 'In stock');
      }
      this.label.dataset.s = state;
      this.dataset.state = state;
      if (this.label.textContent !== text) this.label.textContent = text;
    }
  }
  customElements.define('stockade-stock', StockadeStock);
})();
