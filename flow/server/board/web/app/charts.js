// ECharts of a component's metrics: ROC and KS (Evaluation) and loss per iteration.
// Chart text is drawn on a canvas; tooltips show numbers only.

function chart(node, option) {
  const instance = window.echarts.init(node, null, { renderer: 'canvas' });
  instance.setOption({ animation: false, grid: { left: 55, right: 20, top: 40, bottom: 45 }, ...option });
  return instance;
}

const axis = (name, extra = {}) => ({ type: 'value', name, nameLocation: 'middle', nameGap: 28, ...extra });

export function rocChart(node, roc, auc) {
  const points = roc.fpr.map((x, i) => [x, roc.tpr[i]]);
  return chart(node, {
    title: { text: `ROC (AUC ${Number(auc).toFixed(4)})`, left: 'center', textStyle: { fontSize: 13 } },
    tooltip: { trigger: 'axis' },
    xAxis: axis('false positive rate', { min: 0, max: 1 }),
    yAxis: axis('true positive rate', { min: 0, max: 1 }),
    series: [
      { name: 'ROC', type: 'line', showSymbol: false, data: points, areaStyle: { opacity: 0.15 } },
      { name: 'chance', type: 'line', showSymbol: false, data: [[0, 0], [1, 1]], lineStyle: { type: 'dashed' } },
    ],
  });
}

export function ksChart(node, ks) {
  // thresholds fall from the highest score; the first (no threshold) stands for 1
  const at = ks.threshold.map((t) => (t === null ? 1 : t));
  return chart(node, {
    title: { text: `KS ${Number(ks.ks).toFixed(4)}`, left: 'center', textStyle: { fontSize: 13 } },
    tooltip: { trigger: 'axis' },
    legend: { top: 20, right: 10 },
    xAxis: axis('threshold', { inverse: true, min: 0, max: 1 }),
    yAxis: axis('rate', { min: 0, max: 1 }),
    series: [
      { name: 'tpr', type: 'line', showSymbol: false, data: at.map((t, i) => [t, ks.tpr[i]]) },
      { name: 'fpr', type: 'line', showSymbol: false, data: at.map((t, i) => [t, ks.fpr[i]]) },
    ],
  });
}

export function lossChart(node, iterations, loss) {
  return chart(node, {
    title: { text: 'loss per iteration', left: 'center', textStyle: { fontSize: 13 } },
    tooltip: { trigger: 'axis' },
    xAxis: axis('iteration', { minInterval: 1 }),
    yAxis: axis('loss', { scale: true }),
    series: [{ name: 'loss', type: 'line', data: loss.map((v, i) => [iterations[i], v]) }],
  });
}

/** The loss curve among a task's metrics (a ``loss_curve`` or a ``loss`` list), or null. */
export function findLoss(metrics) {
  for (const values of Object.values(metrics)) {
    const curve = values.loss_curve;
    if (curve && Array.isArray(curve.loss)) return { iterations: curve.iteration || curve.loss.map((_, i) => i), loss: curve.loss };
  }
  for (const values of Object.values(metrics)) {
    if (Array.isArray(values.loss) && values.loss.every((v) => typeof v === 'number')) {
      return { iterations: values.loss.map((_, i) => i), loss: values.loss };
    }
  }
  return null;
}

/** A line chart of [x, y] points per named series (PR, gain, lift, validation curves). */
export function linesChart(node, title, xName, yName, series, extra = {}) {
  return chart(node, {
    title: { text: title, left: 'center', textStyle: { fontSize: 13 } },
    tooltip: { trigger: 'axis' },
    legend: { top: 20, right: 10 },
    xAxis: axis(xName, extra.x || {}),
    yAxis: axis(yName, extra.y || { scale: true }),
    series: series.map((s) => ({ type: 'line', showSymbol: s.points.length < 30, ...s, data: s.points })),
  });
}

export function prChart(node, pr) {
  return linesChart(node, 'precision-recall', 'recall', 'precision',
    [{ name: 'precision', points: pr.recall.map((r, i) => [r, pr.precision[i]]) }],
    { x: { min: 0, max: 1 }, y: { min: 0, max: 1 } });
}

export function gainChart(node, gain) {
  return linesChart(node, 'cumulative gain', 'share of rows called positive', 'share of positives found', [
    { name: 'gain', points: gain.fraction.map((f, i) => [f, gain.gain[i]]) },
    { name: 'chance', points: [[0, 0], [1, 1]], lineStyle: { type: 'dashed' } },
  ], { x: { min: 0, max: 1 }, y: { min: 0, max: 1 } });
}

export function liftChart(node, lift) {
  return linesChart(node, 'lift', 'share of rows called positive', 'lift', [
    { name: 'lift', points: lift.fraction.map((f, i) => [f, lift.lift[i]]) },
    { name: 'chance', points: [[0, 1], [1, 1]], lineStyle: { type: 'dashed' } },
  ], { x: { min: 0, max: 1 } });
}

/** Confusion counts as a 2×2 heatmap: rows the true label, columns the called one. */
export function confusionChart(node, c) {
  const t = c.threshold === null ? '∞' : Number(c.threshold).toFixed(4);
  const cells = [[0, 1, c.tn], [1, 1, c.fp], [0, 0, c.fn], [1, 0, c.tp]];
  return chart(node, {
    title: { text: `confusion matrix at threshold ${t}`, left: 'center', textStyle: { fontSize: 13 } },
    grid: { left: 90, right: 20, top: 40, bottom: 45 },
    xAxis: { type: 'category', data: ['called 0', 'called 1'] },
    yAxis: { type: 'category', data: ['label 1', 'label 0'] },
    visualMap: { show: false, min: 0, max: Math.max(c.tn, c.fp, c.fn, c.tp, 1), inRange: { color: ['#f3f6fa', '#2f7fd8'] } },
    series: [{ name: 'rows', type: 'heatmap', data: cells, label: { show: true } }],
  });
}

/** Feature importance as horizontal bars, the most important on top. */
export function importanceChart(node, entries) {
  const rows = [...entries].reverse();
  node.style.height = `${Math.max(200, 24 * rows.length + 80)}px`;
  return chart(node, {
    title: { text: 'feature importance', left: 'center', textStyle: { fontSize: 13 } },
    grid: { left: 160, right: 30, top: 40, bottom: 40 },
    tooltip: { trigger: 'axis' },
    xAxis: { type: 'value' },
    yAxis: { type: 'category', data: rows.map((e) => (e.feature ? `${e.party} ${e.feature}` : e.party)) },
    series: [{ name: 'importance', type: 'bar', data: rows.map((e) => e.importance) }],
  });
}

/** One tree of an ensemble (ECharts' tree series), nodes as given by ``toNode``. */
export function treeChart(node, root, title) {
  return chart(node, {
    title: { text: title, left: 'center', textStyle: { fontSize: 13 } },
    tooltip: { trigger: 'item' },
    series: [{
      type: 'tree', data: [root], orient: 'TB', top: 50, bottom: 60, left: 40, right: 40,
      initialTreeDepth: -1, expandAndCollapse: false, symbolSize: 8,
      label: { position: 'top', fontSize: 10 }, leaves: { label: { position: 'bottom' } },
    }],
  });
}
