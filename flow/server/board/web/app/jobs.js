// The jobs page: the table, its filters (kept in the page's query string), stop and rerun,
// and live lines from the server's event stream (the page itself is never reloaded).
import {
  api, duration, el, fill, header, parties, showError, statusBadge, when,
} from './common.js';

const FILTERS = ['status', 'role', 'party_id', 'since', 'until', 'q'];
const form = document.getElementById('filters');
const body = document.querySelector('#jobs tbody');
const rows = new Map();
const announced = new Set(); // jobs the event stream told of (a reconnect tells them all again)
let reloadTimer = null;

function filters() {
  const data = new FormData(form);
  const out = {};
  for (const key of FILTERS) {
    const value = String(data.get(key) || '').trim();
    if (value) out[key] = value;
  }
  return out;
}

function query(values) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(values)) {
    if (key === 'until') { // the chosen day is included: ask for jobs created before the next one
      const next = new Date(`${value}T00:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      q.set(key, next.toISOString().slice(0, 10));
    } else q.set(key, value);
  }
  return q;
}

async function act(job, what) {
  showError(null);
  try {
    await api(`/board/api/jobs/${encodeURIComponent(job.job_id)}/${what}`, { method: 'POST', body: {} });
  } catch (err) {
    showError(err);
  }
}

function actions(job) {
  const out = [];
  if (!job.final) out.push(el('button', { class: 'stop', text: 'Stop', onclick: () => act(job, 'stop') }));
  if (job.final && job.status !== 'success') {
    out.push(el('button', { class: 'rerun', text: 'Rerun', onclick: () => act(job, 'rerun') }));
  }
  return out;
}

function row(job) {
  const progress = el('progress', { max: 100, value: job.progress, title: `${job.progress}%` });
  return el('tr', { dataset: { jobId: job.job_id, status: job.status } },
    el('td', {}, el('a', { href: `/jobs/${encodeURIComponent(job.job_id)}`, class: 'job-link', text: job.job_id })),
    el('td', { class: 'status-cell', title: job.reason || undefined }, statusBadge(job.status)),
    el('td', { text: job.initiator }),
    el('td', { text: parties(job.parties) }),
    el('td', { text: when(job.created) }),
    el('td', { text: when(job.started) }),
    el('td', { text: when(job.ended) }),
    el('td', { text: duration(job.duration_s) }),
    el('td', {}, progress, ` ${job.progress}%`),
    el('td', { class: 'description', text: job.description }),
    el('td', {}, actions(job)));
}

function put(job) {
  const fresh = row(job);
  const old = rows.get(job.job_id);
  if (old) old.replaceWith(fresh);
  else body.append(fresh);
  rows.set(job.job_id, fresh);
}

async function load() {
  showError(null);
  const values = filters();
  const search = new URLSearchParams(values).toString();
  window.history.replaceState(null, '', search ? `/?${search}` : '/');
  try {
    const data = await api(`/board/api/jobs?${query(values)}`);
    rows.clear();
    fill(body);
    data.jobs.forEach(put);
    if (!data.jobs.length) body.append(el('tr', {}, el('td', { colspan: 11, class: 'muted', text: 'no jobs' })));
    document.body.dataset.loaded = String(Date.now());
  } catch (err) {
    showError(err);
  }
}

function listen() {
  const live = document.getElementById('live');
  const events = new EventSource('/board/api/events');
  events.addEventListener('open', () => { live.textContent = 'live'; });
  events.addEventListener('error', () => { live.textContent = 'reconnecting…'; });
  events.addEventListener('job', (event) => {
    const job = JSON.parse(event.data);
    const known = announced.has(job.job_id);
    announced.add(job.job_id);
    if (rows.has(job.job_id)) put(job);
    else if (!known) { // a job new to this page: ask for the filtered list again, once
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(load, 500);
    }
  });
}

const initial = new URLSearchParams(window.location.search);
for (const key of FILTERS) {
  if (initial.has(key) && form.elements[key]) form.elements[key].value = initial.get(key);
}
form.addEventListener('submit', (event) => { event.preventDefault(); load(); });
form.addEventListener('reset', () => setTimeout(load, 0));
header().then(async () => { await load(); listen(); }).catch(showError);
