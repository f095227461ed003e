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
