// The job page: the DAG (Cytoscape.js with the dagre layout), each node a pie of its
// parties' states, a table of every party's task states, and the selected component's
// panels. The page follows the job through the server's event stream until it ends.
import {
  api, duration, el, fill, header, parties, showError, statusBadge, when,
} from './common.js';
import { openComponent, refreshComponent } from './panels.js';

export const COLOURS = {
  success: '#2e9d5b', running: '#2f7fd8', waiting: '#b8bec7', failed: '#d64545',
  canceled: '#8a6d3b', timeout: '#c77d1a',
};

const jobId = decodeURIComponent(window.location.pathname.split('/').pop());
const board = { jobId, cy: null, page: null, charts: {} };
window.fedweaveBoard = board; // for people debugging in the console, and for the browser tests

function partyKey(t) { return `${t.role} ${t.party_id}`; }

function nodeData(c, slices) {
  const data = { id: c.component, label: `${c.component}\n${c.module}`, module: c.module, state: c.state };
  for (let i = 0; i < slices; i += 1) { // one slice per party, each in its task's state's colour
    const t = c.tasks[i];
    data[`c${i + 1}`] = t ? COLOURS[t.status] || '#999' : '#fff';
    data[`s${i + 1}`] = t ? 100 / c.tasks.length : 0;
  }
  data.states = Object.fromEntries(c.tasks.map((t) => [partyKey(t), t.status]));
  return data;
}

function pieStyle(max) {
  const style = { 'pie-size': '100%' };
  for (let i = 1; i <= max; i += 1) {
    style[`pie-${i}-background-color`] = `data(c${i})`;
    style[`pie-${i}-background-size`] = `data(s${i})`;
  }
  return style;
}

function drawDag(page) {
  if (!window.cytoscape || !window.echarts) {
    throw new Error('the board\'s libraries are missing on this server: run `make board-assets`');
  }
  const max = Math.max(1, ...page.components.map((c) => c.tasks.length));
  const elements = [
    ...page.components.map((c) => ({ group: 'nodes', data: nodeData(c, max) })),
    ...page.edges.map((e, i) => ({
      group: 'edges', data: { id: `e${i}`, source: e.source, target: e.target, kind: e.kind, port: e.port },
    })),
  ];
  board.slices = max;
  board.cy = window.cytoscape({
    container: document.getElementById('dag'),
    elements,
    layout: { name: 'dagre', rankDir: 'TB', nodeSep: 60, rankSep: 70 },
    
    style: [
      {
        selector: 'node',
        style: {
          shape: 'ellipse', width: 34, height: 34, 'background-color': '#eef1f5',
          'border-width': 2, 'border-color': '#59606b', label: 'data(label)', 'text-wrap': 'wrap',
          'text-valign': 'bottom', 'text-margin-y': 4, 'font-size': 11, color: '#111',
          'text-background-color': '#fff', 'text-background-opacity': 0.85, 'text-background-padding': 2,
          ...pieStyle(max),
        },
      },
      { selector: 'node:selected', style: { 'border-width': 4, 'border-color': '#111' } },
      {
        selector: 'edge',
        style: { width: 2, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle' },
      },
      { selector: 'edge[kind = "data"]', style: { 'line-color': '#4a78b5', 'target-arrow-color': '#4a78b5' } },
      {
        selector: 'edge[kind = "model"]',
        style: { 'line-color': '#a0529c', 'target-arrow-color': '#a0529c', 'line-style': 'dashed' },
      },
    ],
  });
  board.cy.on('tap', 'node', (event) => select(event.target.id()));
}

function recolour(page) {
  if (!board.cy) return;
  board.cy.batch(() => {
    for (const c of page.components) {
      const node = board.cy.getElementById(c.component);
      if (node.nonempty()) node.data(nodeData(c, board.slices));
    }
  });
}

function statesTable(page) {
  const table = document.getElementById('states');
  const cols = [];
  for (const c of page.components) {
    for (const t of c.tasks) if (!cols.includes(partyKey(t))) cols.push(partyKey(t));
  }
  fill(table.tHead, el('tr', {}, el('th', { text: 'component' }), cols.map((k) => el('th', { text: k }))));
  fill(table.tBodies[0], page.components.map((c) => {
    const by = Object.fromEntries(c.tasks.map((t) => [partyKey(t), t]));
    return el('tr', { dataset: { component: c.component, state: c.state } },
      el('td', {}, el('a', { href: '#', text: c.component, onclick: (e) => { e.preventDefault(); select(c.component); } })),
      cols.map((k) => el('td', {}, by[k] ? statusBadge(by[k].status) : '',
        by[k] && by[k].status === 'running' ? ` ${by[k].progress || 0}%` : '')));
  }));
}

function summary(page) {
  const j = page.job;
  fill(document.getElementById('job-id'), j.job_id);
  fill(document.getElementById('job-status'), statusBadge(j.status));
  fill(document.getElementById('job-summary'),
    `initiator ${j.initiator} · ${parties(j.parties)} · created ${when(j.created)} · started ${when(j.started)}`
    + ` · ended ${when(j.ended)} · ${duration(j.duration_s)} · ${j.progress}%${j.reason ? ` · ${j.reason}` : ''}`);
  fill(document.getElementById('job-description'), j.description);
  document.getElementById('stop').hidden = j.final;
  document.getElementById('rerun-box').hidden = !j.final;
  document.title = `fedweave board: job ${j.job_id}`;
}

function rerunChoices(page) {
  const select = document.getElementById('rerun-from');
  if (select.options.length > 1) return;
  select.append(...page.components.map((c) => el('option', { value: c.component, text: c.component })));
}

function show(page) {
  board.page = page;
  rerunChoices(page);
  summary(page);
  statesTable(page);
  recolour(page);
  refreshComponent(board);
}

function select(component) {
  if (board.cy) {
    board.cy.nodes().unselect();
    board.cy.getElementById(component).select();
  }
  openComponent(board, component);
}

function follow() {
  const events = new EventSource(`/board/api/events?job_id=${encodeURIComponent(jobId)}`);
  events.addEventListener('detail', (event) => show(JSON.parse(event.data)));
  events.addEventListener('end', () => events.close());
}

async function act(what) {
  showError(null);
  try {
    const from = document.getElementById('rerun-from').value;
    const body = what === 'rerun' && from ? { component: from } : {};
    await api(`/board/api/jobs/${encodeURIComponent(jobId)}/${what}`, { method: 'POST', body });
    if (what === 'rerun') follow();
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await header();
  const page = await api(`/board/api/jobs/${encodeURIComponent(jobId)}`);
  drawDag(page);
  show(page);
  document.getElementById('clone').href = `/builder?job=${encodeURIComponent(jobId)}`;
  document.getElementById('stop').addEventListener('click', () => act('stop'));
  document.getElementById('rerun').addEventListener('click', () => act('rerun'));
  if (!page.job.final) follow();
  document.body.dataset.loaded = String(Date.now());
}

main().catch(showError);
