// machi pages: the keypad, the live payment status with its chime, the countdown and the
// bank-name look-up. Everything works without it except what is live.
(function () {
  'use strict';

  function yen(digits) {
    var n = digits === '' ? '0' : digits;
    return '\u00a5' + n.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
  function byId(id) { return document.getElementById(id); }

  // The keypad fills the hidden amount.
  var input = byId('amount-input');
  var shown = byId('amount');
  if (input && shown) {
    input.type = 'hidden';
    var keys = document.querySelectorAll('[data-key]');
    Array.prototype.forEach.call(keys, function (button) {
      button.addEventListener('click', function () {
        var key = button.getAttribute('data-key');
        var value = input.value;
        if (key === 'back') value = value.slice(0, -1);
        else if (key === 'clear') value = '';
        else value = (value + key).replace(/^0+/, '');
        if (value.length > 8) return;
        input.value = value;
        shown.textContent = yen(value);
      });
    });
  }

  // The chime, unless this device muted it.
  function chime() {
    if (document.body.getAttribute('data-muted') === '1') return;
    try {
      var audio = new Audio('/assets/chime.wav');
      var played = audio.play();
      if (played && played.catch) played.catch(function () {});
    } catch (e) { /* no sound on this device */ }
  }

  function show(id) { var el = byId(id); if (el) el.hidden = false; }
  function hide(id) { var el = byId(id); if (el) el.hidden = true; }

  // A payment request: paid or expired, as it happens.
  var request = document.querySelector('[data-events]');
  if (request && window.EventSource && !byId('waiting').hidden) {
    var events = new EventSource(request.getAttribute('data-events'));
    events.addEventListener('paid', function (e) {
      events.close();
      var data = JSON.parse(e.data);
      byId('thank-you-amount').textContent = data.amount;
      hide('waiting');
      hide('expired');
      show('thank-you');
      chime();
    });
    events.addEventListener('expired', function () {
      events.close();
      hide('waiting');
      show('expired');
    });
  }

  // The time left, counted down.
  var left = byId('time-left');
  if (left && left.hasAttribute('data-seconds')) {
    var end = Date.now() + 1000 * Number(left.getAttribute('data-seconds'));
    var tick = function () {
      var s = Math.max(0, Math.round((end - Date.now()) / 1000));
      left.textContent = Math.floor(s / 60) + ':' + ('0' + (s % 60)).slice(-2);
      if (s > 0) setTimeout(tick, 500);
    };
    tick();
  }

  // The sale status, refreshed while the page is open.
  var live = document.querySelector('[data-live]');
  if (live) {
    var refresh = function () {
      fetch(live.getAttribute('data-live'), { credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (issues) {
          issues.forEach(function (issue) {
            var row = document.querySelector('[data-issue="' + issue.id + '"]');
            if (!row) return;
            row.querySelector('.sold').textContent = issue.sold;
            row.querySelector('.left').textContent = issue.left;
            row.querySelector('.on-sale').textContent = issue.on_sale ? '\u8ca9\u58f2\u4e2d' : '\u2014';
          });
        })
        .catch(function () {})
        .then(function () { setTimeout(refresh, 3000); });
    };
    setTimeout(refresh, 3000);
  }

  // Bank and branch names as the codes are typed.
  function lookUp(inputId, outputId, url) {
    var field = byId(inputId);
    var out = byId(outputId);
    if (!field || !out) return;
    var check = function () {
      var address = url();
      if (!address) { out.textContent = ''; return; }
      fetch(address, { credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.json() : { name: '' , error: true }; })
        .then(function (d) { out.textContent = d.name || '\u8a72\u5f53\u306a\u3057'; })
        .catch(function () { out.textContent = ''; });
    };
    field.addEventListener('input', check);
    check();
  }
  lookUp('bank-code', 'bank-name', function () {
    var v = byId('bank-code').value.trim();
    return /^\d{4}$/.test(v) ? '/town/banks/' + v : null;
  });
  lookUp('branch-code', 'branch-name', function () {
    var b = byId('bank-code') ? byId('bank-code').value.trim() : '';
    var v = byId('branch-code').value.trim();
    return /^\d{4}$/.test(b) && /^\d{3}$/.test(v) ? '/town/banks/' + b + '/branches/' + v : null;
  });
  var bank = byId('bank-code');
  var branch = byId('branch-code');
  if (bank && branch) bank.addEventListener('input', function () { branch.dispatchEvent(new Event('input')); });
})();
