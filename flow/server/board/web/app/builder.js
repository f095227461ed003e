// The builder page: drag modules from the palette onto the canvas, drag from one component
// to another (Connect mode) to feed its data or model, fill each component's parameters,
// set the roles; every change is checked by the server's job validator and each problem
// line shown on the component and field it names. Export writes dsl.json and conf.json,
// Submit starts the job, ?job=<id> opens a past job's pipeline to edit and resubmit.
import {
  api, el, fill, header, showError as showMessage,
} from './common.js';
import { Pipeline } from './builder_model.js';
import { markProblems, parameterForm, scopeSelect } from './builder_form.js';

const state = {
  pipeline: null, cy: null, mode: 'move', selected: null, scope: 'common', problems: [], seq: 0, timer: null,
  linkFrom: null,
};
window.fedweaveBuilder = state; // for people debugging in the console, and for the browser tests
const $ = (id) => document.getElementById(id);

/** Cytoscape keeps where its canvas is on the page: tell it after anything above it moves. */
function moved() {
  if (state.cy) state.cy.resize();
}

function showError(err) {
  showMessage(err);
  moved();
}

function drawCanvas() {
  if (!window.cytoscape) throw new Error('the board\'s libraries are missing on this server: run `make board-assets`');
  state.cy = window.cytoscape({
    container: $('canvas'),
    boxSelectionEnabled: false,
    wheelSensitivity: 0.3,
    style: [
      {
        selector: 'node',
        style: {
          shape: 'round-rectangle', width: 150, height: 40, 'background-color': '#eef1f5', 'border-width': 2,
          'border-color': '#59606b', label: 'data(label)', 'text-wrap': 'wrap', 'text-valign': 'center',
          'font-size': 11, color: '#111',
        },
      },
      { selector: 'node.invalid', style: { 'border-color': '#d64545', 'background-color': '#fde8e8' } },
      { selector: 'node.link-source', style: { 'border-color': '#2f7fd8', 'border-width': 4 } },
      { selector: 'node:selected', style: { 'border-width': 4, 'border-color': '#111' } },
      {
        selector: 'edge',
        style: {
          width: 2, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', label: 'data(port)',
          'font-size': 9, 'text-background-color': '#fff', 'text-background-opacity': 0.8,
        },
      },
      { selector: 'edge[kind = "data"]', style: { 'line-color': '#4a78b5', 'target-arrow-color': '#4a78b5' } },
      {
        selector: 'edge[kind = "model"]',
        style: { 'line-color': '#a0529c', 'target-arrow-color': '#a0529c', 'line-style': 'dashed' },
      },
      { selector: 'edge:selected', style: { width: 4 } },
    ],
  });
  const cy = state.cy;
  cy.on('tap', 'node', (event) => select(event.target.id()));
  cy.on('tapstart', 'node', (event) => {
    if (state.mode !== 'connect') return;
    state.linkFrom = event.target.id();
    event.target.addClass('link-source');
  });
  cy.on('tapend', (event) => {
    if (!state.linkFrom) return;
    const source = state.linkFrom;
    state.linkFrom = null;
    cy.nodes().removeClass('link-source');
    const target = cy.nodes().filter((n) => {
      const box = n.boundingBox();
      return event.position.x >= box.x1 && event.position.x <= box.x2
        && event.position.y >= box.y1 && event.position.y <= box.y2;
    })[0];
    if (target && target.id() !== source) link(source, target.id(), $('edge-kind').value);
  });
}

function nodeElement(name, module, position) {
  return { group: 'nodes', data: { id: name, label: `${name}\n${module}`, module }, position };
}

function edgeElement(e) {
  return { group: 'edges', data: { id: `${e.source}->${e.target}:${e.kind}:${e.port}`, ...e } };
}

/** Put `module` on the canvas at a point of the page (where it was dropped). */
export function addAt(module, clientX, clientY) {
  const box = $('canvas').getBoundingClientRect();
  const pan = state.cy.pan();
  const zoom = state.cy.zoom();
  const position = { x: (clientX - box.left - pan.x) / zoom, y: (clientY - box.top - pan.y) / zoom };
  const name = state.pipeline.add(module);
  state.cy.add(nodeElement(name, module, position));
  select(name);
  changed();
  return name;
}

function link(source, target, kind) {
  showError(null);
  try {
    const edge = state.pipeline.connect(source, target, kind);
    state.cy.add(edgeElement(edge));
    document.body.dataset.refused = '';
    if (state.selected === target) showNode();
    changed();
  } catch (err) {
    document.body.dataset.refused = err.message;
    showError(`not connected: ${err.message}`);
  }
}

