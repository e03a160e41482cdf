// The aws-like-sdk viewer. No framework and no network but the daemon's own JSON API.
// Every value that comes from a segment document reaches the page through textContent
// or setAttribute, never as markup.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      // CSSOM, not the style attribute: the page's CSP forbids inline style attributes.
      else if (key === 'style') node.style.cssText = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, {headers: {Accept: 'application/json'}});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || ('HTTP ' + response.status));
    return body;
  }

  function showError(error) {
    const box = document.getElementById('error');
    if (!box) return;
    box.hidden = !error;
    box.textContent = error ? String(error.message || error) : '';
  }

  function ms(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    const value = seconds * 1000;
    if (value < 1) return value.toFixed(2) + ' ms';
    if (value < 1000) return value.toFixed(1) + ' ms';
    return (value / 1000).toFixed(2) + ' s';
  }

  function when(epoch) {
    if (!epoch) return '–';
    const date = new Date(epoch * 1000);
    const pad = (n, w) => String(n).padStart(w || 2, '0');
    return date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate()) + ' ' +
      pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds()) + '.' +
      pad(date.getMilliseconds(), 3);
  }

  function flagBadges(item) {
    const span = el('span', {class: 'flags'});
    for (const flag of ['fault', 'error', 'throttle']) {
      if (item[flag]) span.append(el('span', {class: 'badge ' + flag, text: flag}));
    }
    if (item.in_progress) span.append(el('span', {class: 'badge progress', text: 'in progress'}));
    if (!span.childNodes.length) span.append(el('span', {class: 'badge ok', text: 'ok'}));
    return span;
  }

  function traceLink(traceId, text) {
    return el('a', {href: '/traces/' + encodeURIComponent(traceId), text: text});
  }

  async function loadStats() {
    const target = document.getElementById('stats');
    if (!target) return;
    try {
      const stats = await getJSON('/api/stats');
      const c = stats.counters || {};
      let rejected = 0;
      for (const [key, value] of Object.entries(c)) {
        if (key.startsWith('rejected.') || key.startsWith('invalid.')) rejected += value;
      }
      target.textContent = stats.store.traces + ' traces · received ' + ((c.received || 0) + (c['received.api'] || 0)) +
        ' · stored ' + (c.stored || 0) + ' · rejected ' + rejected + ' · UDP ' + stats.udp;
    } catch (error) {
      target.textContent = 'daemon unreachable';
    }
  }

  // ---------------------------------------------------------------- trace list

  async function listPage() {
    const form = document.getElementById('filters');
    const tbody = document.querySelector('#traces tbody');
    const empty = document.getElementById('empty');
    const live = document.getElementById('live');
    const fields = ['service', 'status', 'flag', 'annotation', 'min_duration', 'limit'];
    const initial = new URLSearchParams(location.search);

    try {
      const services = await getJSON('/api/services');
      const select = form.elements.service;
      const names = services.services.slice();
      // A shared link may name a service that has no traces here (yet): keep it selectable.
      if (initial.get('service') && !names.includes(initial.get('service'))) names.push(initial.get('service'));
      for (const name of names) select.append(el('option', {value: name, text: name}));
    } catch (error) { showError(error); }
    for (const name of fields) {
      if (initial.has(name)) form.elements[name].value = initial.get(name);
    }

    function query() {
      const params = new URLSearchParams();
      for (const name of fields) {
        const value = form.elements[name].value.trim();
        if (value) params.set(name, value);
      }
      return params;
    }

    async function refresh() {
      const params = query();
      try {
        const data = await getJSON('/api/traces?' + params.toString());
        showError(null);
        const rows = document.createDocumentFragment();
        for (const t of data.traces) {
          const row = el('tr', {class: t.fault ? 'fault' : (t.error ? 'error' : (t.throttle ? 'throttle' : ''))},
            el('td', {class: 'time', text: when(t.start_time)}),
            el('td', {}, traceLink(t.trace_id, t.name || '?')),
            el('td', {text: t.method || ''}),
            el('td', {class: 'url', title: t.url || '', text: t.url || ''}),
            el('td', {text: t.status === null || t.status === undefined ? '' : t.status}),
            el('td', {class: 'num', text: ms(t.duration)}),
            el('td', {}, flagBadges(t)),
            el('td', {class: 'id'}, traceLink(t.trace_id, t.trace_id)));
          rows.append(row);
        }
        tbody.replaceChildren(rows);
        empty.hidden = data.traces.length > 0;
        document.body.dataset.loaded = String(data.traces.length);
      } catch (error) { showError(error); }
    }

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const params = query();
      history.replaceState(null, '', params.toString() ? '?' + params.toString() : location.pathname);
      refresh();
    });
    document.getElementById('reset').addEventListener('click', () => {
      form.reset();
      history.replaceState(null, '', location.pathname);
      refresh();
    });
    setInterval(() => { if (live.checked && !document.hidden) { refresh(); loadStats(); } }, 3000);
    await refresh();
  }

  // ---------------------------------------------------------------- trace page

  function flatten(roots) {
    const rows = [];
    const stack = roots.slice().reverse().map((node) => [node, 0]);
    while (stack.length) {
      const [node, depth] = stack.pop();
      rows.push([node, depth]);
      for (let i = node.children.length - 1; i >= 0; i--) stack.push([node.children[i], depth + 1]);
    }
    return rows;
  }

  function table(title, rows) {
    if (!rows.length) return null;
    const body = el('tbody');
    for (const [key, value] of rows) {
      const cell = (value !== null && typeof value === 'object')
        ? el('td', {}, el('pre', {text: JSON.stringify(value, null, 2)}))
        : el('td', {text: value === undefined || value === null ? '' : String(value)});
      body.append(el('tr', {}, el('th', {text: key}), cell));
    }
    return el('section', {class: 'block'}, el('h3', {text: title}), el('table', {class: 'kv'}, body));
  }

  function entries(obj) {
    return obj && typeof obj === 'object' && !Array.isArray(obj) ? Object.entries(obj) : [];
  }

  function exceptionsBlock(cause) {
    if (!cause) return null;
    if (typeof cause === 'string') return table('Exception', [['exception id', cause]]);
    const list = Array.isArray(cause.exceptions) ? cause.exceptions : [];
    if (!list.length) return null;
    const section = el('section', {class: 'block'}, el('h3', {text: 'Exceptions'}));
    if (cause.working_directory) section.append(el('p', {class: 'muted', text: 'in ' + cause.working_directory}));
    for (const exc of list) {
      if (!exc || typeof exc !== 'object') continue;
      const box = el('div', {class: 'exception'},
        el('p', {}, el('strong', {text: exc.type || 'Exception'}), ': ', el('span', {text: exc.message || ''})));
      if (exc.remote) box.append(el('span', {class: 'badge progress', text: 'remote'}));
      if (Array.isArray(exc.stack) && exc.stack.length) {
        const lines = exc.stack.map((f) => (f && typeof f === 'object')
          ? (f.path || '?') + ':' + (f.line === undefined ? '?' : f.line) + '  ' + (f.label || '') : String(f));
        if (exc.truncated) lines.push('… ' + exc.truncated + ' more frames');
        box.append(el('pre', {class: 'stack', text: lines.join('\n')}));
      }
      section.append(box);
    }
    return section;
  }

  function showDetails(node) {
    const aside = document.getElementById('details');
    const duration = node.end_time !== null && node.start_time !== null ? node.end_time - node.start_time : null;
    const overview = [['name', node.name], ['type', node.type], ['id', node.id], ['service', node.segment],
      ['start', when(node.start_time)], ['duration', node.in_progress ? 'in progress' : ms(duration)]];
    if (node.namespace) overview.push(['namespace', node.namespace]);
    if (node.origin) overview.push(['origin', node.origin]);
    if (node.user) overview.push(['user', node.user]);
    const flags = ['fault', 'error', 'throttle'].filter((f) => node[f]);
    overview.push(['flags', flags.length ? flags.join(', ') : 'ok']);
    const http = node.http && typeof node.http === 'object' ? node.http : {};
    const httpRows = entries(http.request).map(([k, v]) => ['request.' + k, v])
      .concat(entries(http.response).map(([k, v]) => ['response.' + k, v]));
    const metadataRows = [];
    for (const [namespace, values] of entries(node.metadata)) {
      if (values && typeof values === 'object' && !Array.isArray(values)) {
        for (const [k, v] of Object.entries(values)) metadataRows.push([namespace + '.' + k, v]);
      } else metadataRows.push([namespace, values]);
    }
    const raw = Object.assign({}, node);
    delete raw.children;
    aside.replaceChildren(...[
      el('h2', {text: node.name}),
      table('Overview', overview),
      table('Annotations', entries(node.annotations)),
      table('HTTP', httpRows),
      table('SQL', entries(node.sql)),
      exceptionsBlock(node.cause),
      table('AWS', entries(node.aws)),
      table('Metadata', metadataRows),
      el('details', {class: 'block'}, el('summary', {text: 'Raw entity'}), el('pre', {text: JSON.stringify(raw, null, 2)})),
    ].filter(Boolean));
  }

  function axis(span) {
    const box = document.getElementById('axis');
    const ticks = document.createDocumentFragment();
    ticks.append(el('div', {class: 'axis-label'}));
    const scale = el('div', {class: 'axis-scale'});
    for (let i = 0; i <= 4; i++) {
      scale.append(el('span', {class: 'tick', style: 'left:' + (i * 25) + '%', text: ms(span * i / 4)}));
    }
    ticks.append(scale);
    box.replaceChildren(ticks);
  }

  async function tracePage() {
    const started = performance.now();
    const traceId = decodeURIComponent(location.pathname.split('/').pop());
    document.getElementById('title').textContent = 'Trace ' + traceId;
    let data;
    try {
      data = await getJSON('/api/traces/' + encodeURIComponent(traceId));
    } catch (error) { showError(error); document.body.dataset.rendered = 'error'; return; }
    const fetched = performance.now();
    const s = data.summary;
    document.title = (s.name || 'Trace') + ' · aws-like-sdk';
    const summary = document.getElementById('summary');
    const pairs = [['Name', s.name], ['Started', when(s.start_time)], ['Duration', ms(s.duration)],
      ['Request', ((s.method || '') + ' ' + (s.url || '')).trim() || '–'], ['Status', s.status === null ? '–' : s.status],
      ['Documents', s.documents]];
    for (const [key, value] of pairs) summary.append(el('dt', {text: key}), el('dd', {text: value}));
    summary.append(el('dt', {text: 'Flags'}), el('dd', {}, flagBadges(s)));

    const rows = flatten(data.roots);
    let start = Infinity, end = -Infinity;
    for (const [node] of rows) {
      if (node.start_time !== null) start = Math.min(start, node.start_time);
      const last = node.end_time !== null ? node.end_time : node.start_time;
      if (last !== null) end = Math.max(end, last);
    }
    const span = Math.max(end - start, 1e-6);
    axis(span);
    const fragment = document.createDocumentFragment();
    let selected = null;
    rows.forEach(([node, depth], index) => {
      const nodeStart = node.start_time === null ? start : node.start_time;
      const nodeEnd = node.end_time === null ? end : node.end_time;
      const left = ((nodeStart - start) / span) * 100;
      const width = Math.max(((nodeEnd - nodeStart) / span) * 100, 0.2);
      const state = node.fault ? 'fault' : node.error ? 'error' : node.throttle ? 'throttle' : node.in_progress ? 'progress' : 'ok';
      const label = el('div', {class: 'label', style: 'padding-left:' + (depth * 14 + 6) + 'px', title: node.name},
        el('span', {class: 'name', text: node.name}),
        node.type === 'segment' ? el('span', {class: 'kind', text: 'segment'}) : null,
        node.namespace === 'remote' || node.namespace === 'aws' ? el('span', {class: 'kind', text: node.namespace}) : null,
        node.sql ? el('span', {class: 'kind', text: 'sql'}) : null);
      const bar = el('div', {class: 'bar ' + state, style: 'left:' + left.toFixed(3) + '%;width:' + width.toFixed(3) + '%'});
      const duration = el('span', {class: 'dur', style: 'left:' + Math.min(left + width, 100).toFixed(3) + '%',
        text: node.in_progress ? 'in progress' : ms(nodeEnd - nodeStart)});
      const row = el('div', {class: 'row' + (node.type === 'segment' ? ' segment' : ''), role: 'treeitem',
        tabindex: 0, 'data-id': node.id, 'data-index': index},
        label, el('div', {class: 'track'}, bar, duration));
      const select = () => {
        if (selected) selected.classList.remove('selected');
        selected = row;
        row.classList.add('selected');
        showDetails(node);
      };
      row.addEventListener('click', select);
      row.addEventListener('keydown', (event) => { if (event.key === 'Enter') select(); });
      fragment.append(row);
    });
    document.getElementById('waterfall').replaceChildren(fragment);
    if (rows.length) {
      const first = document.querySelector('#waterfall .row');
      first.classList.add('selected');
      selected = first;
      showDetails(rows[0][0]);
    }
    const done = performance.now();
    document.body.dataset.rows = String(rows.length);
    document.body.dataset.fetchMs = (fetched - started).toFixed(1);
    document.body.dataset.renderMs = (done - fetched).toFixed(1);
    document.body.dataset.totalMs = done.toFixed(1);
    document.body.dataset.rendered = 'ok';
  }

  // ---------------------------------------------------------------- service map

  async function mapPage() {
    let data;
    try { data = await getJSON('/api/servicemap'); } catch (error) { showError(error); return; }
    document.getElementById('map-scope').textContent = 'over the last ' + data.traces + ' traces';
    const depth = {client: 0};
    const queue = ['client'];
    while (queue.length) {
      const name = queue.shift();
      for (const edge of data.edges) {
        if (edge.source === name && !(edge.target in depth)) { depth[edge.target] = depth[name] + 1; queue.push(edge.target); }
      }
    }
    const columns = {};
    for (const node of data.nodes) {
      const d = node.name in depth ? depth[node.name] : 1;
      (columns[d] = columns[d] || []).push(node);
    }
    const position = {};
    const colWidth = 240, rowHeight = 110;
    let maxRows = 1, maxCol = 0;
    for (const [d, nodes] of Object.entries(columns)) {
      nodes.forEach((node, i) => { position[node.name] = [70 + Number(d) * colWidth, 60 + i * rowHeight]; });
      maxRows = Math.max(maxRows, nodes.length);
      maxCol = Math.max(maxCol, Number(d));
    }
    const map = document.getElementById('map');
    const width = 140 + (maxCol + 1) * colWidth, height = 40 + maxRows * rowHeight;
    map.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    map.setAttribute('width', width);
    map.setAttribute('height', height);
    const defs = svg('defs');
    const marker = svg('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'});
    marker.append(svg('path', {d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead'}));
    defs.append(marker);
    const parts = [defs];
    const tbody = document.querySelector('#edges tbody');
    const rows = document.createDocumentFragment();
    for (const edge of data.edges) {
      const a = position[edge.source], b = position[edge.target];
      if (!a || !b) continue;
      const dx = b[0] - a[0], dy = b[1] - a[1], len = Math.max(Math.hypot(dx, dy), 1);
      const r = 28;
      const line = svg('line', {x1: a[0] + dx / len * r, y1: a[1] + dy / len * r, x2: b[0] - dx / len * (r + 2),
        y2: b[1] - dy / len * (r + 2), class: 'edge' + (edge.error_rate > 0 ? ' failing' : ''), 'marker-end': 'url(#arrow)'});
      parts.push(line);
      parts.push(svg('text', {x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 6, class: 'edge-label', 'text-anchor': 'middle'},
        edge.calls + ' calls · ' + ms(edge.avg_latency) + ' · ' + (edge.error_rate * 100).toFixed(0) + '% err'));
      rows.append(el('tr', {class: edge.error_rate > 0 ? 'error' : ''}, el('td', {text: edge.source}), el('td', {text: edge.target}),
        el('td', {class: 'num', text: edge.calls}), el('td', {class: 'num', text: ms(edge.avg_latency)}),
        el('td', {class: 'num', text: (edge.error_rate * 100).toFixed(1) + ' %'})));
    }
    for (const node of data.nodes) {
      const [x, y] = position[node.name];
      const group = svg('g', {class: 'node ' + node.type + (node.error_rate > 0 ? ' failing' : '')});
      group.append(svg('circle', {cx: x, cy: y, r: 28}));
      group.append(svg('text', {x: x, y: y + 4, 'text-anchor': 'middle', class: 'node-kind'}, node.type));
      group.append(svg('text', {x: x, y: y + 46, 'text-anchor': 'middle', class: 'node-name'},
        node.name.length > 30 ? node.name.slice(0, 29) + '…' : node.name));
      if (node.type !== 'client') {
        group.append(svg('text', {x: x, y: y + 62, 'text-anchor': 'middle', class: 'node-stats'},
          ms(node.avg_latency) + ' avg · ' + (node.error_rate * 100).toFixed(0) + '% err'));
      }
      group.append(svg('title', {}, node.name));
      parts.push(group);
    }
    map.replaceChildren(...parts);
    tbody.replaceChildren(rows);
    document.body.dataset.rendered = 'ok';
  }

  const pages = {list: listPage, trace: tracePage, map: mapPage};
  loadStats();
  const page = pages[document.body.dataset.page];
  if (page) page().catch(showError);
})();
