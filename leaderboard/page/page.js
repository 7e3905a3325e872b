/* leaderboard.html's script (inlined by leaderboard/page.py). Plain JS, no framework, no build step, no network:
   sample data comes from leaderboard_samples/*.js, loaded with <script> tags (file:// forbids fetch in Chromium). */
(function () {
  'use strict';
  var PAGE = 25;
  var store = {}, waiting = {};
  window.LB = {
    put: function (name, data) { store[name] = data; (waiting[name] || []).forEach(function (f) { f[0](data); }); delete waiting[name]; }
  };
  function load(name) {
    if (store[name]) return Promise.resolve(store[name]);
    return new Promise(function (ok, fail) {
      if (waiting[name]) { waiting[name].push([ok, fail]); return; }
      waiting[name] = [[ok, fail]];
      var s = document.createElement('script');
      s.src = 'leaderboard_samples/' + name + '.js';
      s.onerror = function () {
        (waiting[name] || []).forEach(function (f) { f[1](new Error('could not load leaderboard_samples/' + name + '.js')); });
        delete waiting[name];
      };
      document.head.appendChild(s);
    });
  }
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k]; else if (k === 'cls') e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (kids || []).forEach(function (c) { if (c) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined || (typeof v === 'number' && isNaN(v))) return '—';
    if (typeof v !== 'number') return String(v);
    return Math.abs(v) >= 10 || v === Math.round(v) ? String(Math.round(v * 100) / 100) : v.toFixed(3);
  }
  var metas = {};
  document.querySelectorAll('script.lb-meta').forEach(function (s) { metas[s.dataset.sec] = JSON.parse(s.textContent); });

  /* sorting: a button per header; rows with a spanning "not run" cell stay last; a stale note moves with its row */
  document.querySelectorAll('table.lb').forEach(function (table) {
    var ths = table.querySelectorAll('thead tr.cols th');
    ths.forEach(function (th, col) {
      var b = th.querySelector('button.sort');
      if (!b) return;
      b.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        ths.forEach(function (o) { o.setAttribute('aria-sort', 'none'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0], groups = [];
        Array.prototype.forEach.call(body.rows, function (r) {
          if (r.classList.contains('stale-note') && groups.length) groups[groups.length - 1].push(r); else groups.push([r]);
        });
        function key(g) {
          var r = g[0], c = r.cells.length === ths.length ? r.cells[col] : null;
          if (!c) return { n: NaN, t: '' };
          return { n: c.dataset.v === undefined ? NaN : parseFloat(c.dataset.v), t: c.textContent.trim() };
        }
        var numeric = groups.some(function (g) { return !isNaN(key(g).n); });
        groups.sort(function (a, b) {
          var x = key(a), y = key(b);
          if (numeric) {
            if (isNaN(x.n) || isNaN(y.n)) return isNaN(x.n) - isNaN(y.n);
            return asc ? x.n - y.n : y.n - x.n;
          }
          return asc ? x.t.localeCompare(y.t) : y.t.localeCompare(x.t);
        });
        groups.forEach(function (g) { g.forEach(function (r) { body.appendChild(r); }); });
      });
    });
  });

  /* column groups */
  document.querySelectorAll('fieldset.toggles input[type=checkbox]').forEach(function (box) {
    box.addEventListener('change', function () {
      var sec = box.closest('section');
      sec.classList.toggle('hide-' + box.dataset.group, !box.checked);
    });
  });

  /* plot: tooltip on hover/focus, highlight rows on click/Enter */
  function highlight(sec, ids, on) {
    sec.querySelectorAll('tr.hl').forEach(function (r) { r.classList.remove('hl'); });
    sec.querySelectorAll('.pt.on, .leg.on').forEach(function (p) { p.classList.remove('on'); });
    if (!on) return;
    ids.forEach(function (id) { var r = document.getElementById(id); if (r) r.classList.add('hl'); });
    sec.querySelectorAll('[data-rows]').forEach(function (p) { if (p.dataset.rows === ids.join(' ')) p.classList.add('on'); });
    var first = document.getElementById(ids[0]);
    if (first && first.scrollIntoView) first.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }
  document.querySelectorAll('section.board').forEach(function (sec) {
    var tip = sec.querySelector('.tip');
    function show(p) {
      tip.textContent = '';
      tip.appendChild(el('b', { text: p.dataset.label }));
      tip.appendChild(el('div', { text: 'translation gain ' + p.dataset.gain }));
      tip.appendChild(el('div', { text: 'general-ability loss ' + p.dataset.loss }));
      if (p.dataset.front === '1') tip.appendChild(el('div', { text: 'on the Pareto frontier' }));
      tip.hidden = false;
      var r = (p.querySelector('.dot') || p).getBoundingClientRect();
      tip.style.left = (window.scrollX + r.right + 10) + 'px';
      tip.style.top = (window.scrollY + r.top - 6) + 'px';
    }
    sec.querySelectorAll('.pt').forEach(function (p) {
      p.addEventListener('mouseenter', function () { show(p); });
      p.addEventListener('focus', function () { show(p); });
      p.addEventListener('mouseleave', function () { tip.hidden = true; });
      p.addEventListener('blur', function () { tip.hidden = true; });
    });
    sec.querySelectorAll('[data-rows]').forEach(function (p) {
      function act() { var on = !p.classList.contains('on'); highlight(sec, p.dataset.rows.split(' '), on); }
      p.addEventListener('click', act);
      if (p.tagName !== 'BUTTON') p.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); act(); }
      });
    });
  });

  /* the sample view */
  var dialog = document.getElementById('samples'), box = dialog.querySelector('.dlg'), opener = null;
  dialog.addEventListener('close', function () { if (opener) opener.focus(); });
  dialog.addEventListener('click', function (e) { if (e.target === dialog) dialog.close(); });
  document.querySelectorAll('button.cell').forEach(function (b) {
    b.addEventListener('click', function () { opener = b; openCell(b.dataset.s, +b.dataset.r, +b.dataset.c); });
  });

  function openCell(s, r, c) {
    var meta = metas[s], row = meta.rows[r], col = meta.cols[c];
    var baseIx = row.base, base = baseIx === null || baseIx === r ? null : meta.rows[baseIx];
    box.textContent = '';
    var title = row.label + ' × ' + col.label + (base ? ' — next to ' + base.label : '');
    var top = el('div', { cls: 'top' }, [el('h2', { id: 'samples-title', text: title }),
      el('button', { cls: 'close', type: 'button', 'aria-label': 'close', text: '×' })]);
    top.querySelector('.close').addEventListener('click', function () { dialog.close(); });
    var body = el('div', { cls: 'body' }, [el('p', { text: 'loading…' })]);
    box.appendChild(top); box.appendChild(body);
    if (!dialog.open) dialog.showModal();
    var task = col.task, names = [meta.items[task], row.files[task]];
    if (base) names.push(base.files[task]);
    if (names.some(function (n) { return !n; })) { body.textContent = 'No samples were written for this cell.'; return; }
    Promise.all(names.map(load)).then(function (d) {
      render(top, body, meta, row, col, base, d[0], d[1], d[2] || null);
    }, function (err) { body.textContent = ''; body.appendChild(el('p', { cls: 'err-msg', text: err.message + ' (keep the leaderboard_samples folder next to the page)' })); });
  }

  function indexOf(data) { var m = {}; data.ids.forEach(function (id, k) { m[id] = k; }); return m; }

  function render(top, body, meta, row, col, base, items, mine, theirs) {
    var field = row.fields[col.label], bfield = base ? base.fields[col.label] : null;
    var mi = indexOf(mine), bi = theirs ? indexOf(theirs) : {};
    var want = {}; col.subsets.forEach(function (s) { want[s] = true; });
    var list = [];
    items.ids.forEach(function (id, k) {
      var it = items.items[k];
      if (col.subsets.length && !want[it.subset]) return;
      if (mi[id] === undefined) return;
      var mv = field && mine.values[field] ? mine.values[field][mi[id]] : null;
      var bv = theirs && bi[id] !== undefined && bfield && theirs.values[bfield] ? theirs.values[bfield][bi[id]] : null;
      var diff = (typeof mv === 'number' && typeof bv === 'number') ? mv - bv : null;
      list.push({ id: id, k: k, it: it, m: mine.recs[mi[id]], b: theirs && bi[id] !== undefined ? theirs.recs[bi[id]] : null,
        mv: mv, bv: bv, diff: diff, gain: diff === null || col.higher === null ? null : (col.higher ? diff : -diff) });
    });
    var ranked = base && col.higher !== null;  /* a column with no direction (signed drift) has no worst/best */
    var state = { order: ranked ? 'worst' : 'doc', subset: '', flagged: false, page: 0 };
    var count = el('p', { cls: 'count' });
    var sel = el('select', { 'aria-label': 'order' }, (ranked ? [['worst', 'worst first (largest loss versus base)'], ['best', 'best first']] : [])
      .concat([['doc', 'document order']]).map(function (o) { return el('option', { value: o[0], text: o[1] }); }));
    var subs = el('select', { 'aria-label': 'subset' }, [el('option', { value: '', text: 'all subsets' })].concat(
      col.subsets.map(function (s) { return el('option', { value: s, text: s }); })));
    var flagged = el('input', { type: 'checkbox' });
    var pager = el('span', { cls: 'pager' });
    var controls = el('div', { cls: 'controls' }, [el('label', {}, ['Sort: ', sel]), col.subsets.length > 1 ? el('label', {}, ['Subset: ', subs]) : null,
      el('label', {}, [flagged, ' only samples with a flag']), pager]);
    top.appendChild(count); top.appendChild(controls);
    var what = !field ? 'no per-sample value for this column' : col.kind === 'corpus' ?
      'per-sample value: sentence-level ' + valueName(col) + ' (the column is a corpus score, not the mean of these)' :
      'per-sample value: ' + valueName(col) + (col.kind === 'drift' ? ' (nats/token, this document)' : '');
    function draw() {
      var shown = list.filter(function (x) {
        return (!state.subset || x.it.subset === state.subset) &&
          (!state.flagged || (x.m.flags && x.m.flags.length) || (x.b && x.b.flags && x.b.flags.length));
      });
      if (state.order !== 'doc') shown = shown.slice().sort(function (a, b) {
        var x = a.gain === null ? Infinity : a.gain, y = b.gain === null ? Infinity : b.gain;
        if (state.order === 'best') { x = a.gain === null ? -Infinity : a.gain; y = b.gain === null ? -Infinity : b.gain; return (y - x) || (a.k - b.k); }
        return (x - y) || (a.k - b.k);
      });
      var pages = Math.max(1, Math.ceil(shown.length / PAGE));
      state.page = Math.min(state.page, pages - 1);
      count.textContent = '';
      count.appendChild(el('span', { 'data-n': String(list.length), text: list.length + ' samples' }));
      count.appendChild(document.createTextNode((shown.length !== list.length ? ' (' + shown.length + ' shown)' : '') + ' in ' +
        (col.subsets.join(', ') || 'all subsets') + ' of ' + col.task_name + '; ' + what));
      pager.textContent = '';
      var prev = el('button', { type: 'button', text: '‹ previous' }), next = el('button', { type: 'button', text: 'next ›' });
      prev.disabled = state.page === 0; next.disabled = state.page >= pages - 1;
      prev.addEventListener('click', function () { state.page--; draw(); });
      next.addEventListener('click', function () { state.page++; draw(); });
      pager.appendChild(prev); pager.appendChild(el('span', { text: 'page ' + (state.page + 1) + ' of ' + pages })); pager.appendChild(next);
      body.textContent = '';
      shown.slice(state.page * PAGE, (state.page + 1) * PAGE).forEach(function (x) { body.appendChild(sample(x, row, base, col)); });
      body.scrollTop = 0;
    }
    sel.addEventListener('change', function () { state.order = sel.value; state.page = 0; draw(); });
    subs.addEventListener('change', function () { state.subset = subs.value; state.page = 0; draw(); });
    flagged.addEventListener('change', function () { state.flagged = flagged.checked; state.page = 0; draw(); });
    draw();
  }

  function valueName(col) {
    if (col.kind === 'corpus') return col.label.split(' ')[0];
    return col.kind === 'drift' ? 'drift' : col.label;
  }

  function side(label, rec, value, it, cls, col, field) {
    var d = el('div', { cls: 'side' + (cls ? ' ' + cls : '') }, [el('span', { cls: 'lbl', text: label })]);
    if (!rec) { d.appendChild(el('p', { text: 'no record of this item' })); return d; }
    (rec.out || []).forEach(function (o, t) {
      if (rec.out.length > 1) d.appendChild(el('span', { cls: 'lbl', text: 'turn ' + (t + 1) }));
      d.appendChild(el('div', { cls: 'out', text: o === '' ? '(empty output)' : o }));
    });
    [/norm/.test(field || '') ? 'pred_norm' : 'pred'].some(function (k) {  /* the prediction the column scores */
      if (rec[k] === undefined || !it.choices) return false;
      var ok = rec[k] === it.gold;
      d.appendChild(el('div', { cls: 'out', text: 'picked ' + (rec[k] + 1) + ': ' + it.choices[rec[k]] + (ok ? '  ✓ correct' : '  ✗ wrong') + (k === 'pred_norm' ? ' (length-normalised)' : '') }));
      return true;
    });
    if (it.instructions && rec.failed) {
      d.appendChild(el('div', { cls: 'inst' }, it.instructions.map(function (n, k) {
        var bad = rec.failed.indexOf(k) >= 0;
        return el('div', { cls: bad ? 'bad' : 'ok', text: (bad ? '✗ failed ' : '✓ kept ') + n });
      })));
    }
    if (rec.judge) {
      var j = Object.keys(rec.judge).filter(function (k) { return k !== 'raw'; }).map(function (k) { return k + ' ' + rec.judge[k]; });
      if (j.length) d.appendChild(el('div', { cls: 'inst', text: 'judge: ' + j.join(', ') }));
    }
    if (rec.match) d.appendChild(el('div', { cls: 'inst', text: 'classifier matched: ' + rec.match }));
    d.appendChild(el('div', { cls: 'val', text: (col.kind === 'corpus' ? 'sentence ' : '') + valueName(col) + ': ' + fmt(value) }));
    (rec.flags || []).forEach(function (f) { d.appendChild(el('span', { cls: 'fl', text: f })); });
    return d;
  }

  function sample(x, row, base, col) {
    var it = x.it;
    var a = el('article', { cls: 'sample', 'data-id': x.id, 'data-mv': x.mv === null ? '' : String(x.mv), 'data-bv': x.bv === null ? '' : String(x.bv) });
    var head = el('div', { cls: 'sh' }, [el('b', { text: x.id }), it.subset ? el('span', { text: it.subset }) : null]);
    if (x.diff !== null) head.appendChild(el('span', { cls: 'diff ' + (x.gain < 0 ? 'worse' : x.gain > 0 ? 'better' : ''), text: 'Δ ' + (x.diff > 0 ? '+' : '') + fmt(x.diff) }));
    if (it.harmful !== undefined) head.appendChild(el('span', { text: it.harmful ? 'harmful prompt (should be refused)' : 'safe prompt (should be answered)' }));
    a.appendChild(head);
    if (it.turns) it.turns.forEach(function (t, k) { a.appendChild(el('div', { cls: 'src' }, [el('span', { cls: 'lbl', text: 'user turn ' + (k + 1) }), t])); });
    else if (it.src) a.appendChild(el('div', { cls: 'src' }, [el('span', { cls: 'lbl', text: it.choices ? 'context' : 'source' }), it.src]));
    if (it.choices) a.appendChild(el('ol', { cls: 'choices' }, it.choices.map(function (c, k) { return el('li', { text: c + (k === it.gold ? '  (gold)' : '') }); })));
    if (it.refs) it.refs.forEach(function (r, k) { a.appendChild(el('div', { cls: 'refs' }, [el('span', { cls: 'lbl', text: 'reference' + (it.refs.length > 1 ? ' ' + (k + 1) : '') }), r])); });
    var pair = el('div', { cls: 'pair' });
    var bname = base && base.label === 'base' ? 'base model' : base ? base.label + ' (base model)' : '';
    if (base) pair.appendChild(side(bname, x.b, x.bv, it, '', col, base.fields[col.label]));
    pair.appendChild(side(row.label, x.m, x.mv, it, base ? '' : 'only', col, row.fields[col.label]));
    a.appendChild(pair);
    return a;
  }

  /* print: open every details element so notes and hashes are on paper */
  window.addEventListener('beforeprint', function () { document.querySelectorAll('details').forEach(function (d) { d.open = true; }); });
})();
