// Inflow's web UI: theme (before the first paint), dialogs, and htmx settings.
(function () {
  "use strict";
  var KEY = "inflow-theme";
  var root = document.documentElement;
  var stored = null;
  try { stored = localStorage.getItem(KEY); } catch (e) { /* storage off: follow the system */ }
  if (stored === "light" || stored === "dark") root.dataset.theme = stored;

  function current() {
    if (root.dataset.theme) return root.dataset.theme;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function showToggle(button) {
    var dark = current() === "dark";
    button.setAttribute("aria-pressed", String(dark));
    button.title = dark ? "Dark theme is on" : "Dark theme is off";
  }

  // Dialogs: open the ones that arrive marked data-open (showModal keeps focus inside; Escape
  // closes), close on [data-close], give focus back to what opened them.
  var opener = null;
  function openDialogs(scope) {
    scope.querySelectorAll("dialog[data-open]").forEach(function (d) {
      d.removeAttribute("data-open");
      if (!d.open) {
        opener = document.activeElement;
        d.showModal();
      }
    });
  }

  document.addEventListener("click", function (event) {
    var open = event.target.closest("[data-dialog-open]");
    if (open) {
      var target = document.getElementById(open.dataset.dialogOpen);
      if (target && !target.open) {
        opener = open;
        target.showModal();
      }
    }
    var close = event.target.closest("[data-close]");
    if (close) {
      var dialog = close.closest("dialog");
      if (dialog) dialog.close();
    }
  });
  // showModal makes the page behind inert, but Tab past the last control would leave for the
  // browser's own UI: wrap around inside the dialog instead.
  var FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Tab") return;
    var dialog = document.querySelector("dialog[open]");
    if (!dialog) return;
    var items = Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (el) {
      return el.offsetParent !== null || el === document.activeElement;
    });
    if (!items.length) return;
    var first = items[0];
    var last = items[items.length - 1];
    if (!dialog.contains(document.activeElement)) {
      event.preventDefault();
      first.focus();
    } else if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });

  document.addEventListener("close", function (event) {
    var dialog = event.target;
    if (dialog.tagName !== "DIALOG") return;
    if (dialog.dataset.reset && window.htmx) {
      window.htmx.ajax("GET", dialog.dataset.reset, { target: dialog.dataset.resetTarget, swap: "innerHTML" });
    }
    if (opener && document.contains(opener)) opener.focus();
  }, true);

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (button) {
      showToggle(button);
      button.addEventListener("click", function () {
        var next = current() === "dark" ? "light" : "dark";
        root.dataset.theme = next;
        try { localStorage.setItem(KEY, next); } catch (e) { /* kept for this page only */ }
        showToggle(button);
      });
    }
    openDialogs(document);
  });

  document.addEventListener("htmx:load", function (event) { openDialogs(event.detail.elt.parentNode || document); });
  // A form answered with field errors: focus its first invalid field (a screen reader then
  // reads the field with its message, aria-describedby).
  document.addEventListener("htmx:afterSettle", function (event) {
    var invalid = event.detail.elt.querySelector && event.detail.elt.querySelector('[aria-invalid="true"]');
    if (invalid) invalid.focus();
  });
  document.addEventListener("htmx:configRequest", function (event) {
    // The CSRF token is also on <body hx-headers>; this covers elements outside it (dialogs).
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
  });
  document.addEventListener("htmx:sendError", function () {
    var flash = document.getElementById("flash");
    if (flash) flash.innerHTML = '<div class="message message-error" role="alert"><strong class="message-title">Inflow is unreachable</strong><span class="message-detail">Check that the server is running, then try again.</span></div>';
  });
})();
