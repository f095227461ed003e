// The builder's pipeline as data, and the two FATE DSL v2 files it is written to and read
// from: dsl.json (components, their modules, inputs and outputs) and conf.json (initiator,
// roles, job parameters, component parameters in the common block and per party block).
// Nothing here touches the page, so a file written by hand reads back to the same pipeline.

/** FATE's component names: `HeteroLR` -> `hetero_lr`, `DataTransform` -> `data_transform`. */
export function snake(module) {
  return module.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2').toLowerCase();
}

export class Pipeline {
  constructor(modules) {
    this.modules = new Map(modules.map((m) => [m.module, m]));
    this.nodes = new Map(); // name -> { name, module }
    this.edges = []; // { source, target, kind: 'data'|'model', port }
    this.params = new Map(); // name -> { scope ('common' | 'role:key') -> { dotted name -> value } }
    this.roles = { guest: [], host: [], arbiter: [] };
    this.initiator = { role: 'guest', party_id: '' };
    this.jobParameters = {};
  }

  freeName(module) {
    const base = snake(module);
    let i = 0;
    while (this.nodes.has(`${base}_${i}`)) i += 1;
    return `${base}_${i}`;
  }

  add(module, name = this.freeName(module)) {
    if (!this.modules.has(module)) throw new Error(`no module ${module} on this server`);
    if (this.nodes.has(name)) throw new Error(`a component named ${name} is already on the canvas`);
    this.nodes.set(name, { name, module });
    this.params.set(name, { common: {} });
    return name;
  }

  remove(name) {
    this.nodes.delete(name);
    this.params.delete(name);
    this.edges = this.edges.filter((e) => e.source !== name && e.target !== name);
  }

  /** Why an edge of `kind` from `source` to `target` is refused, or null when it is not. */
  refusal(source, target, kind) {
    const from = this.modules.get(this.nodes.get(source)?.module);
    const to = this.modules.get(this.nodes.get(target)?.module);
    if (!from || !to) return 'connect two components';
    if (source === target) return `${source} cannot feed itself`;
    if (this.edges.some((e) => e.source === source && e.target === target && e.kind === kind)) {
      return `${source} already feeds ${target} ${kind}`;
    }
    if (kind === 'data' && !from.output_data) return `${source} (${from.module}) has no data output`;
    if (kind === 'data' && !to.input_data.length) return `${target} (${to.module}) takes no data input`;
    if (kind === 'model' && !from.output_model) return `${source} (${from.module}) has no model output`;
    if (kind === 'model' && !to.accepts_model) return `${target} (${to.module}) takes no model input`;
    return null;
  }

  /** Add an edge (its data port: the target's first one not yet fed); throws the refusal. */
  connect(source, target, kind, port) {
    const refused = this.refusal(source, target, kind);
    if (refused) throw new Error(refused);
    const to = this.modules.get(this.nodes.get(target).module);
    const used = new Set(this.edges.filter((e) => e.target === target && e.kind === 'data').map((e) => e.port));
    const chosen = port || (kind === 'model' ? 'model' : to.input_data.find((p) => !used.has(p)) || to.input_data[0]);
    const edge = { source, target, kind, port: chosen };
    this.edges.push(edge);
    return edge;
  }

  setParam(name, scope, field, value) {
    const scopes = this.params.get(name);
    scopes[scope] = scopes[scope] || {};
    if (value === undefined) delete scopes[scope][field];
    else scopes[scope][field] = value;
  }

  partyId(text) {
    return /^\d+$/.test(String(text)) ? Number(text) : String(text);
  }

