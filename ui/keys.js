// pixseek search page keyboard: the query box has focus on load and "/" focuses it (the result cards
// handle their own arrow keys: cards.js). Streamlit has no focus API, hence this script.
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
    if (e.ctrlKey || e.metaKey || e.altKey || e.key !== '/' || typing(e.target)) return;
    const b = box();
    if (b) { e.preventDefault(); b.focus(); b.select(); }
  });
})();
