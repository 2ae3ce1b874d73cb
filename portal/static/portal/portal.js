/* Every portal page's small behaviours, kept out of the HTML so that the
 * Content-Security-Policy allows no inline script (marketerapi/settings.py):
 *  - a <select data-autosubmit> submits its form when changed (the environment switch);
 *  - a link with data-back goes back in the browser's history (its href is the fallback).
 */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
      target.form.requestSubmit();
    }
  });
  document.addEventListener("click", function (event) {
    var link = event.target instanceof Element ? event.target.closest("a[data-back]") : null;
    if (link && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });
})();
