// The parameter form of one component, generated from its module's pydantic schema as the
// server describes it (`flow module describe`): one field per parameter (nested settings as
// dotted names under their block's heading), its default as placeholder, enums as choices,
// bounds as a hint. It edits one party block at a time: `common` or one role's party.
import { el, fill } from './common.js';

const UNSET = '';

function isBlock(param, params) {
  return params.some((p) => p.name.startsWith(`${param.name}.`));
}

function hint(param) {
  const parts = [param.type];
  if (Array.isArray(param.allowed)) parts.push(`one of ${param.allowed.map((v) => JSON.stringify(v)).join(', ')}`);
  else if (param.allowed) parts.push(param.allowed);
  if (param.note) parts.push(param.note);
  return parts.join(' · ');
}

/** What a field's text means: text for a string parameter, else JSON where it parses. */
function parse(param, text) {
  if (text === UNSET) return undefined;
  if (/^(str|str \| null)$/.test(param.type)) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text; // the validator says what is wrong with it, on this field
  }
}

function shown(value) {
  if (value === undefined) return UNSET;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function input(param, value, onChange) {
  const id = `param-${param.name}`;
  const choices = Array.isArray(param.allowed) ? param.allowed
    : /^bool( \| null)?$/.test(param.type) ? [true, false] : null;
  if (choices) {
    const select = el('select', { id, name: param.name, onchange: () => onChange(select.value === UNSET
      ? undefined : JSON.parse(select.value)) },
    el('option', { value: UNSET, text: `default (${JSON.stringify(param.default)})` }),
    choices.map((c) => el('option', { value: JSON.stringify(c), text: String(c) })));
    select.value = value === undefined ? UNSET : JSON.stringify(value);
    return select;
  }
  const box = el('input', {
    id, name: param.name, value: shown(value), spellcheck: 'false',
    placeholder: param.required ? 'required' : param.default === null ? '' : shown(param.default),
    onchange: () => onChange(parse(param, box.value.trim())),
  });
  return box;
}

/** The form for `module`'s parameters in one party block: `values` its dotted values, `onChange(field, value)`. */
export function parameterForm(module, values, onChange) {
  const params = module.parameters;
  return el('div', { class: 'param-fields' }, params.map((param) => {
    const block = isBlock(param, params);
    const label = el('label', { for: `param-${param.name}`, class: 'param-name' },
      param.name, param.required ? el('span', { class: 'required', text: ' *' }) : null);
    const depth = param.name.split('.').length - 1;
    const body = block ? [el('span', { class: 'muted', text: param.description || 'settings' })]
      : [input(param, values[param.name], (value) => onChange(param.name, value)),
        el('span', { class: 'hint muted', text: hint(param) })];
    return el('div', { class: 'field', dataset: { field: param.name, block: String(block) }, style: `margin-left:${depth}em` },
      label, ...body, el('div', { class: 'field-problem', role: 'alert' }));
  }));
}

/**
 * Show each problem on the field it names (a leaf also takes what is wrong inside its value);
 * the problems placed, so the others can be shown on the component.
 */
export function markProblems(form, problems) {
  const placed = new Set();
  for (const field of form.querySelectorAll('.field')) {
    const name = field.dataset.field;
    const own = problems.filter((p) => p.section === 'parameters' && p.field
      && (p.field === name || (field.dataset.block === 'false' && p.field.startsWith(`${name}.`))));
    own.forEach((p) => placed.add(p));
    field.classList.toggle('has-problem', own.length > 0);
    fill(field.querySelector('.field-problem'), own.map((p) => el('div', { text: p.line })));
  }
  return placed;
}

/** The party blocks a component's parameters can be set in: common, then each role's parties. */
export function scopes(module, roles) {
  const out = [{ value: 'common', label: 'common (every party)' }];
  for (const role of module.roles) {
    (roles[role] || []).forEach((id, i) => out.push({ value: `${role}:${i}`, label: `${role} ${i} (party ${id})` }));
  }
  return out;
}

export function scopeSelect(module, roles, current, onChange) {
  const select = el('select', { id: 'param-scope', onchange: () => onChange(select.value) },
    scopes(module, roles).map((s) => el('option', { value: s.value, text: s.label })));
  select.value = current;
  if (select.value !== current) select.value = 'common';
  return el('label', {}, 'Parameters for ', select);
}
