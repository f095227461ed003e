// What every board page shares: the JSON API with the session's CSRF token, and building
// elements whose content is always text (never HTML: every value may come from a user).

let session = null;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET or POST the board's API; a 401 goes back to the login page. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = (await currentSession()).csrf;
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    window.location.assign('/login');
    throw new ApiError(401, 'not logged in');
  }
  const answer = await res.json().catch(() => ({ retmsg: res.statusText }));
  if (!res.ok || answer.retcode !== 0) throw new ApiError(res.status, answer.retmsg || res.statusText);
  return answer.data;
}

export async function currentSession() {
  if (!session) session = await api('/board/api/session');
  return session;
}

/** An element with attributes and children; strings become text nodes, never markup. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return node;
}

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace('T', ' ').slice(0, 19);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m ${s % 60}s` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

export function parties(map) {
  return Object.entries(map || {}).map(([role, ids]) => `${role} ${ids.join(',')}`).join('; ');
}

export function statusBadge(status) {
  return el('span', { class: `status s-${status}`, text: status });
}

/** The board's pages, in the header of each. */
export const PAGES = [['/', 'Jobs'], ['/builder', 'Builder'], ['/data', 'Data'], ['/models', 'Models'],
  ['/schedules', 'Schedules'], ['/audit', 'Audit'], ['/server', 'Server']];

/** The header of every page: who is logged in, the pages, and a way out. */
export async function header() {
  const me = await currentSession();
  const out = el('button', {
    id: 'logout', text: 'Log out',
    onclick: async () => { await api('/board/logout', { method: 'POST' }); window.location.assign('/login'); },
  });
  const here = window.location.pathname;
  const nav = el('nav', {}, PAGES.map(([href, label]) => el('a', { href, text: label, class: href === here ? 'here' : null })));
  fill(document.getElementById('top'), el('a', { href: '/', text: 'fedweave board' }), nav,
    el('span', { class: 'muted', text: ` ${me.user} (${me.role})${me.party_id ? ` · party ${me.party_id}` : ''} ` }),
    out);
  return me;
}

export function showError(err) {
  const node = document.getElementById('message');
  if (node) node.textContent = err ? String(err.message || err) : '';
}
