import { ApiFailure, onSignedOut } from './api';
import { append, Child, h, replace, uid } from './dom';

// ---- messages -------------------------------------------------------------------------------

/** Readable text for any failure, with the request id operators can grep the logs for. */
export function describe(err: unknown): string {
  if (err instanceof ApiFailure) {
    const where = err.param ? ` (${err.param})` : '';
    const id = err.requestId ? ` — request ${err.requestId}` : '';
    return `${err.message}${where}${id}`;
  }
  return err instanceof Error ? err.message : String(err);
}

let noticeRegion: HTMLElement | undefined;

/** The polite live region every page announces results in (created once by the shell). */
export function noticeArea(): HTMLElement {
  noticeRegion ??= h('div', { class: 'notices', role: 'status', 'aria-live': 'polite' });
  return noticeRegion;
}

const MAX_NOTICES = 3;

export function notify(message: string): void {
  const item = h('p', { class: 'notice' }, message);
  const area = noticeArea();
  area.append(item);
  while (area.childElementCount > MAX_NOTICES) area.firstElementChild?.remove();
  window.setTimeout(() => item.remove(), 6_000);
}

/** An inline error slot for a form or a section: role=alert so it is read out when filled. */
export function errorSlot(): { el: HTMLElement; show(err: unknown): void; clear(): void } {
  const el = h('p', { class: 'error', role: 'alert', hidden: true });
  return {
    el,
    show(err) {
      el.textContent = describe(err);
      el.hidden = false;
    },
    clear() {
      el.textContent = '';
      el.hidden = true;
    },
  };
}

// ---- controls -------------------------------------------------------------------------------

/** A labelled control: <label for> plus an optional hint tied with aria-describedby. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  control.id ||= uid();
  const wrapper = h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
  if (hint) {
    const hintId = `${control.id}-hint`;
    control.setAttribute('aria-describedby', hintId);
    wrapper.append(h('p', { class: 'hint', id: hintId }, hint));
  }
  return wrapper;
}

export function checkbox(
  label: string,
  attrs: Record<string, unknown> = {},
): {
  el: HTMLElement;
  input: HTMLInputElement;
} {
  const input = h('input', { type: 'checkbox', id: uid(), ...attrs });
  const el = h('div', { class: 'check' }, input, h('label', { for: input.id }, label));
  return { el, input };
}

export function select(
  options: { value: string; label: string }[],
  attrs: Record<string, unknown> = {},
): HTMLSelectElement {
  return h(
    'select',
    attrs,
    options.map((o) => h('option', { value: o.value }, o.label)),
  );
}

/**
 * A button that runs an async action: disabled and aria-busy while it runs, errors reported
 * through `onError` (or the notice area).
 */
export function actionButton(
  label: string,
  run: () => Promise<void>,
  options: {
    variant?: 'primary' | 'danger' | 'quiet';
    ariaLabel?: string;
    onError?: (err: unknown) => void;
  } = {},
): HTMLButtonElement {
  const button = h(
    'button',
    { type: 'button', class: options.variant ?? '', 'aria-label': options.ariaLabel },
    label,
  );
  button.addEventListener('click', async () => {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await run();
    } catch (err) {
      (options.onError ?? ((e) => notify(describe(e))))(err);
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  });
  return button;
}

/**
 * A form whose submit runs `onSubmit`: native validation first, the submit button busy while
 * it runs, and failures shown in the form's own alert slot.
 */
export function form(
  attrs: { label: string; submitLabel: string; variant?: 'primary' | 'danger' },
  children: Child[],
  onSubmit: (form: HTMLFormElement) => Promise<void>,
): HTMLFormElement {
  const error = errorSlot();
  const submit = h(
    'button',
    { type: 'submit', class: attrs.variant ?? 'primary' },
    attrs.submitLabel,
  );
  const el = h(
    'form',
    { 'aria-label': attrs.label },
    children,
    h('div', { class: 'form-actions' }, submit),
    error.el,
  );
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    error.clear();
    submit.disabled = true;
    submit.setAttribute('aria-busy', 'true');
    try {
      await onSubmit(el);
    } catch (err) {
      error.show(err);
    } finally {
      submit.disabled = false;
      submit.removeAttribute('aria-busy');
    }
  });
  return el;
}

export function badge(state: string, label = state.replace(/_/g, ' ')): HTMLElement {
  return h('span', { class: `badge badge-${state}` }, label);
}

// ---- tables ---------------------------------------------------------------------------------

export interface Column<T> {
  header: string;
  cell: (row: T) => Child;
  className?: string;
}

/**
 * A captioned table in a horizontally scrollable region (phones): the region is focusable and
 * named so keyboard users can scroll it.
 */
export function dataTable<T>(
  caption: string,
  columns: Column<T>[],
  rows: T[],
  empty: string,
): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  const table = h(
    'table',
    {},
    h('caption', { class: 'visually-hidden' }, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map((c) => h('th', { scope: 'col', class: c.className }, c.header)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((row) =>
        h(
          'tr',
          {},
          columns.map((c) => h('td', { class: c.className }, c.cell(row))),
        ),
      ),
    ),
  );
  return h(
    'div',
    { class: 'table-wrap', role: 'region', 'aria-label': caption, tabindex: 0 },
    table,
  );
}

// ---- layout pieces --------------------------------------------------------------------------

export function section(title: string, ...children: Child[]): HTMLElement {
  const id = uid('s');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), children);
}

/** A definition list of label/value pairs (cards on the overview, account details). */
export function facts(items: [string, Child][]): HTMLElement {
  return h(
    'dl',
    { class: 'facts' },
    items.map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value))),
  );
}