function setMode(mode) {
  state.mode = mode;
  state.cy.autoungrabify(mode === 'connect');
  state.cy.userPanningEnabled(mode !== 'connect');
  $('mode-move').classList.toggle('active', mode === 'move');
  $('mode-connect').classList.toggle('active', mode === 'connect');
}

function palette(modules) {
  const items = [...modules].sort((a, b) => a.module.localeCompare(b.module)).map((m) => el('div', {
    class: 'palette-item', dataset: { module: m.module }, title: `${m.doc || ''}\nroles: ${m.roles.join(', ')}`,
    text: m.module,
  }));
  fill($('palette'), el('input', { id: 'palette-filter', placeholder: 'filter', oninput: (event) => {
    const q = event.target.value.toLowerCase();
    items.forEach((i) => { i.hidden = !i.dataset.module.toLowerCase().includes(q); });
  } }), items);
  let ghost = null;
  $('palette').addEventListener('mousedown', (event) => {
    const item = event.target.closest('.palette-item');
    if (!item || event.button !== 0) return;
    event.preventDefault();
    ghost = el('div', { class: 'palette-ghost', text: item.dataset.module, dataset: { module: item.dataset.module } });
    ghost.style.left = `${event.clientX}px`;
    ghost.style.top = `${event.clientY}px`;
    document.body.append(ghost);
  });
  document.addEventListener('mousemove', (event) => {
    if (!ghost) return;
    ghost.style.left = `${event.clientX}px`;
    ghost.style.top = `${event.clientY}px`;
  });
  document.addEventListener('mouseup', (event) => {
    if (!ghost) return;
    const { module } = ghost.dataset;
    ghost.remove();
    ghost = null;
    const box = $('canvas').getBoundingClientRect();
    if (event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top
        && event.clientY <= box.bottom) addAt(module, event.clientX, event.clientY);
  });
}

function select(name) {
  if (state.selected !== name) state.scope = 'common';
  state.selected = name;
  showNode();
}

function problemsOf(name) {
  return state.problems.filter((p) => p.component === name);
}

function showNode() {
  const name = state.selected;
  const node = state.pipeline.nodes.get(name);
  $('node-panel').hidden = !node;
  if (!node) return;
  const module = state.pipeline.modules.get(node.module);
  $('node-name').textContent = name;
  $('node-module').textContent = node.module;
  fill($('node-inputs'), state.pipeline.edges.filter((e) => e.target === name)
    .map((e) => el('li', { text: `${e.kind} ${e.port} ← ${e.source}` })));
  fill($('param-scope-row'), scopeSelect(module, state.pipeline.roles, state.scope, (scope) => {
    state.scope = scope;
    showNode();
  }));
  state.scope = $('param-scope').value;
  const values = state.pipeline.params.get(name)[state.scope] || {};
  fill($('param-form'), parameterForm(module, values, (field, value) => {
    state.pipeline.setParam(name, state.scope, field, value);
    changed();
  }));
  placeProblems();
}

/** Each problem line beside what it names: the node, the field, the roles; all in the list. */
function placeProblems() {
  const named = new Set(state.problems.map((p) => p.component).filter(Boolean));
  state.cy.nodes().forEach((n) => { n.toggleClass('invalid', named.has(n.id())); });
  fill($('problems'), state.problems.map((p) => el('li', {
    text: p.line, dataset: { component: p.component || '', field: p.field || '', scope: p.scope || '' },
  })));
  fill($('roles-problems'), state.problems.filter((p) => p.section === 'roles' || p.section === 'job_parameters')
    .map((p) => el('div', { text: p.line })));
  const node = state.pipeline.nodes.get(state.selected);
  if (!node) return;
  const mine = problemsOf(state.selected);
  const placed = markProblems($('param-form'), mine);
  fill($('node-problems'), mine.filter((p) => !placed.has(p)).map((p) => el('div', { text: p.line })));
}

function changed() {
  clearTimeout(state.timer);
  state.seq += 1; // an answer still on its way is about the pipeline before this change
  document.body.dataset.validated = '';
  state.timer = setTimeout(validate, 300);
}

