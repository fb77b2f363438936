// Replay a dead action or enable a disabled destination on the automations page
// (admin/templates/automations.html): a POST to the admin API with the session's CSRF token,
// then the page again (or the reason why not).
(() => {
  "use strict";
  const { csrf } = window.refractDashboard;
  const message = document.getElementById("automations-message");

  function say(text) {
    message.textContent = text;
    message.hidden = false;
  }

  async function post(button, path, body, what) {
    button.disabled = true;
    try {
      const response = await fetch(path, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(body),
      });
      if (response.ok) {
        location.reload();
        return;
      }
      const answer = await response.json().catch(() => ({}));
      say(`${what}: ${answer.error || `the server answered ${response.status}`}`);
    } catch (failure) {
      say("The dashboard cannot be reached. Try again in a moment.");
    }
    button.disabled = false;
  }

  for (const button of document.querySelectorAll("button[data-replay]")) {
    const { replay: id, site } = button.dataset;
    button.addEventListener("click", () => post(
      button, `/api/automations/actions/${encodeURIComponent(id)}/replay`, { site }, "Replay"));
  }
  for (const button of document.querySelectorAll("button[data-enable]")) {
    const name = button.dataset.enable;
    button.addEventListener("click", () => post(
      button, `/api/automations/destinations/${encodeURIComponent(name)}/enable`, {}, name));
  }
})();
