// The logs pane: a party's log lines of the component (live while the job runs), filtered
// by lowest level and by text in the browser, and downloaded with the same filter applied
// by the server (/logs.txt). Lines are text nodes, never markup.
import { el, fill } from './common.js';

const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'];
const LEVEL = /^\[[^\]]*\] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) /;
const KEEP = 5000;

export function stopLogs(current) {
  if (current.logs) current.logs.close();
  current.logs = null;
}

/** Each line with its level; a line without one (a traceback's) has the level of the line before. */
function leveled(lines) {
  let level = 0;
  return lines.map((text) => {
    const found = LEVEL.exec(text);
    if (found) level = LEVELS.indexOf(found[1]);
    return { text, level };
  });
}

/** The pane's elements; ``opened`` is told of each stream so the page can close it. */
export function logsPanel(board, party, component, opened) {
  const lines = el('pre', { id: 'log-lines', class: 'logs' });
  const followBox = el('input', { type: 'checkbox', id: 'log-follow', checked: !board.page.job.final });
  const level = el('select', { id: 'log-level' }, el('option', { value: '', text: 'all levels' }),
    ['INFO', 'WARNING', 'ERROR'].map((l) => el('option', { value: l, text: `${l} and above` })));
  const search = el('input', { type: 'search', id: 'log-search', placeholder: 'search', maxlength: 200 });
  const download = el('a', { id: 'log-download', download: '', text: 'download' });
  let received = [];
  let events = null;
  const params = () => new URLSearchParams({ role: party.role, party_id: party.party_id, component });
  const show = () => {
    const floor = level.value ? LEVELS.indexOf(level.value) : 0;
    const needle = search.value.toLowerCase();
    const shown = leveled(received).filter((l) => l.level >= floor && l.text.toLowerCase().includes(needle));
    fill(lines, shown.map((l) => `${l.text}\n`));
    lines.dataset.shown = String(shown.length);
    const q = params();
    if (level.value) q.set('level', level.value);
    if (search.value) q.set('q', search.value);
    download.href = `/board/api/jobs/${encodeURIComponent(board.jobId)}/logs.txt?${q}`;
    if (followBox.checked) lines.scrollTop = lines.scrollHeight;
  };
  const start = () => {
    if (events) events.close();
    received = [];
    show();
    const q = params();
    q.set('follow', followBox.checked ? 'true' : 'false');
    const stream = new EventSource(`/board/api/jobs/${encodeURIComponent(board.jobId)}/logs?${q}`);
    events = stream;
    opened(stream);
    let pending = null; // redraw at most once a frame while lines stream in
    stream.addEventListener('line', (event) => {
      received.push(JSON.parse(event.data));
      if (received.length > KEEP) received = received.slice(-KEEP);
      pending ??= requestAnimationFrame(() => { pending = null; show(); });
    });
    stream.addEventListener('end', () => { stream.close(); show(); lines.dataset.ended = 'true'; });
    stream.addEventListener('error', () => { stream.close(); });
  };
  followBox.addEventListener('change', start);
  level.addEventListener('change', show);
  search.addEventListener('input', show);
  start();
  return [el('div', { class: 'log-tools' }, el('label', {}, followBox, ' follow'), ' ', level, ' ', search, ' ', download),
    lines];
}
