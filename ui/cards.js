// pixseek result cards: one element draws the whole grid (Streamlit's own elements cost ~5 ms each to
// draw, 3 per card). Each card is one <button> named after its picture: a click, Enter or Space opens
// it (the trigger value "open"), the arrow keys move between cards. Text goes in with textContent only.
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let grid = parentElement.querySelector('.px-cards');
  if (!grid) {
    grid = document.createElement('div');
    grid.className = 'px-cards';
    grid.setAttribute('role', 'list');
    grid.addEventListener('click', (e) => {
      const card = e.target.closest('.px-card');
      if (card) setTriggerValue('open', Number(card.dataset.id));
    });
    grid.addEventListener('keydown', (e) => {
      const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: 'up', ArrowDown: 'down' }[e.key];
      if (step === undefined || e.ctrlKey || e.metaKey || e.altKey) return;
      const cards = [...grid.querySelectorAll('.px-card')];
      const i = cards.indexOf(document.activeElement);
      if (i < 0) return;
      const perRow = cards.filter((c) => c.offsetTop === cards[0].offsetTop).length || 1;
      const j = typeof step === 'number' ? i + step : i + (step === 'up' ? -perRow : perRow);
      if (j >= 0 && j < cards.length) {
        e.preventDefault();
        cards[j].focus();
        cards[j].scrollIntoView({ block: 'nearest' });
      }
    });
    parentElement.appendChild(grid);
  }
  grid.style.setProperty('--px-cols', String(data.cols));
  const sig = data.version;
  if (grid.dataset.sig === sig) return;
  grid.dataset.sig = sig;
  const el = (tag, cls, text) => {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const cards = data.cards.map((c) => {
    const card = el('button', 'px-card');
    card.type = 'button';
    card.dataset.id = String(c.id);
    card.setAttribute('role', 'listitem');
    card.setAttribute('aria-label', `Open ${c.name}`);
    if (c.thumb) {
      const img = el('img', 'px-thumb');
      img.alt = c.name;
      img.decoding = 'async';
      img.src = `data:image/webp;base64,${c.thumb}`;
      card.appendChild(img);
    } else {
      card.appendChild(el('div', 'px-thumb px-missing', c.missing));
    }
    const line = el('div', 'px-line');
    const label = el('span', `px-label px-${c.label}`, c.label);
    label.title = c.label === 'words' ? `matched by its words · score ${c.score.toFixed(3)}`
      : `${c.label} match · score ${c.score.toFixed(3)}`;
    const name = el('b', '', c.name);
    name.title = c.path;
    line.append(label, ' ');
    if (c.why) {
      const why = el('span', 'px-why', c.why);
      why.title = `the words were found in its ${c.why.replaceAll(' · ', ', ')}`;
      line.append(why, ' ');
    }
    line.append(name);
    const folder = el('div', 'px-folder');
    if (c.date) {
      const date = el('span', 'px-date', c.date);
      date.title = c.dated === 'taken' ? 'date taken (EXIF)' : 'file time (no date taken in the file)';
      folder.append(date, ' · ');
    }
    folder.append(c.folder + (c.copies ? ` · ${c.copies}` : ''));
    card.append(line, folder);
    if (c.tags && c.tags.length) {
      const tags = el('div', 'px-tags', c.tags.join(' · '));
      tags.title = 'zero-shot tags (filter by them in the sidebar)';
      card.append(tags);
    }
    return card;
  });
  grid.replaceChildren(...cards);
}
