// A component's model on its own party's board, one view per kind of model: linear
// weights per own feature, SecureBoost trees and importance, binning splits with WOE/IV,
// selection kept/dropped with the filter that dropped each, scale parameters. Anything
// else (and the rest of each model) is shown as JSON. Every name and value is text.
import { el } from './common.js';
import { importanceChart, treeChart } from './charts.js';

const fmt = (v) => (v === null || v === undefined ? '' : typeof v === 'number' ? String(v) : JSON.stringify(v));

function table(id, headers, rows) {
  return el('table', { class: 'grid', id },
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { text: h })))),
    el('tbody', {}, rows));
}

function weights(model) {
  const rows = model.header.map((name, i) => el('tr', { dataset: { feature: name } }, el('td', { text: name }),
    el('td', { class: 'weight', text: JSON.stringify(model.weights[i]) })));
  if (model.intercept !== undefined) {
    rows.push(el('tr', { dataset: { feature: '(intercept)' } }, el('td', { text: '(intercept)' }),
      el('td', { class: 'weight', text: JSON.stringify(model.intercept) })));
  }
  return [table('weights-table', ['feature', 'weight'], rows)];
}

/** A tree's nodes as ECharts' nested data: the owner's splits with feature and threshold,
 * another party's as that party only, leaves with their weights. */
export function treeData(tree, splits, own) {
  const toNode = (id) => {
    const n = tree.nodes[id];
    if (n.party === null || n.party === undefined) {
      return { name: `leaf ${Number(n.weight).toPrecision(4)}`, value: n.weight, nodeId: n.id, leaf: true };
    }
    const split = n.party === own ? splits[n.split_id] : null;
    const owner = n.party === 'guest' ? 'guest' : `host ${n.party}`;
    const name = split ? `${split.feature} ≤ ${Number(split.threshold).toPrecision(6)}` : `${owner} split`;
    return { name, nodeId: n.id, party: n.party, feature: split ? split.feature : null,
      threshold: split ? split.threshold : null, children: [toNode(n.left), toNode(n.right)] };
  };
  return toNode(0);
}

function secureboost(model, party, box, board) {
  const parts = [];
  if (Array.isArray(model.feature_importance) && model.feature_importance.length) {
    const node = el('div', { class: 'chart', id: 'chart-importance' });
    parts.push(node);
    queueMicrotask(() => { board.charts.importance = importanceChart(node, model.feature_importance); });
  }
  const splits = model.splits || [];
  parts.push(el('h4', { text: `own splits of ${party.role} ${party.party_id}` }),
    table('splits-table', ['split', 'feature', 'threshold', 'missing goes left'], splits.map((s, i) => el('tr', {},
      el('td', { text: String(i) }), el('td', { text: s.feature }), el('td', { text: fmt(s.threshold) }),
      el('td', { text: fmt(s.missing_left) })))));
  const trees = model.trees || [];
  board.charts.trees = [];
  trees.forEach((tree, i) => {
    const node = el('div', { class: 'chart tree-chart', id: `chart-tree-${i}` });
    parts.push(node);
    queueMicrotask(() => {
      board.charts.trees[i] = treeChart(node, treeData(tree, splits, party.role),
        `tree ${i}${model.tree_dim > 1 ? ` (class ${tree.dim})` : ''}`);
    });
  });
  return parts;
}

function binning(model) {
  const results = model.binning_result || {};
  const rows = Object.entries(results).map(([feature, r]) => el('tr', { dataset: { feature } },
    el('td', { text: feature }), el('td', { class: 'iv', text: fmt(r.iv) }),
    el('td', { class: 'split-points', text: fmt(r.split_points) }), el('td', { class: 'woe', text: fmt(r.woe_array) }),
    el('td', { text: fmt(r.iv_array) }), el('td', { text: fmt(r.count_array) })));
  const parts = [table('binning-table', ['feature', 'IV', 'split points', 'WOE per bin', 'IV per bin', 'rows per bin'],
    rows)];
  for (const [host, res] of Object.entries(model.host_results || {})) {
    parts.push(el('h4', { text: `host ${host} (anonymous columns: IV only)` }),
      table(`binning-host-${host}`, ['column', 'IV', 'WOE per bin'], Object.entries(res).map(([c, r]) => el('tr', {},
        el('td', { text: c }), el('td', { text: fmt(r.iv) }), el('td', { text: fmt(r.woe_array) })))));
  }
  return parts;
}

function selection(model) {
  const dropped = {};
  for (const step of model.filter_results || []) for (const c of step.filtered_out) dropped[c] ??= step.method;
  const kept = new Set(model.left_cols || []);
  const rows = (model.select_cols || model.header || []).map((c) => el('tr',
    { dataset: { column: c, kept: String(kept.has(c)) } }, el('td', { text: c }),
    el('td', { text: kept.has(c) ? 'kept' : 'dropped' }), el('td', { class: 'filter', text: dropped[c] || '' })));
  const parts = [table('selection-table', ['column', 'result', 'dropped by'], rows)];
  for (const [host, cols] of Object.entries(model.host_left_cols || {})) {
    parts.push(el('p', { text: `host ${host} keeps: ${cols.join(', ')}` }));
  }
  return parts;
}

function scale(model) {
  const cols = model.columns || model.header || [];
  const arrays = Object.entries(model).filter(([k, v]) => Array.isArray(v) && v.length === cols.length
    && !['columns', 'header'].includes(k) && v.every((x) => x === null || typeof x === 'number'));
  const rows = cols.map((c, i) => el('tr', { dataset: { column: c } }, el('td', { text: c }),
    arrays.map(([k, v]) => el('td', { dataset: { param: k }, text: fmt(v[i]) }))));
  return [el('p', { text: `method ${model.method || ''}` }), table('scale-table', ['column', ...arrays.map(([k]) => k)], rows)];
}

const isLinear = (m) => Array.isArray(m.header) && Array.isArray(m.weights) && m.header.length === m.weights.length;

/** module -> [view, the keys the view shows (left out of the JSON below it)] */
const VIEWS = {
  HeteroSecureBoost: [secureboost, ['trees', 'splits', 'feature_importance']],
  HeteroFastSecureBoost: [secureboost, ['trees', 'splits', 'feature_importance']],
  HomoSecureBoost: [secureboost, ['trees', 'splits', 'feature_importance']],
  HeteroFeatureBinning: [binning, ['binning_result', 'host_results']],
  HeteroFeatureSelection: [selection, ['filter_results', 'left_cols', 'host_left_cols']],
  FeatureScale: [scale, []],
};

/** The views of ``model`` for a component of ``module`` and the JSON of what they leave out. */
export function modelView(module, model, party, box, board) {
  let view = VIEWS[module];
  if (!view && isLinear(model)) view = [weights, ['header', 'weights', 'intercept']];
  if (!view) return [el('pre', { class: 'json', text: JSON.stringify(model, null, 2) })];
  const [draw, shown] = view;
  const rest = Object.fromEntries(Object.entries(model).filter(([k]) => !shown.includes(k)));
  return [el('h4', { text: `model of ${party.role} ${party.party_id}` }), ...draw(model, party, box, board),
    el('pre', { class: 'json', text: JSON.stringify(rest, null, 2) })];
}
