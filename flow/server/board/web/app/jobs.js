// The jobs page: one page of the table at a time (filtered, sorted and counted by the
// server), its filters, sort and page kept in the page's query string; stop, rerun, a note,
// clone into the builder; live lines from the server's event stream (never reloaded).
import {
  api, duration, el, fill, header, parties, showError, statusBadge, when,
} from './common.js';

const FILTERS = ['status', 'role', 'party_id', 'partner', 'since', 'until', 'q'];
const form = document.getElementById('filters');
const body = document.querySelector('#jobs tbody');
const rows = new Map();
const announced = new Set(); // jobs the event stream told of (a reconnect tells them all again)
const view = { sort: 'created', order: 'desc', offset: 0, limit: 50, total: 0 };
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
  for (const key of ['sort', 'order', 'offset', 'limit']) q.set(key, String(view[key]));
  return q;
}

async function act(job, what, payload = {}) {
  showError(null);
  try {
    return await api(`/board/api/jobs/${encodeURIComponent(job.job_id)}/${what}`, { method: 'POST', body: payload });
  } catch (err) {
    showError(err);
    return null;
  }
}

function editNote(job, cell) {
  const box = el('input', { class: 'note-input', value: job.description, maxlength: 2000, size: 24 });
  const save = async () => {
    const fresh = await act(job, 'note', { note: box.value });
    if (fresh) put(fresh);
  };
  box.addEventListener('keydown', (event) => { if (event.key === 'Enter') save(); });
  fill(cell, box, el('button', { class: 'note-save', text: 'Save', onclick: save }),
    el('button', { text: 'Cancel', onclick: () => put(job) }));
  box.focus();
}

function actions(job) {
  const out = [];
  if (!job.final) out.push(el('button', { class: 'stop', text: 'Stop', onclick: () => act(job, 'stop') }));
  if (job.final && job.status !== 'success') {
    out.push(el('button', { class: 'rerun', text: 'Rerun', onclick: () => act(job, 'rerun') }));
  }
  out.push(el('a', { class: 'clone', href: `/builder?job=${encodeURIComponent(job.job_id)}`, text: 'Clone' }));
  return out;
}

function row(job) {
  const progress = el('progress', { max: 100, value: job.progress, title: `${job.progress}%` });
  const notes = el('td', { class: 'description' }, el('span', { class: 'note-text', text: job.description }));
  notes.append(' ', el('button', { class: 'note-edit', text: 'Note', onclick: () => editNote(job, notes) }));
  return el('tr', { dataset: { jobId: job.job_id, status: job.status } },
    el('td', {}, el('a', { href: `/jobs/${encodeURIComponent(job.job_id)}`, class: 'job-link', text: job.job_id })),
    el('td', { class: 'status-cell', title: job.reason || undefined }, statusBadge(job.status)),
    el('td', { text: job.initiator }),
    el('td', { text: parties(job.parties) }),
    el('td', { text: when(job.created) }),
    el('td', { class: 'started', text: when(job.started) }),
    el('td', { class: 'ended', text: when(job.ended) }),
    el('td', { class: 'duration', text: duration(job.duration_s), dataset: { seconds: job.duration_s ?? '' } }),
    el('td', {}, progress, ` ${job.progress}%`),
    notes,
    el('td', {}, actions(job)));
}

function put(job) {
  const fresh = row(job);
  const old = rows.get(job.job_id);
  if (old) old.replaceWith(fresh);
  else body.append(fresh);
  rows.set(job.job_id, fresh);
}

function showPaging() {
  const last = Math.min(view.offset + view.limit, view.total);
  document.getElementById('range').textContent = view.total
    ? `${view.offset + 1}–${last} of ${view.total}` : 'none';
  document.getElementById('prev-page').disabled = view.offset === 0;
  document.getElementById('next-page').disabled = last >= view.total;
  for (const button of document.querySelectorAll('button.sort')) {
    const on = button.dataset.sort === view.sort;
    button.parentElement.setAttribute('aria-sort', on ? (view.order === 'desc' ? 'descending' : 'ascending') : 'none');
    button.textContent = `${button.textContent.replace(/ [▲▼]$/, '')}${on ? (view.order === 'desc' ? ' ▼' : ' ▲') : ''}`;
  }
}

async function load() {
  showError(null);
  const values = filters();
  const search = new URLSearchParams(values);
  for (const key of ['sort', 'order', 'offset', 'limit']) search.set(key, String(view[key]));
  window.history.replaceState(null, '', `/?${search}`);
  try {
    const data = await api(`/board/api/jobs?${query(values)}`);
    rows.clear();
    fill(body);
    data.jobs.forEach(put);
    view.total = data.total;
    if (!data.jobs.length) body.append(el('tr', {}, el('td', { colspan: 11, class: 'muted', text: 'no jobs' })));
    showPaging();
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
    else if (!known && view.offset === 0) { // a job new to this page: ask for the page again, once
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(load, 500);
    }
  });
}

const initial = new URLSearchParams(window.location.search);
for (const key of FILTERS) {
  if (initial.has(key) && form.elements[key]) form.elements[key].value = initial.get(key);
}
view.sort = initial.get('sort') || view.sort;
view.order = initial.get('order') === 'asc' ? 'asc' : 'desc';
view.offset = Math.max(0, Number(initial.get('offset')) || 0);
view.limit = Number(initial.get('limit')) || view.limit;
document.getElementById('page-size').value = String(view.limit);
form.addEventListener('submit', (event) => { event.preventDefault(); view.offset = 0; load(); });
form.addEventListener('reset', () => { view.offset = 0; setTimeout(load, 0); });
for (const button of document.querySelectorAll('button.sort')) {
  button.addEventListener('click', () => {
    view.order = view.sort === button.dataset.sort && view.order === 'desc' ? 'asc' : 'desc';
    view.sort = button.dataset.sort;
    view.offset = 0;
    load();
  });
}
document.getElementById('prev-page').addEventListener('click', () => {
  view.offset = Math.max(0, view.offset - view.limit);
  load();
});
document.getElementById('next-page').addEventListener('click', () => { view.offset += view.limit; load(); });
document.getElementById('page-size').addEventListener('change', (event) => {
  view.limit = Number(event.target.value);
  view.offset = 0;
  load();
});
header().then(async () => { await load(); listen(); }).catch(showError);