async function validate() {
  const seq = ++state.seq;
  if (!state.pipeline.nodes.size) {
    state.problems = [];
    $('validity').textContent = 'add components from the palette';
    placeProblems();
    return;
  }
  const { conf, dsl } = state.pipeline.toFiles();
  try {
    const answer = await api('/board/api/validate', { method: 'POST', body: { conf, dsl } });
    if (seq !== state.seq) return; // a later change is being checked
    state.problems = answer.problems;
    $('validity').textContent = answer.valid ? 'valid' : `${answer.problems.length} problem(s)`;
    fill($('notices'), (answer.notices || []).map((n) => el('li', { text: `notice: ${n}` })));
    placeProblems();
    document.body.dataset.valid = String(answer.valid);
    document.body.dataset.validated = String(seq);
  } catch (err) {
    showError(err);
  }
}

function readRoles() {
  showError(null);
  for (const role of ['guest', 'host', 'arbiter']) {
    state.pipeline.roles[role] = $(`role-${role}`).value.split(',').map((s) => s.trim()).filter(Boolean);
  }
  state.pipeline.initiator = { role: $('initiator-role').value, party_id: $('initiator-party').value.trim() };
  const text = $('job-parameters').value.trim();
  try {
    state.pipeline.jobParameters = text ? JSON.parse(text) : {};
  } catch (err) {
    showError(`job parameters: not JSON (${err.message})`);
    return;
  }
  showNode();
  changed();
}

function showRoles() {
  for (const role of ['guest', 'host', 'arbiter']) $(`role-${role}`).value = state.pipeline.roles[role].join(',');
  $('initiator-role').value = state.pipeline.initiator.role;
  $('initiator-party').value = state.pipeline.initiator.party_id;
  const jp = state.pipeline.jobParameters;
  $('job-parameters').value = Object.keys(jp).length ? JSON.stringify(jp) : '';
}

function exportFiles() {
  const { conf, dsl } = state.pipeline.toFiles();
  const files = { dsl, conf };
  for (const [key, value] of Object.entries(files)) {
    const text = `${JSON.stringify(value, null, 2)}\n`;
    $(`${key}-json`).textContent = text;
    const link = $(`download-${key}`);
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  }
  $('export-view').hidden = false;
}

async function submit() {
  showError(null);
  const { conf, dsl } = state.pipeline.toFiles();
  try {
    const job = await api('/board/api/submit', {
      method: 'POST', body: { conf, dsl, description: $('description').value.trim() || null },
    });
    fill($('submitted'), 'submitted: ', el('a', { href: `/jobs/${encodeURIComponent(job.job_id)}`, text: job.job_id }));
    document.body.dataset.submitted = job.job_id;
    moved();
  } catch (err) {
    showError(err);
  }
}

function removeSelected() {
  const chosen = state.cy.$(':selected');
  chosen.edges().forEach((e) => {
    state.pipeline.edges = state.pipeline.edges.filter((x) => !(x.source === e.data('source')
      && x.target === e.data('target') && x.kind === e.data('kind') && x.port === e.data('port')));
  });
  chosen.nodes().forEach((n) => state.pipeline.remove(n.id()));
  chosen.remove();
  if (!state.pipeline.nodes.has(state.selected)) state.selected = null;
  showNode();
  changed();
}

async function openJob(jobId) {
  const found = await api(`/board/api/jobs/${encodeURIComponent(jobId)}/pipeline`);
  state.pipeline.load(found.conf, found.dsl);
  state.cy.add([...state.pipeline.nodes.values()].map((n) => nodeElement(n.name, n.module, { x: 0, y: 0 })));
  state.cy.add(state.pipeline.edges.map(edgeElement));
  state.cy.layout({ name: 'dagre', rankDir: 'TB', nodeSep: 40, rankSep: 50 }).run();
  $('description').value = found.description;
  $('source-job').textContent = `from job ${jobId}`;
  showRoles();
  changed();
}

async function start() {
  await header();
  const { modules } = await api('/board/api/modules');
  state.pipeline = new Pipeline(modules);
  drawCanvas();
  palette(modules);
  $('mode-move').addEventListener('click', () => setMode('move'));
  $('mode-connect').addEventListener('click', () => setMode('connect'));
  $('remove-selected').addEventListener('click', removeSelected);
  $('layout').addEventListener('click', () => state.cy.layout({ name: 'dagre', rankDir: 'TB' }).run());
  $('export').addEventListener('click', exportFiles);
  $('submit').addEventListener('click', submit);
  $('roles').addEventListener('change', readRoles);
  const jobId = new URLSearchParams(window.location.search).get('job');
  if (jobId) await openJob(jobId);
  document.body.dataset.loaded = 'true';
}

start().catch(showError);
