// dialog.js — a modal dialog that behaves the way keyboard and screen-reader users expect:
// focus moves in when it opens, Tab and Shift+Tab cycle inside it, the page behind is `inert`,
// Escape is handed to the owner, and focus goes back where it was when it closes. A dialog can
// also stop being modal while staying open (a minimized call tile): no trap, page usable.
//
// It knows nothing of calls; the call window (call-window.js) decides what to focus and what
// Escape means in each state.

const FOCUSABLE = [
  'button',
  'a[href]',
  'input',
  'select',
  'textarea',
  'video[controls]',
  '[tabindex]:not([tabindex="-1"])',
].join(',');

export function isShown(node) {
  return Boolean(node) && node.getClientRects().length > 0 && getComputedStyle(node).visibility !== 'hidden';
}

export function focusableIn(container) {
  return [...container.querySelectorAll(FOCUSABLE)].filter(
    (node) => !node.disabled && !node.closest('[inert]') && isShown(node),
  );
}

export class ModalDialog {
  /**
   * `node`: the dialog element (role="dialog"). `keepLive`: elements outside it that must stay
   * reachable while it is modal (live regions, toasts). `onEscape(event)`: what Escape does.
   */
  constructor(node, { keepLive = [], onEscape = () => {} } = {}) {
    this.node = node;
    this.keepLive = keepLive;
    this.onEscape = onEscape;
    this.isOpen = false;
    this.modal = false;
    this.scope = null; // a part of the dialog the trap is narrowed to (a confirmation)
    this.returnTo = null;
    this.madeInert = [];
    document.addEventListener('keydown', (event) => this.onKeydown(event), { capture: true });
    document.addEventListener('focusin', (event) => this.onFocusIn(event));
  }

  /** Opens (or keeps open) the dialog; `modal` false shows it without trapping anything. */
  open({ modal = true } = {}) {
    if (!this.isOpen) {
      this.isOpen = true;
      const active = document.activeElement;
      this.returnTo = active && active !== document.body && !this.node.contains(active) ? active : null;
    }
    this.setModal(modal);
  }

  setModal(modal) {
    if (this.modal === modal) return;
    this.modal = modal;
    if (modal) {
      this.node.setAttribute('aria-modal', 'true');
      for (const sibling of document.body.children) {
        if (sibling === this.node || this.keepLive.includes(sibling) || sibling.inert) continue;
        sibling.inert = true;
        this.madeInert.push(sibling);
      }
    } else {
      this.node.setAttribute('aria-modal', 'false');
      this.releasePage();
    }
  }

  close() {
    if (!this.isOpen) return;
    const hadFocus = this.node.contains(document.activeElement) || document.activeElement === document.body;
    this.isOpen = false;
    this.scope = null;
    this.setModal(false);
    // Only when focus was ours: a person who already moved on (minimized tile) keeps their place.
    if (hadFocus) this.restoreFocus();
    this.returnTo = null;
  }

  /** Puts focus back where it was before the dialog opened (if that is still on the page). */
  restoreFocus() {
    const target = this.returnTo;
    if (target && target.isConnected && isShown(target) && !target.disabled && !target.closest('[inert]')) {
      target.focus();
      return true;
    }
    return false;
  }

  releasePage() {
    for (const node of this.madeInert) node.inert = false;
    this.madeInert = [];
  }

  /** Moves focus to `preferred` unless it already rests on something visible inside. */
  keepFocusInside(preferred) {
    const active = document.activeElement;
    const container = this.scope || this.node;
    if (active && container.contains(active) && isShown(active) && !active.disabled) return;
    this.focus(preferred);
  }

  focus(preferred) {
    const container = this.scope || this.node;
    const target = preferred && isShown(preferred) && !preferred.disabled ? preferred : focusableIn(container)[0];
    if (target) target.focus();
  }

  /** Narrows the focus trap to a part of the dialog (null: the whole dialog again). */
  setScope(node) {
    this.scope = node;
  }

  /** A native modal dialog opened over this one (the device panel) owns keyboard and focus. */
  nestedOpen() {
    return [...document.querySelectorAll('dialog[open]')].some((d) => d !== this.node && d.matches(':modal'));
  }

  onKeydown(event) {
    if (!this.isOpen || this.nestedOpen()) return;
    const inside = this.node.contains(document.activeElement);
    if (!this.modal && !inside) return;
    if (event.key === 'Escape') {
      if (!this.modal) return; // a minimized tile leaves Escape to the page
      event.preventDefault();
      event.stopPropagation();
      this.onEscape(event);
    } else if (event.key === 'Tab' && this.modal) {
      // Cycle through what is visible inside (the page behind is inert, but the browser's own
      // UI is not: without this, Tab from the last button would leave the page).
      const items = focusableIn(this.scope || this.node);
      event.preventDefault();
      if (!items.length) return;
      const index = items.indexOf(document.activeElement);
      const next = event.shiftKey
        ? index <= 0
          ? items.length - 1
          : index - 1
        : index < 0 || index === items.length - 1
          ? 0
          : index + 1;
      items[next].focus();
    }
  }

  /** Should anything still take focus outside a modal dialog (a script, a click), take it back. */
  onFocusIn(event) {
    if (!this.isOpen || !this.modal || this.nestedOpen()) return;
    const container = this.scope || this.node;
    if (!container.contains(event.target)) this.focus(null);
  }
}