  /** The two files, as FATE's DSL v2 writes them. */
  toFiles() {
    const components = {};
    for (const { name, module } of this.nodes.values()) {
      const m = this.modules.get(module);
      const body = { module };
      const data = {};
      const model = [];
      for (const e of this.edges.filter((x) => x.target === name)) {
        if (e.kind === 'data') (data[e.port] = data[e.port] || []).push(`${e.source}.data`);
        else model.push(`${e.source}.model`);
      }
      if (Object.keys(data).length || model.length) {
        body.input = {};
        if (Object.keys(data).length) body.input.data = data;
        if (model.length) body.input.model = model;
      }
      const output = {};
      if (m.output_data) output.data = ['data'];
      if (m.output_model) output.model = ['model'];
      if (Object.keys(output).length) body.output = output;
      components[name] = body;
    }
    const role = {};
    for (const [r, ids] of Object.entries(this.roles)) if (ids.length) role[r] = ids.map((i) => this.partyId(i));
    const common = {};
    const perRole = {};
    for (const [name, scopes] of this.params) {
      for (const [scope, values] of Object.entries(scopes)) {
        if (!Object.keys(values).length) continue;
        const nested = unflatten(values);
        if (scope === 'common') common[name] = nested;
        else {
          const [r, key] = scope.split(':');
          perRole[r] = perRole[r] || {};
          perRole[r][key] = perRole[r][key] || {};
          perRole[r][key][name] = nested;
        }
      }
    }
    const conf = {
      dsl_version: 2,
      initiator: { role: this.initiator.role, party_id: this.partyId(this.initiator.party_id) },
      role,
    };
    if (Object.keys(this.jobParameters).length) conf.job_parameters = { common: this.jobParameters };
    conf.component_parameters = { common, role: perRole };
    return { dsl: { components }, conf };
  }

  /** Read two files (a past job's, or written by hand) into this pipeline. */
  load(conf, dsl) {
    this.nodes.clear();
    this.params.clear();
    this.edges = [];
    for (const [name, body] of Object.entries(dsl.components || {})) this.add(body.module, name);
    for (const [name, body] of Object.entries(dsl.components || {})) {
      const input = body.input || {};
      for (const [port, refs] of Object.entries(input.data || {})) {
        for (const ref of refs) this.edges.push({ source: ref.split('.')[0], target: name, kind: 'data', port });
      }
      for (const key of ['model', 'isometric_model']) {
        for (const ref of input[key] || []) {
          this.edges.push({ source: ref.split('.')[0], target: name, kind: 'model', port: key });
        }
      }
    }
    this.roles = { guest: [], host: [], arbiter: [] };
    for (const [r, ids] of Object.entries(conf.role || {})) this.roles[r] = ids.map(String);
    this.initiator = { role: conf.initiator?.role || 'guest', party_id: String(conf.initiator?.party_id ?? '') };
    this.jobParameters = conf.job_parameters?.common || {};
    const cp = conf.component_parameters || {};
    for (const [name, values] of Object.entries(cp.common || {})) this.loadScope(name, 'common', values);
    for (const [r, blocks] of Object.entries(cp.role || {})) {
      for (const [key, byName] of Object.entries(blocks || {})) {
        for (const [name, values] of Object.entries(byName || {})) this.loadScope(name, `${r}:${key}`, values);
      }
    }
  }

  loadScope(name, scope, values) {
    const node = this.nodes.get(name);
    if (!node) return; // the validator names a parameter block for a component the DSL lacks
    const known = new Set(this.modules.get(node.module).parameters.map((p) => p.name));
    this.params.get(name)[scope] = flatten(values, known);
  }
}

/** `{a: {b: 1}}` -> `{"a.b": 1}` where `a` is a settings block of the module (other objects stay whole). */
export function flatten(values, known, prefix = '') {
  const out = {};
  for (const [key, value] of Object.entries(values || {})) {
    const name = prefix + key;
    const block = value && typeof value === 'object' && !Array.isArray(value)
      && [...known].some((k) => k.startsWith(`${name}.`));
    if (block) Object.assign(out, flatten(value, known, `${name}.`));
    else out[name] = value;
  }
  return out;
}

export function unflatten(values) {
  const out = {};
  for (const [dotted, value] of Object.entries(values)) {
    const parts = dotted.split('.');
    let at = out;
    for (const part of parts.slice(0, -1)) {
      if (!at[part] || typeof at[part] !== 'object') at[part] = {};
      at = at[part];
    }
    at[parts[parts.length - 1]] = value;
  }
  return out;
}
