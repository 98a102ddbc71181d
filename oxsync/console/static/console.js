// Password strength meter for the self-service page (OXtender manual 6.1). Works without it: the
// server enforces the minimum length. No inline scripts (the console's CSP forbids them).
document.addEventListener("DOMContentLoaded", function () {
  var input = document.getElementById("new-password");
  var meter = document.getElementById("strength");
  var text = document.getElementById("strength-text");
  if (!input || !meter) return;
  var labels = (text && text.dataset.labels || "").split("|");
  input.addEventListener("input", function () {
    var p = input.value, score = 0;
    if (p.length >= 8) score++;
    if (p.length >= 12) score++;
    if (/[a-z]/.test(p) && /[A-Z]/.test(p)) score++;
    if (/\d/.test(p) && /[^A-Za-z0-9]/.test(p)) score++;
    if (p.length < 8) score = Math.min(score, 1);
    meter.value = score;
    if (text) text.textContent = labels[score] || "";
  });
});
