// The live map of an invpn mesh: draws the graph the daemon pushes on
// /map/events (server-sent events) with cytoscape, and keeps it current.
'use strict';

(function () {
  const token = new URLSearchParams(location.search).get('token');
  const eventsURL = 'events' + (token ? '?token=' + encodeURIComponent(token) : '');

  const cy = cytoscape({
    container: document.getElementById('graph'),
    minZoom: 0.05,
    maxZoom: 4,
    style: [
      { selector: 'node', style: {
        'label': 'data(label)', 'font-size': 10, 'text-valign': 'bottom', 'text-margin-y': 3,
        'background-color': '#1976d2', 'width': 22, 'height': 22 } },
      { selector: 'node[state = "self"]', style: { 'background-color': '#1b5e20', 'width': 30, 'height': 30 } },
      { selector: 'node[state = "silent"]', style: {
        'background-color': '#fff', 'border-width': 2, 'border-style': 'dashed', 'border-color': '#b00020', 'color': '#b00020' } },
      { selector: 'edge', style: {
        'width': 2, 'text-rotation': 'autorotate', 'text-margin-y': -8, 'line-color': '#999', 'label': 'data(label)', 'font-size': 9, 'color': '#555',
        'text-background-color': '#fff', 'text-background-opacity': 0.8, 'text-background-padding': 1 } },
      { selector: 'edge[?onPath]', style: { 'line-color': '#1976d2', 'width': 3 } },
      { selector: 'edge[?oneSided]', style: { 'line-style': 'dashed' } },
      { selector: 'edge[liveness = "suspect"]', style: { 'line-color': '#e65100' } },
    ],
  });

  // What the test and a curious operator can read: the latest graph.
  window.meshMap = { cy: cy, graph: null, updates: 0 };

  function ms(v) { return v > 0 ? v.toFixed(2) + ' ms' : '–'; }
  function short(mac) { return mac.slice(9); } // the last three octets

  function linkLabel(l) {
    const parts = [];
    if (l.transport) parts.push(l.transport);
    if (l.rtt_ms > 0) parts.push(ms(l.rtt_ms));
    return parts.join(' ');
  }

  // draw replaces the elements with those of g, keeping the positions of
  // nodes that stay, and lays the graph out again when its nodes changed.
  function draw(g) {
    const want = new Map();
    for (const n of g.nodes) {
      want.set(n.mac, { group: 'nodes', data: { id: n.mac, state: n.state, label: short(n.mac) } });
    }
    for (const l of g.links) {
      const id = l.a + '|' + l.b;
      want.set(id, { group: 'edges', data: { id: id, source: l.a, target: l.b, label: linkLabel(l),
        onPath: !!l.on_path, oneSided: !!l.one_sided, liveness: l.liveness || '' } });
    }
    let changed = false, added = false;
    cy.batch(function () {
      cy.elements().forEach(function (el) {
        if (!want.has(el.id())) { el.remove(); changed = changed || el.isNode(); }
      });
      for (const [id, el] of want) {
        const have = cy.getElementById(id);
        if (have.nonempty()) { have.data(el.data); continue; }
        cy.add(el);
        if (el.group === 'nodes') changed = added = true;
      }
    });
    if (changed) {
      // A new node has no place yet: lay the whole graph out afresh. A
      // node that left leaves the others where they were, mostly.
      cy.layout({ name: 'cose', animate: false, randomize: added, nodeRepulsion: 400000,
        idealEdgeLength: 100, nodeOverlap: 20, padding: 40 }).run();
      // Fit the mesh, but keep a small one at a readable size.
      cy.fit(undefined, 40);
      if (cy.zoom() > 1.5) {
        cy.zoom(1.5);
        cy.center();
      }
    }
  }

  function fill(id, rows) {
    const body = document.querySelector('#' + id + ' tbody');
    body.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement('tr');
      if (r.cls) tr.className = r.cls;
      for (const c of r.cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function tables(g) {
    fill('nodes', g.nodes.map(function (n) {
      const since = n.state === 'silent' && n.last_seen ? 'silent since ' + new Date(n.last_seen).toLocaleTimeString() : n.state;
      return { cls: n.state, cells: [n.mac, since, n.state === 'answered' ? n.hops : '', n.state === 'answered' ? ms(n.rtt_ms) : '', n.links] };
    }));
    fill('links', g.links.map(function (l) {
      const notes = [];
      if (l.liveness) notes.push(l.liveness);
      if (l.one_sided) notes.push('one end only');
      if (l.on_path) notes.push('on a path');
      return { cells: [short(l.a) + ' — ' + short(l.b), l.transport || '–', ms(l.rtt_ms), notes.join(', ')] };
    }));
    fill('routes', g.routes.map(function (r) {
      return { cells: [r.target, r.next_hop, r.hops >= 0 ? r.hops : '?', r.backups.join(' ')] };
    }));
  }

  const status = document.getElementById('status');
  const events = new EventSource(eventsURL);
  events.addEventListener('graph', function (e) {
    const g = JSON.parse(e.data);
    window.meshMap.graph = g;
    window.meshMap.updates++;
    document.getElementById('self').textContent = g.self;
    draw(g);
    tables(g);
    const silent = g.nodes.filter(function (n) { return n.state === 'silent'; }).length;
    status.className = '';
    status.textContent = g.answered + ' nodes answered, ' + silent + ' silent, ' + g.links.length +
      ' links — health request of ' + new Date(g.at).toLocaleTimeString();
  });
  events.addEventListener('problem', function (e) {
    status.className = 'problem';
    status.textContent = 'no new map: ' + JSON.parse(e.data).error;
  });
  events.onerror = function () {
    status.className = 'problem';
    status.textContent = 'lost the daemon; retrying…';
  };
})();
