// The Data, Models, Schedules, Audit and Server pages: one renderer per page, chosen by the
// page's path; each draws what the operation of the same name answers (`flow table info`,
// `flow model list`, ...), every value as text.
import {
  api, el, fill, header, showError, when,
} from './common.js';

const $ = (id) => document.getElementById(id);
const page = $('page');

function text(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** A table of `rows` (objects) with `columns` ([key, title] or [key, title, cell(row)]). */
function grid(id, columns, rows, rowAttrs = () => ({})) {
  return el('table', { id, class: 'grid' },
    el('thead', {}, el('tr', {}, columns.map(([, title]) => el('th', { text: title })))),
    el('tbody', {}, rows.map((r) => el('tr', rowAttrs(r), columns.map(([key, , cell]) => el('td', {
      class: `c-${key}`,
    }, cell ? cell(r) : text(r[key])))))));
}

/** Key/value lines of an object; nested objects as JSON. */
function facts(id, obj) {
  return el('table', { id, class: 'grid facts' }, el('tbody', {}, Object.entries(obj || {}).map(([k, v]) => el('tr',
    { dataset: { key: k } }, el('th', { text: k }), el('td', {}, typeof v === 'object' && v !== null
      ? el('pre', { class: 'json', text: JSON.stringify(v, null, 2) }) : text(v))))));
}

function download(name, value) {
  const link = el('a', { download: name, text: name, class: 'download' });
  link.href = URL.createObjectURL(new Blob([`${JSON.stringify(value, null, 2)}\n`], { type: 'application/json' }));
  return link;
}

/** Run `work`; its error (a 403 for the role, a missing table) is shown in `where`. */
async function guarded(where, work) {
  try {
    await work();
  } catch (err) {
    fill(where, el('p', { class: 'error', text: String(err.message || err) }));
  }
}

async function dataPage() {
  const detail = el('section', { id: 'table-detail' });
  const list = el('div');
  const ns = el('input', { id: 'namespace', placeholder: 'namespace' });
  const load = async () => {
    const q = ns.value.trim() ? `?namespace=${encodeURIComponent(ns.value.trim())}` : '';
    const tables = await api(`/board/api/tables${q}`);
    fill(list, grid('tables', [['namespace', 'Namespace'], ['name', 'Name'], ['engine', 'Engine'],
      ['count', 'Rows'], ['open', '', (t) => el('button', { class: 'open-table', text: 'Open', onclick: () => open(t) })]],
    tables, (t) => ({ dataset: { namespace: t.namespace, name: t.name } })));
  };
  const open = async (t) => {
    const path = `/board/api/tables/${encodeURIComponent(t.namespace)}/${encodeURIComponent(t.name)}`;
    const preview = el('div', { id: 'preview' });
    fill(detail, el('h2', { text: `${t.namespace}/${t.name}` }), facts('table-info', await api(path)),
      el('h4', { text: 'First rows' }), preview);
    await guarded(preview, async () => {
      const rows = await api(`${path}/preview?limit=20`);
      fill(preview, el('div', { class: 'scroll' }, el('table', { class: 'grid data-table' },
        el('thead', {}, el('tr', {}, rows.header.map((h) => el('th', { text: h })))),
        el('tbody', {}, rows.rows.map((r) => el('tr', {}, r.map((c) => el('td', { text: c }))))))));
    });
    document.body.dataset.opened = `${t.namespace}/${t.name}`;
  };
  fill(page, el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); load().catch(showError); } },
    el('label', {}, 'Namespace ', ns), el('button', { type: 'submit', text: 'List' })), list, detail);
  await load();
}

async function modelsPage() {
  const deployed = el('section', { id: 'deployed' });
  const deploy = async (m) => {
    const d = await api('/board/api/models/deploy', {
      method: 'POST', body: { model_id: m.model_id, model_version: m.model_version },
    });
    fill(deployed, el('h2', { text: `predict job for ${m.model_version}` }),
      el('p', {}, download('predict_conf.json', d.predict_conf), ' ', download('predict_dsl.json', d.predict_dsl)),
      el('pre', { id: 'predict-conf', class: 'json', text: JSON.stringify(d.predict_conf, null, 2) }));
  };
  const models = await api('/board/api/models');
  fill(page, grid('models', [['model_version', 'Version'], ['model_id', 'Model id'], ['created', 'Created'],
    ['parties', 'Parts held', (m) => m.parties.join(', ')],
    ['components', 'Components', (m) => [...new Set(Object.values(m.components).flatMap(Object.keys))].join(', ')],
    ['deployed', 'Deployed', (m) => (m.deployed ? when(m.deployed.deployed_at) : '')],
    ['deploy', '', (m) => el('button', {
      class: 'deploy', text: 'Deploy', onclick: () => deploy(m).catch(showError),
    })]], models, (m) => ({ dataset: { version: m.model_version } })),
  models.length ? null : el('p', { class: 'muted', text: 'no models in this home' }), deployed);
}

