// Destructive moderation actions (ban, purge, delete) ask first, saying what will happen.
// A submit button (or its form) carries data-confirm: the question, with {field} replaced by
// the value of the form's field of that name ({count} = how many message boxes are ticked).
// A button whose data-confirm-when="field=a|b" asks only when that field has one of those values.
// A static file: the admin pages may run under a CSP without inline script.
(function () {
  "use strict";
  function fieldValue(form, name) {
    if (name === "count") return String(form.querySelectorAll('input[name="message_id"]:checked').length);
    var field = form.elements.namedItem(name);
    if (!field) return "";
    if (field.type === "checkbox") return field.checked ? "yes" : "no";
    return String(field.value || "").trim();
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var source = event.submitter && event.submitter.hasAttribute("data-confirm") ? event.submitter : form;
    var question = source.getAttribute && source.getAttribute("data-confirm");
    if (!question) return;
    var when = source.getAttribute("data-confirm-when");
    if (when) {
      var parts = when.split("=");
      if (parts[1].split("|").indexOf(fieldValue(form, parts[0])) < 0) return;
    }
    var text = question.replace(/\{([a-z_]+)\}/g, function (_, name) {
      return fieldValue(form, name);
    });
    if (!window.confirm(text)) event.preventDefault();
  });
})();
