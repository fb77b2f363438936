// Approve or reject a proposal on the autopilot page (admin/templates/autopilot.html): a POST
// to the admin API with the session's CSRF token, then the page again (or the reason why not).
(() => {
  "use strict";
  const { csrf } = window.refractDashboard;
  const message = document.getElementById("autopilot-message");

  function say(text) {
    message.textContent = text;
    message.hidden = false;
  }

  async function decide(button) {
    const { decide: action, key, site } = button.dataset;
    button.disabled = true;
    try {
      const response = await fetch(`/api/autopilot/proposals/${encodeURIComponent(key)}/${action}`, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify({ site }),
      });
      if (response.ok) {
        location.reload();
        return;
      }
      const answer = await response.json().catch(() => ({}));
      const problems = (answer.errors || []).map((e) => e.message).join("; ");
      say(`${key}: ${answer.error || `the server answered ${response.status}`}${problems ? `: ${problems}` : ""}`);
    } catch (failure) {
      say("The dashboard cannot be reached. Try again in a moment.");
    }
    button.disabled = false;
  }

  for (const button of document.querySelectorAll("button[data-decide]")) {
    button.addEventListener("click", () => decide(button));
  }
})();
