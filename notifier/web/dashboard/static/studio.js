// notifier studio: progress on top of forms that work without it. The starter form is checked as you type (the
// server answers with the problems the CLI would give), the date says what its time means, a placeholder is
// inserted where the cursor is, a dropped file is taken as the chosen one, the rows follow the column mapping, and
// an import's progress bar moves while it runs.
(function () {
  "use strict";
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function post(form, extra, accept) {
    var data = new FormData(form);
    Object.keys(extra || {}).forEach(function (k) { data.set(k, extra[k]); });
    return fetch(form.getAttribute("data-check") || form.getAttribute("action"), {
      method: "POST", body: data, credentials: "same-origin", cache: "no-store",
      headers: { "Accept": accept || "application/json" }
    }).then(function (r) { return r.ok || r.status === 422 ? r.json() : null; });
  }

  // --- the starter: live validation --------------------------------------------------------------------------
  function fieldOf(form, name) {
    // "deadlines[0].waves[1]" is shown at deadlines[0].waves, else at deadlines[0], else at the top.
    var n = name || "";
    while (n) {
      var el = form.querySelector('[data-field="' + n.replace(/"/g, "") + '"]');
      if (el) { return el; }
      var cut = Math.max(n.lastIndexOf("."), n.lastIndexOf("["));
      n = cut > 0 ? n.slice(0, cut) : "";
    }
    return null;
  }
  function showProblems(form, box, problems) {
    $$(".live-problem", form).forEach(function (p) { p.parentNode.removeChild(p); });
    $$("[aria-invalid]", form).forEach(function (el) { el.removeAttribute("aria-invalid"); });
    var top = [];
    problems.forEach(function (p, i) {
      var at = fieldOf(form, p.field);
      if (!at) { top.push(p.text); return; }
      var note = document.createElement("p");
      note.className = "live-problem error";
      note.id = "live-problem-" + i;
      note.textContent = p.message;
      at.appendChild(note);
      var input = at.matches("input, select, textarea") ? at : at.querySelector("input, select, textarea");
      if (input) {
        input.setAttribute("aria-invalid", "true");
        var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (d) {
          return d && d.indexOf("live-problem-") !== 0;
        });
        described.push(note.id);
        input.setAttribute("aria-describedby", described.join(" "));
      }
    });
    if (!problems.length) { box.textContent = box.getAttribute("data-ok"); box.className = "check ok"; return; }
    var n = problems.length;
    var words = n === 1 ? box.getAttribute("data-count-one") : box.getAttribute("data-count-many").replace("{n}", n);
    box.textContent = words + (top.length ? ": " + top.join("; ") : "");
    box.className = "check bad";
  }
  function starter(form) {
    var box = $("#check", form);
    var timer = null, asked = 0;
    function check() {
      var mine = ++asked;
      box.textContent = box.getAttribute("data-checking");
      post(form, {}).then(function (answer) {
        if (answer && mine === asked) { showProblems(form, box, answer.problems || []); }
      }).catch(function () { box.textContent = ""; });
    }
    function later() { clearTimeout(timer); timer = setTimeout(check, 400); }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    // A field for one kind of campaign only (the holdout: marketing) is hidden for the other, unless it holds a value.
    var category = $("#category", form);
    function follow() {
      $$("[data-only-for]", form).forEach(function (field) {
        var input = field.querySelector("input");
        field.hidden = category.value !== field.getAttribute("data-only-for") && !(input && input.value);
      });
    }
    if (category) { category.addEventListener("change", follow); follow(); }
    // What the time means, as it changes.
    $$("[data-meaning]", form).forEach(function (help) {
      var time = form.querySelector('[aria-describedby~="' + help.id + '"][type=time]');
      if (!time) { return; }
      time.addEventListener("input", function () {
        help.textContent = help.getAttribute(time.value === "00:00" ? "data-midnight" : "data-other");
      });
    });
    check();
  }

  // --- the words: the placeholder menu -----------------------------------------------------------------------
  // The target is the last text that had focus. The menu follows it (right after the text), so Tab from a text
  // reaches the menu and Shift+Tab goes back to that text: no other text takes focus on the way, by keyboard any
  // text can be the target. A placeholder goes in at the caret, never over a selection: tabbing into a text selects
  // all of it, and the placeholder then goes at its end.
  function labelOf(field) {
    return field.labels && field.labels.length ? field.labels[0].textContent.trim() : field.name;
  }
  function insertInto(field, text) {
    var value = field.value, at = field.selectionEnd != null ? field.selectionEnd : value.length;
    if (field.selectionStart === 0 && at === value.length) { at = value.length; }
    field.value = value.slice(0, at) + text + value.slice(at);
    field.focus();
    field.setSelectionRange(at + text.length, at + text.length);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }
  function placeholders(menu) {
    var last = null, said = $("#ph-said");
    document.addEventListener("focusin", function (e) {
      if (!(e.target.matches && e.target.matches("[data-text]"))) { return; }
      last = e.target;
      if (last.nextElementSibling !== menu) { last.insertAdjacentElement("afterend", menu); }
    });
    // One Tab stop (a toolbar): the arrows move between the placeholders, Escape goes back to the text.
    var chips = $$("[data-insert]", menu);
    chips.forEach(function (c, i) { c.tabIndex = i ? -1 : 0; });
    menu.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && last) { e.preventDefault(); last.focus(); return; }
      var i = chips.indexOf(document.activeElement), n = chips.length;
      var to = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: n - 1 }[e.key];
      if (i < 0 || to === undefined) { return; }
      e.preventDefault();
      chips.forEach(function (c) { c.tabIndex = -1; });
      chips[(to + n) % n].tabIndex = 0;
      chips[(to + n) % n].focus();
    });
    chips.forEach(function (button) {
      button.addEventListener("mousedown", function (e) { e.preventDefault(); }); // keep the text's focus
      button.addEventListener("click", function () {
        var field = last || $("[data-text]");
        if (!field) { return; }
        var text = button.getAttribute("data-insert");
        insertInto(field, text);
        if (said) {
          said.textContent = "";
          setTimeout(function () {
            said.textContent = said.getAttribute("data-said").replace("{placeholder}", text)
              .replace("{field}", labelOf(field));
          }, 50);
        }
      });
    });
  }

  // --- the audience: drop, mapping, progress -----------------------------------------------------------------
  function dropzone(form) {
    var zone = $("#dropzone", form), input = $("input[type=file]", form);
    ["dragenter", "dragover"].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      zone.addEventListener(t, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; form.requestSubmit(); }
    });
    input.addEventListener("change", function () { if (input.files.length) { form.requestSubmit(); } });
  }
  function cell(tag, text) { var c = document.createElement(tag); c.textContent = text; return c; }
  function mapping(form) {
    var sample = $("#sample", form);
    $$("select[data-column]", form).forEach(function (select) {
      select.addEventListener("change", function () {
        post(form, { action: "sample" }).then(function (answer) {
          if (!answer) { return; }
          var rows = answer.sample || [], keys = [];
          rows.forEach(function (r) { Object.keys(r).forEach(function (k) { if (keys.indexOf(k) < 0) { keys.push(k); } }); });
          var table = $("table", sample), head = document.createElement("thead"), body = document.createElement("tbody");
          var tr = document.createElement("tr");
          keys.forEach(function (k) { var th = cell("th", k); th.scope = "col"; tr.appendChild(th); });
          head.appendChild(tr);
          rows.forEach(function (r) {
            var line = document.createElement("tr");
            keys.forEach(function (k) {
              var v = r[k]; line.appendChild(cell("td", v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v)));
            });
            body.appendChild(line);
          });
          table.replaceChildren(head, body);
          var told = $("#sniff-problems", form);
          if (told) {
            told.replaceChildren.apply(told, (answer.problems || []).map(function (t) { return cell("li", t); }));
            told.hidden = !(answer.problems || []).length;
          }
        });
      });
    });
  }
  function progress(section) {
    var url = section.getAttribute("data-status");
    var bar = $("#upload-progress", section), pct = $("#upload-percent", section), words = $("#upload-words", section);
    function refresh() {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) { setTimeout(refresh, 3000); return; }
          bar.value = s.percent; bar.textContent = s.percent + "%"; pct.textContent = s.percent + "%";
          ["accepted", "rejected", "guessed"].forEach(function (k) {
            var el = $('[data-count="' + k + '"]', section);
            var shown = s[k].toLocaleString(document.documentElement.lang);
            if (el.textContent !== shown) { el.textContent = shown; }
          });
          $("#rejects-link", section).hidden = !s.rejected;
          section.setAttribute("data-state", s.state);
          if (s.state === "done" || s.state === "failed") {
            $("[data-state-word]", words).textContent = s.state === "done" ? words.getAttribute("data-done")
              : words.getAttribute("data-failed") + " " + (s.error || "");
            return;
          }
          setTimeout(refresh, 700);
        })
        .catch(function () { setTimeout(refresh, 3000); });
    }
    var state = section.getAttribute("data-state");
    if (state !== "done" && state !== "failed") { setTimeout(refresh, 300); }
  }

  // --- a translation: the gate's verdict as one types --------------------------------------------------------
  // Each entry's typed forms go to the server (nothing is saved) ~300 ms after the last key; its badge and problems
  // list (an aria-live region) follow the answer. Without this script the page checks on Save, as before.
  function liveTranslations(form) {
    var csrf = form.querySelector('input[name="csrf"]').value, url = form.getAttribute("data-live-check");
    $$("li.entry", form).forEach(function (entry) {
      var timer = null, asked = 0, badge = $(".status", entry), live = $(".entry-live", entry);
      function show(answer) {
        entry.className = entry.className.replace(/\bentry-\S+/g, "").trim() + " entry-" + answer.status;
        badge.className = "status status-" + answer.status;
        badge.textContent = form.getAttribute("data-status-" + answer.status) || answer.status;
        var problems = answer.problems || [];
        if (!problems.length) { live.replaceChildren(); return; }
        var list = document.createElement("ul");
        list.className = "entry-problems";
        problems.forEach(function (p) { var li = document.createElement("li"); li.textContent = p; list.appendChild(li); });
        live.replaceChildren(list);
      }
      function check() {
        var mine = ++asked, data = new FormData();
        data.set("csrf", csrf);
        data.set("key", $('input[name="key"]', entry).value);
        $$("textarea", entry).forEach(function (t) { data.append("form", t.value); });
        fetch(url, { method: "POST", body: data, credentials: "same-origin", cache: "no-store",
                     headers: { "Accept": "application/json" } })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (answer) { if (answer && mine === asked) { show(answer); } })
          .catch(function () {});
      }
      entry.addEventListener("input", function (e) {
        if (!e.target.matches("textarea")) { return; }
        clearTimeout(timer);
        timer = setTimeout(check, 300);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var s = $("#starter-form"); if (s) { starter(s); }
    var t = $("#translations-form"); if (t) { liveTranslations(t); }
    var m = $("#placeholder-menu"); if (m) { placeholders(m); }
    var a = $("#audience-form"); if (a) { dropzone(a); }
    var f = $("#mapping-form"); if (f) { mapping(f); }
    var u = $("#upload-status"); if (u) { progress(u); }
    $$("form[data-busy]").forEach(function (form) {
      form.addEventListener("submit", function () {
        var told = $("#busy"); if (told) { told.textContent = form.getAttribute("data-busy"); }
      });
    });
    $$("select[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.requestSubmit(); });
    });
  });
})();