/** A "Load more" pager over a cursor-paginated list. */
export function pager<T>(
  load: (cursor: string | null) => Promise<{ data: T[]; next_cursor: string | null }>,
  render: (rows: T[]) => HTMLElement,
): { el: HTMLElement; reload(): Promise<void> } {
  const el = h('div', { class: 'pager' });
  let rows: T[] = [];
  let cursor: string | null = null;
  // Bumped by every reload: an answer for an older reload (a filter changed while it was in
  // flight) is dropped, so the list always matches the latest filter.
  let generation = 0;
  const draw = () => {
    const more = cursor
      ? actionButton('Load more', async () => {
          const mine = generation;
          const page = await load(cursor);
          if (mine !== generation) return;
          rows = rows.concat(page.data);
          cursor = page.next_cursor;
          draw();
        })
      : null;
    replace(el, render(rows), more);
  };
  return {
    el,
    async reload() {
      const mine = ++generation;
      const page = await load(null);
      if (mine !== generation) return;
      rows = page.data;
      cursor = page.next_cursor;
      draw();
    },
  };
}

// ---- dialogs --------------------------------------------------------------------------------

/**
 * A modal <dialog> (focus trapped by the browser, Esc closes); resolves when it closes. A
 * sign-out (the token expired) cancels it: the dialog sits outside the page and would otherwise
 * stay over the sign-in form, where a confirmed action silently does nothing. Only a dialog
 * showing a new secret stays, since the secret cannot be shown again.
 */
function openDialog(
  title: string,
  options: { keepOnSignOut?: boolean },
  build: (close: (value: string) => void) => Child[],
): Promise<string> {
  return new Promise((resolve) => {
    const titleId = uid('d');
    const dialog = h('dialog', { 'aria-labelledby': titleId, class: 'dialog' });
    const close = (value: string) => {
      dialog.close(value);
    };
    append(dialog, [h('h2', { id: titleId }, title), build(close)]);
    const stopListening = options.keepOnSignOut ? undefined : onSignedOut(() => close('cancel'));
    dialog.addEventListener('close', () => {
      stopListening?.();
      dialog.remove();
      resolve(dialog.returnValue);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export async function confirmAction(
  title: string,
  message: string,
  confirmLabel: string,
  variant: 'primary' | 'danger' = 'danger',
): Promise<boolean> {
  const result = await openDialog(title, {}, (close) => {
    const cancel = h('button', { type: 'button', on: { click: () => close('cancel') } }, 'Cancel');
    const ok = h(
      'button',
      { type: 'button', class: variant, on: { click: () => close('ok') } },
      confirmLabel,
    );
    // Focus starts on Cancel for destructive actions: Enter must not destroy by accident.
    queueMicrotask(() => (variant === 'danger' ? cancel : ok).focus());
    return [h('p', {}, message), h('div', { class: 'form-actions' }, cancel, ok)];
  });
  return result === 'ok';
}

/** Shows a secret (a new API key) once, with a copy button and a warning. */
export async function showSecret(title: string, secret: string, note: string): Promise<void> {
  await openDialog(title, { keepOnSignOut: true }, (close) => {
    const input = h('input', {
      type: 'text',
      readonly: true,
      value: secret,
      class: 'secret',
      spellcheck: 'false',
      autocomplete: 'off',
    });
    const status = h('span', { role: 'status', class: 'hint' });
    const copy = h('button', { type: 'button', class: 'primary' }, 'Copy key');
    copy.addEventListener('click', async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(secret);
        status.textContent = 'Copied.';
      } catch {
        // Clipboard API needs a secure context; the key is selected for Ctrl+C instead.
        status.textContent = 'Press Ctrl+C (⌘C) to copy the selected key.';
      }
    });
    queueMicrotask(() => input.select());
    return [
      h('p', { class: 'warning' }, note),
      field('Key', input),
      h(
        'div',
        { class: 'form-actions' },
        copy,
        status,
        h('button', { type: 'button', on: { click: () => close('done') } }, 'Done'),
      ),
    ];
  });
}

/** A modal form; resolves true when submitted successfully, false when cancelled. */
export async function dialogForm(
  title: string,
  fields: Child[],
  submitLabel: string,
  onSubmit: (form: HTMLFormElement) => Promise<void>,
  variant: 'primary' | 'danger' = 'primary',
): Promise<boolean> {
  const result = await openDialog(title, {}, (close) => {
    const el = form({ label: title, submitLabel, variant }, fields, async (f) => {
      await onSubmit(f);
      close('ok');
    });
    el.querySelector('.form-actions')?.prepend(
      h('button', { type: 'button', on: { click: () => close('cancel') } }, 'Cancel'),
    );
    return [el];
  });
  return result === 'ok';
}

// ---- form values ----------------------------------------------------------------------------

export function value(form: HTMLFormElement, name: string): string {
  const el = form.elements.namedItem(name) as
    HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement | null;
  return el ? el.value.trim() : '';
}

/** An optional whole number: '' → undefined (or null when `clear` is set, to clear a limit). */
export function intValue(
  form: HTMLFormElement,
  name: string,
  clear = false,
): number | null | undefined {
  const raw = value(form, name);
  if (raw === '') return clear ? null : undefined;
  return Number(raw);
}

/** datetime-local → ISO-8601 (the browser's time zone), or undefined when empty. */
export function isoValue(form: HTMLFormElement, name: string): string | undefined {
  const raw = value(form, name);
  return raw ? new Date(raw).toISOString() : undefined;
}
