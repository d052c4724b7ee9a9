// pixseek search page keyboard: the query box has focus on load, "/" focuses it, arrow keys move
// through the results (Enter opens one). Streamlit has no focus or arrow-key API, hence this script.
(() => {
  if (window.__pixseekKeys) return;
  window.__pixseekKeys = true;
  const box = () => document.querySelector('.st-key-q input');
  const typing = (t) => t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable);
  const start = Date.now();
  const waitForBox = setInterval(() => {
    const b = box();
    if (b) {
      if (!document.activeElement || document.activeElement === document.body) b.focus();
      clearInterval(waitForBox);
    } else if (Date.now() - start > 15000) {
      clearInterval(waitForBox);
    }
  }, 50);
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === '/' && !typing(e.target)) {
      const b = box();
      if (b) { e.preventDefault(); b.focus(); b.select(); }
      return;
    }
    const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: 'up', ArrowDown: 'down' }[e.key];
    if (step === undefined || typing(e.target) || document.querySelector('[role="dialog"]')) return;
    const cards = [...document.querySelectorAll('[class*="st-key-open-"] button')];
    const i = cards.indexOf(document.activeElement);
    if (i < 0) return;
    const top = (el) => Math.round(el.getBoundingClientRect().top);
    const perRow = cards.filter((c) => top(c) === top(cards[0])).length || 1;
    const j = typeof step === 'number' ? i + step : i + (step === 'up' ? -perRow : perRow);
    if (j >= 0 && j < cards.length) {
      e.preventDefault();
      cards[j].focus();
      cards[j].scrollIntoView({ block: 'nearest' });
    }
  });
})();
