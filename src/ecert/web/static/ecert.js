/* Optional enhancement only: every form works without this file (IE 11 on Exchange hosts included). */
(function () {
  "use strict";
  if (!document.querySelectorAll) { return; }
  var buttons = document.querySelectorAll("button[data-copy]");
  for (var i = 0; i < buttons.length; i++) {
    var b = buttons[i];
    b.hidden = false;
    b.removeAttribute("hidden");
    b.addEventListener("click", function (ev) {
      var target = document.getElementById(ev.currentTarget.getAttribute("data-copy"));
      if (!target) { return; }
      var text = target.textContent;
      var btn = ev.currentTarget;
      var done = function () { btn.setAttribute("data-copied", "1"); };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () {});
      } else {
        var range = document.createRange();
        range.selectNodeContents(target);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* the value stays selected */ }
      }
    });
  }
})();
