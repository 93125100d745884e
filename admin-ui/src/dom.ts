// A tiny element builder. Text always goes in as text nodes (never innerHTML), so values from
// the API cannot inject markup, and the page runs under a strict CSP with Trusted Types.

export type Child = Node | string | number | null | undefined | false | Child[];
type Listener = (event: Event) => void;
export type Attrs = Record<string, unknown> & { on?: Record<string, Listener> };

/** Properties set as DOM properties rather than attributes (live state of form controls). */
const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'indeterminate']);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'on') {
      for (const [event, listener] of Object.entries(value as Record<string, Listener>))
        el.addEventListener(event, listener);
    } else if (PROPERTIES.has(name)) {
      (el as unknown as Record<string, unknown>)[name] = value;
      // form.reset() goes back to the defaults: make the initial state the default too.
      if (name === 'value' && el instanceof HTMLInputElement) el.defaultValue = String(value);
      if (name === 'checked' && el instanceof HTMLInputElement) el.defaultChecked = Boolean(value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else if (value !== undefined && value !== null && value !== false) {
      el.setAttribute(name === 'className' ? 'class' : name, String(value));
    }
  }
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(
  tag: string,
  attrs: Record<string, string | number> = {},
  ...children: Child[]
) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

let nextId = 0;
export function uid(prefix = 'f'): string {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

// ---- formatting ---------------------------------------------------------------------------

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function num(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : integer.format(n);
}

export function dec(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : decimal.format(n);
}

export function pct(rate: number | null | undefined): string {
  return rate === null || rate === undefined ? '—' : `${decimal.format(rate * 100)} %`;
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  return n >= 1000 ? `${decimal.format(n / 1000)} s` : `${decimal.format(n)} ms`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${decimal.format(n / 1024)} KiB`;
  return `${decimal.format(n / 1024 ** 2)} MiB`;
}

/** A <time> with the local date and time, the ISO value in datetime, and "x ago" as a title. */
export function when(iso: string | null | undefined): Node | string {
  if (!iso) return '—';
  const date = new Date(iso);
  return h('time', { datetime: iso, title: ago(date) }, date.toLocaleString());
}

export function ago(date: Date): string {
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  const future = seconds < 0;
  const s = Math.abs(seconds);
  const text =
    s < 60
      ? `${s} s`
      : s < 3600
        ? `${Math.round(s / 60)} min`
        : s < 86400
          ? `${Math.round(s / 3600)} h`
          : `${Math.round(s / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}
