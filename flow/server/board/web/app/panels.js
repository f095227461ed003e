// The selected component's panels: its tasks per party, parameters, metrics (tables and
// charts), model, output data and logs. Results are asked for the parties this home ran
// only; the server refuses the others as well.
import { api, duration, el, fill, statusBadge, when } from './common.js';
import { findLoss, ksChart, lossChart, rocChart } from './charts.js';

const section = document.getElementById('component');
const panel = document.getElementById('panel');
const partySelect = document.getElementById('cpn-party');
let current = { component: null, tab: 'tasks', logs: null };

const taskPath = (board, party, what) => `/board/api/jobs/${encodeURIComponent(board.jobId)}/tasks/`
  + `${encodeURIComponent(party.role)}/${encodeURIComponent(party.party_id)}/`
  + `${encodeURIComponent(current.component)}/${what}`;

function component(board) {
  return board.page.components.find((c) => c.component === current.component);
}

function selectedParty() {
  const [role, partyId] = partySelect.value.split(' ');
  return { role, party_id: partyId };
}

function isOwn(board, party) {
  return board.page.own.some((p) => p.role === party.role && p.party_id === party.party_id);
}

function json(value) {
  return el('pre', { class: 'json', text: JSON.stringify(value, null, 2) });
}

function tasksPanel(board) {
  const c = component(board);
  return el('table', { class: 'grid', id: 'tasks-table' },
    el('thead', {}, el('tr', {}, ['party', 'state', 'progress', 'attempt', 'started', 'ended', 'duration', 'reason']
      .map((h) => el('th', { text: h })))),
    el('tbody', {}, c.tasks.map((t) => el('tr', { dataset: { party: `${t.role} ${t.party_id}` } },
      el('td', { text: `${t.role} ${t.party_id}` }), el('td', {}, statusBadge(t.status)),
      el('td', { text: `${t.status === 'success' ? 100 : t.progress || 0}%` }), el('td', { text: t.attempt }),
      el('td', { text: when(t.started) }), el('td', { text: when(t.ended) }),
      el('td', { text: duration(t.duration_s) }), el('td', { text: t.reason || '' })))));
}

function scalarRows(metrics) {
  const rows = [];
  for (const [ns, values] of Object.entries(metrics)) {
    for (const [name, value] of Object.entries(values)) {
      if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') {
        rows.push(el('tr', { dataset: { namespace: ns, name } }, el('td', { text: ns }), el('td', { text: name }),
          el('td', { class: 'metric-value', text: String(value) })));
      }
    }
  }
  return rows;
}

async function metricsPanel(board, party, box) {
  const metrics = await api(taskPath(board, party, 'metrics'));
  board.metrics = metrics;
  const scalars = scalarRows(metrics);
  fill(box, scalars.length ? el('table', { class: 'grid', id: 'metrics-table' },
    el('thead', {}, el('tr', {}, el('th', { text: 'namespace' }), el('th', { text: 'metric' }),
      el('th', { text: 'value' }))), el('tbody', {}, scalars)) : el('p', { class: 'muted', text: 'no scalar metrics' }));
  board.charts = {};
  for (const [ns, values] of Object.entries(metrics)) {
    if (values.roc_curve) {
      const node = box.appendChild(el('div', { class: 'chart', id: 'chart-roc' }));
      board.charts.roc = rocChart(node, values.roc_curve, values.auc ?? NaN);
    }
    if (values.ks_curve) {
      const node = box.appendChild(el('div', { class: 'chart', id: 'chart-ks' }));
      board.charts.ks = ksChart(node, values.ks_curve);
    }
    for (const [name, value] of Object.entries(values)) {
      if (value && typeof value === 'object' && !['roc_curve', 'ks_curve', 'loss_curve'].includes(name)) {
        box.append(el('h4', { text: `${ns}.${name}` }), json(value));
      }
    }
  }
  const loss = findLoss(metrics);
  if (loss) {
    const node = box.appendChild(el('div', { class: 'chart', id: 'chart-loss' }));
    board.charts.loss = lossChart(node, loss.iterations, loss.loss);
  }
}

function weightsTable(model) {
  const rows = model.header.map((name, i) => el('tr', { dataset: { feature: name } }, el('td', { text: name }),
    el('td', { class: 'weight', text: JSON.stringify(model.weights[i]) })));
  if (model.intercept !== undefined) {
    rows.push(el('tr', { dataset: { feature: '(intercept)' } }, el('td', { text: '(intercept)' }),
      el('td', { class: 'weight', text: JSON.stringify(model.intercept) })));
  }
  return el('table', { class: 'grid', id: 'weights-table' },
    el('thead', {}, el('tr', {}, el('th', { text: 'feature' }), el('th', { text: 'weight' }))), el('tbody', {}, rows));
}

