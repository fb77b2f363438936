// Start a defense from the competitive page (admin/templates/competitive.html): the form as
// POST /api/competitive/defense with the session's CSRF token, then the page again (or the
// refusal, with each field the server named).
(() => {
  "use strict";
  const { csrf } = window.refractDashboard;
  const form = document.getElementById("defense-form");
  const message = document.getElementById("defense-message");
  if (!form) return;

  function say(text) {
    message.textContent = text;
    message.hidden = false;
  }

  function body() {
    const field = (name) => form.elements[name].value.trim();
    return {
      site: form.dataset.site,
      competitor: field("competitor"),
      pages: field("pages").split(",").map((page) => page.trim()).filter(Boolean),
      changes: [{ action: field("action"), selector: field("selector"), value: field("value") }],
      traffic: Number(field("traffic")),
    };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await fetch("/api/competitive/defense", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(body()),
      });
      if (response.ok) {
        location.reload();
        return;
      }
      const answer = await response.json().catch(() => ({}));
      const fields = (answer.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
      say(`Not started: ${answer.error || `the server answered ${response.status}`}${fields ? ` (${fields})` : ""}`);
    } catch (failure) {
      say("The dashboard cannot be reached. Try again in a moment.");
    }
    button.disabled = false;
  });
})();