async function schedulesPage() {
  const history = el('section', { id: 'history' });
  const act = async (s, action) => {
    await api(`/board/api/schedules/${encodeURIComponent(s.name)}/${action}`, { method: 'POST', body: {} });
    await draw();
  };
  const show = async (s) => {
    const firings = await api(`/board/api/schedules/${encodeURIComponent(s.name)}/history`);
    const keys = [...new Set(firings.flatMap((f) => Object.keys(f)))];
    fill(history, el('h2', { text: `history of ${s.name}` }),
      grid('firings', keys.map((k) => [k, k]), firings, (f) => ({ dataset: { jobId: f.job_id || '' } })));
  };
  const draw = async () => {
    const all = await api('/board/api/schedules');
    fill(page, grid('schedules', [['name', 'Name'], ['cron', 'Cron'], ['timezone', 'Zone'],
      ['paused', 'Paused'], ['next_fire', 'Next firing', (s) => when(s.next_fire)],
      ['last_job', 'Last job', (s) => (s.last_job ? `${s.last_job.job_id} ${s.last_job.status}` : '')],
      ['promote_if', 'Promote if'],
      ['actions', '', (s) => [
        el('button', { class: s.paused ? 'resume' : 'pause', text: s.paused ? 'Resume' : 'Pause',
          onclick: () => act(s, s.paused ? 'resume' : 'pause').catch(showError) }),
        el('button', { class: 'run-now', text: 'Run now', onclick: () => act(s, 'run-now').catch(showError) }),
        el('button', { class: 'history', text: 'History', onclick: () => show(s).catch(showError) })]]],
    all, (s) => ({ dataset: { name: s.name, paused: String(s.paused) } })),
    all.length ? null : el('p', { class: 'muted', text: 'no schedules' }), history);
    document.body.dataset.drawn = String(Date.now());
  };
  await draw();
}

async function auditPage() {
  const fields = ['job', 'kind', 'party', 'since'];
  const form = el('form', { class: 'filters', id: 'audit-filters' },
    fields.map((f) => el('label', {}, f, el('input', { name: f, size: 14 }))),
    el('label', {}, 'newest', el('input', { name: 'limit', value: '200', size: 5 })),
    el('label', {}, 'with federation traffic', el('input', { name: 'everything', type: 'checkbox', value: 'true' })),
    el('button', { type: 'submit', text: 'Filter' }),
    el('button', { type: 'button', id: 'verify', text: 'Verify chains' }));
  const entries = el('div');
  const verdict = el('section', { id: 'verdict' });
  const load = async () => {
    const q = new URLSearchParams([...new FormData(form)].filter(([, v]) => String(v).trim()));
    const found = await api(`/board/api/audit?${q}`);
    fill(entries, grid('audit', [['time', 'Time'], ['party', 'Party'], ['seq', 'Seq'], ['kind', 'Kind'],
      ['actor', 'Actor'], ['job', 'Job'], ['details', 'Details']], found.slice().reverse(),
    (e) => ({ dataset: { seq: e.seq, kind: e.kind } })));
    document.body.dataset.drawn = String(Date.now());
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); load().catch(showError); });
  form.querySelector('#verify').addEventListener('click', async () => {
    const logs = await api('/board/api/audit/verify').catch(showError);
    fill(verdict, (logs || []).map((log) => el('div', { class: `log ${log.ok ? 'ok' : 'broken'}`, dataset: {
      party: log.party, ok: String(log.ok) } },
    el('p', { text: log.ok ? `party ${log.party}: ${log.entries} entries, chain intact`
      : `party ${log.party}: broken at seq ${log.first_bad_seq}: ${log.reason}` }),
    log.first_bad ? el('pre', { class: 'json first-bad', text: JSON.stringify(log.first_bad, null, 2) }) : null)));
  });
  fill(page, form, verdict, entries);
  await load();
}

async function serverPage() {
  const status = await api('/board/api/server');
  fill(page, facts('server', {
    version: status.version, mode: status.mode, transport: status.transport, store: status.store,
    engines: status.engines, server: status.server, home: status.home, service_conf: status.service_conf,
  }));
}

//: the page of each path
const PAGES = {
  '/data': ['Data', dataPage],
  '/models': ['Models', modelsPage],
  '/schedules': ['Schedules', schedulesPage],
  '/audit': ['Audit', auditPage],
  '/server': ['Server', serverPage],
};

async function main() {
  await header();
  const [title, draw] = PAGES[window.location.pathname];
  $('title').textContent = title;
  document.title = `fedweave board: ${title.toLowerCase()}`;
  await guarded(page, draw);
  document.body.dataset.loaded = 'true';
}

main().catch(showError);
