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
    var close = event.target.closest("[data-close]");
    if (close) {
      var dialog = close.closest("dialog");
      if (dialog) dialog.close();
    }
  });
  document.addEventListener("close", function (event) {
    if (event.target.tagName === "DIALOG" && opener && document.contains(opener)) opener.focus();
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