async function modelPanel(board, party, box) {
  const model = await api(taskPath(board, party, 'model'));
  const linear = Array.isArray(model.header) && Array.isArray(model.weights)
    && model.header.length === model.weights.length;
  if (!linear) {
    fill(box, json(model));
    return;
  }
  const rest = Object.fromEntries(Object.entries(model).filter(([k]) => !['header', 'weights', 'intercept'].includes(k)));
  fill(box, el('h4', { text: `weights of ${party.role} ${party.party_id}` }), weightsTable(model), json(rest));
}

async function dataPanel(board, party, box) {
  const tables = await api(`${taskPath(board, party, 'data')}?limit=100`);
  fill(box, tables.length ? [] : el('p', { class: 'muted', text: 'no output data' }));
  for (const t of tables) {
    box.append(el('h4', { text: `${t.namespace}/${t.name} (${t.count} rows, first ${t.rows.length})` }),
      el('div', { class: 'scroll' }, el('table', { class: 'grid data-table' },
        el('thead', {}, el('tr', {}, t.header.map((h) => el('th', { text: h })))),
        el('tbody', {}, t.rows.map((r) => el('tr', {}, r.map((v) => el('td', { text: v === null ? '' : String(v) }))))))));
  }
}

function stopLogs() {
  if (current.logs) current.logs.close();
  current.logs = null;
}

function logsPanel(board, party, box) {
  const lines = el('pre', { id: 'log-lines', class: 'logs' });
  const followBox = el('input', { type: 'checkbox', id: 'log-follow', checked: !board.page.job.final });
  const start = () => {
    stopLogs();
    fill(lines);
    const q = new URLSearchParams({ role: party.role, party_id: party.party_id, component: current.component,
      follow: followBox.checked ? 'true' : 'false' });
    const events = new EventSource(`/board/api/jobs/${encodeURIComponent(board.jobId)}/logs?${q}`);
    current.logs = events;
    events.addEventListener('line', (event) => {
      lines.append(document.createTextNode(`${JSON.parse(event.data)}\n`));
      while (lines.childNodes.length > 5000) lines.firstChild.remove();
      if (followBox.checked) lines.scrollTop = lines.scrollHeight;
    });
    events.addEventListener('end', () => { events.close(); lines.dataset.ended = 'true'; });
    events.addEventListener('error', () => { events.close(); });
  };
  followBox.addEventListener('change', start);
  fill(box, el('label', {}, followBox, ' follow'), lines);
  start();
}

const PANELS = { metrics: metricsPanel, model: modelPanel, data: dataPanel, logs: logsPanel };

async function render(board) {
  stopLogs();
  const party = selectedParty();
  document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === current.tab));
  const box = el('div', { id: `panel-${current.tab}` });
  fill(panel, box);
  try {
    if (current.tab === 'tasks') box.append(tasksPanel(board));
    else if (current.tab === 'parameters') box.append(json(await api(taskPath(board, party, 'parameters'))));
    else if (!isOwn(board, party)) {
      box.append(el('p', { class: 'muted', text: `${party.role} ${party.party_id} keeps its own results` }));
    } else await PANELS[current.tab](board, party, box);
    box.dataset.ready = 'true';
  } catch (err) {
    box.append(el('p', { class: 'error', text: err.message }));
    box.dataset.ready = 'error';
  }
}

export function openComponent(board, name) {
  const c = board.page.components.find((x) => x.component === name);
  if (!c) return;
  current.component = name;
  section.hidden = false;
  fill(document.getElementById('cpn-name'), name);
  fill(document.getElementById('cpn-module'), c.module);
  const keys = c.tasks.map((t) => `${t.role} ${t.party_id}`);
  const own = keys.filter((k) => isOwn(board, { role: k.split(' ')[0], party_id: k.split(' ')[1] }));
  fill(partySelect, keys.map((k) => el('option', { value: k, text: own.includes(k) ? k : `${k} (kept there)` })));
  partySelect.value = own[0] || keys[0] || '';
  render(board);
}

/** The job changed: redraw the tasks panel if it is open (the others keep what they show). */
export function refreshComponent(board) {
  if (current.component && current.tab === 'tasks') render(board);
}

document.getElementById('tabs').addEventListener('click', (event) => {
  const tab = event.target.dataset && event.target.dataset.tab;
  if (!tab || !current.component) return;
  current.tab = tab;
  render(window.fedweaveBoard);
});
partySelect.addEventListener('change', () => render(window.fedweaveBoard));
