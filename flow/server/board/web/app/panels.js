// The selected component's panels: its tasks per party, parameters, metrics (tables and
// charts), model, output data and logs. Results are asked for the parties this home ran
// only; the server refuses the others as well.
import { api, duration, el, fill, statusBadge, when } from './common.js';
import {
  confusionChart, findLoss, gainChart, ksChart, liftChart, linesChart, lossChart, prChart, rocChart,
} from './charts.js';
import { modelView } from './model_views.js';
import { logsPanel, stopLogs } from './logs_pane.js';

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
      if (value && typeof value === 'object' && !DRAWN.includes(name) && !isCurve(value)) {
        box.append(el('h4', { text: `${ns}.${name}` }), json(value));
      }
    }
  }
  const loss = findLoss(metrics);
  if (loss) {
    const node = box.appendChild(el('div', { class: 'chart', id: 'chart-loss' }));
    board.charts.loss = lossChart(node, loss.iterations, loss.loss);
  }
  validationCharts(board, metrics, box);
  if (Object.values(metrics).some((v) => v.confusion_curve)) await curveCharts(board, party, box);
}

/** ``{iteration: [...], value: [...]}`` metrics (validation per iteration or round). */
const isCurve = (v) => Array.isArray(v.iteration) && Array.isArray(v.value);
const DRAWN = ['roc_curve', 'ks_curve', 'loss_curve', 'confusion_curve', 'confusion_matrix'];

function validationCharts(board, metrics, box) {
  for (const [ns, values] of Object.entries(metrics)) {
    const curves = Object.entries(values).filter(([, v]) => v && typeof v === 'object' && isCurve(v));
    if (!curves.length) continue;
    const node = box.appendChild(el('div', { class: 'chart', id: `chart-${ns}` }));
    board.charts[ns] = linesChart(node, `${ns} per iteration`, 'iteration', 'value',
      curves.map(([name, v]) => ({ name, points: v.iteration.map((it, i) => [it, v.value[i]]) })),
      { x: { minInterval: 1 } });
  }
}

/** PR, gain, lift and the confusion matrix (at a threshold the user may change), from the server. */
async function curveCharts(board, party, box) {
  const input = el('input', { type: 'number', id: 'confusion-threshold', min: 0, max: 1, step: 0.01, value: '' });
  box.append(el('label', {}, 'confusion matrix at threshold ', input, ' (empty: Evaluation\'s own)'));
  const nodes = Object.fromEntries(['pr', 'gain', 'lift', 'confusion'].map((k) => [k,
    box.appendChild(el('div', { class: 'chart', id: `chart-${k}` }))]));
  const draw = async () => {
    const q = input.value === '' ? '' : `?threshold=${encodeURIComponent(input.value)}`;
    const curves = await api(taskPath(board, party, `curves${q}`));
    const first = Object.values(curves)[0];
    board.curves = curves;
    for (const k of Object.keys(nodes)) if (board.charts[k]) board.charts[k].dispose();
    board.charts.pr = prChart(nodes.pr, first.pr);
    board.charts.gain = gainChart(nodes.gain, first.gain);
    board.charts.lift = liftChart(nodes.lift, first.lift);
    board.charts.confusion = confusionChart(nodes.confusion, first.confusion);
    nodes.confusion.dataset.threshold = String(first.confusion.threshold);
  };
  input.addEventListener('change', () => draw().catch((err) => box.append(el('p', { class: 'error', text: err.message }))));
  await draw();
}

async function modelPanel(board, party, box) {
  const model = await api(taskPath(board, party, 'model'));
  board.model = model;
  fill(box, modelView(component(board).module, model, party, box, board));
}

const STATS = ['count', 'missing', 'mean', 'std', 'min', 'max'];

function statsTable(stats) {
  return el('table', { class: 'grid stats-table' },
    el('thead', {}, el('tr', {}, ['column', ...STATS].map((h) => el('th', { text: h })))),
    el('tbody', {}, stats.columns.map((c) => el('tr', { dataset: { column: c.column } }, el('td', { text: c.column }),
      STATS.map((k) => el('td', { dataset: { stat: k, value: c[k] === null ? '' : String(c[k]) },
        text: c[k] === null ? '' : String(Number(Number(c[k]).toPrecision(6))) }))))));
}

async function dataPanel(board, party, box) {
  const [tables, stats] = await Promise.all([api(`${taskPath(board, party, 'data')}?limit=100`),
    api(taskPath(board, party, 'data/statistics'))]);
  board.dataStats = stats;
  fill(box, tables.length ? [] : el('p', { class: 'muted', text: 'no output data' }));
  tables.forEach((t, i) => {
    box.append(el('h4', { text: `${t.namespace}/${t.name} (${t.count} rows, first ${t.rows.length})` }),
      el('a', { class: 'csv-download', href: taskPath(board, party, `data/${t.index}.csv`), download: '',
        text: 'download CSV' }),
      el('div', { class: 'data-split' },
        el('div', { class: 'scroll' }, el('table', { class: 'grid data-table' },
          el('thead', {}, el('tr', {}, t.header.map((h) => el('th', { text: h })))),
          el('tbody', {}, t.rows.map((r) => el('tr', {}, r.map((v) => el('td', { text: v === null ? '' : String(v) }))))))),
        el('div', { class: 'scroll' }, stats[i] ? statsTable(stats[i]) : '')));
  });
}

function logsOf(board, party, box) {
  box.append(...logsPanel(board, party, current.component, (stream) => { current.logs = stream; }));
}

const PANELS = { metrics: metricsPanel, model: modelPanel, data: dataPanel, logs: logsOf };

async function render(board) {
  stopLogs(current);
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
