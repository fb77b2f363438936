/* The experiment editor: variants and changes added and removed in place, checked here first
   (so most mistakes are shown without a round trip), then saved through the experiments API,
   whose 422 problems (field, message, hint, file:line) are shown next to their fields. */
(() => {
  "use strict";
  const form = document.getElementById("editor");
  if (!form) return;

  const { csrf, viewData } = window.refractDashboard;
  const KEY = /^[a-z0-9][a-z0-9_-]{0,62}$/;
  const NO_SELECTOR = ["inject_style", "redirect"];
  const NO_VALUE = ["remove", "remove_attribute"];
  const ATTRIBUTE = ["set_attribute", "remove_attribute"];
  const variants = document.getElementById("variants");
  const summary = document.getElementById("editor-errors");
  const status = document.getElementById("editor-status");
  const original = viewData().experiment || {};
  let key = form.dataset.key || "";
  let etag = null;

  const clone = (id) => document.getElementById(id).content.firstElementChild.cloneNode(true);
  const own = (fieldset, selector) =>
    [...fieldset.querySelectorAll(selector)].filter((el) => el.closest("[data-change]") === null);

  // Ids, labels and field paths follow the position of each variant and change.
  function renumber() {
    const all = [...variants.querySelectorAll("[data-variant]")];
    all.forEach((variant, i) => {
      variant.dataset.field = `variants.${i}`;
      variant.querySelector("legend").textContent = i === 0 ? "Variant 1 (control)" : `Variant ${i + 1}`;
      for (const input of own(variant, "[data-name]")) {
        input.id = `v${i}-${input.dataset.name}`;
        input.dataset.field = `variants.${i}.${input.dataset.name}`;
      }
      for (const label of own(variant, "label[data-for]")) label.htmlFor = `v${i}-${label.dataset.for}`;
      own(variant, "[data-remove-variant]")[0].disabled = all.length <= 2;
      [...variant.querySelectorAll("[data-change]")].forEach((change, j) => {
        change.dataset.field = `variants.${i}.changes.${j}`;
        change.querySelector("legend").textContent = `Change ${j + 1} of variant ${i + 1}`;
        for (const input of change.querySelectorAll("[data-name]")) {
          input.id = `v${i}-c${j}-${input.dataset.name}`;
          input.dataset.field = `variants.${i}.changes.${j}.${input.dataset.name}`;
        }
        for (const label of change.querySelectorAll("label[data-for]")) {
          label.htmlFor = `v${i}-c${j}-${label.dataset.for}`;
        }
      });
    });
    const total = collect().variants.reduce((sum, v) => sum + (Number.isFinite(v.weight) ? v.weight : 0), 0);
    document.getElementById("weights-total").textContent =
      `Weights add up to ${+total.toFixed(4)}${Math.abs(total - 100) > 1e-6 ? " (they must add up to 100)" : "."}`;
  }

  const value = (root, name) => {
    const element = root.querySelector(`[data-name="${name}"]`);
    return element ? element.value : "";
  };
  const checked = (name) =>
    [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((input) => input.value);

  // The body: the experiment as it was (schedule, seed, exclusions kept) with the form's fields.
  function collect() {
    const fields = form.elements;
    return {
      ...original,
      key: fields.key.value.trim(),
      hypothesis: fields.hypothesis.value.trim(),
      status: fields.status.value,
      audience: fields.audience.value,
      traffic: Number(fields.traffic.value),
      pages: checked("pages"),
      primary_metric: fields.primary_metric.value,
      secondary_metrics: checked("secondary_metrics"),
      guardrail_metrics: checked("guardrail_metrics"),
      variants: [...variants.querySelectorAll("[data-variant]")].map((variant) => ({
        key: own(variant, '[data-name="key"]')[0].value.trim(),
        weight: own(variant, '[data-name="weight"]')[0].value === "" ? NaN
          : Number(own(variant, '[data-name="weight"]')[0].value),
        changes: [...variant.querySelectorAll("[data-change]")].map((change) => {
          const found = { action: value(change, "action") };
          for (const name of ["selector", "value", "attribute"]) {
            if (value(change, name).trim()) found[name] = value(change, name);
          }
          return found;
        }),
      })),
    };
  }

  function check(body) {
    const problems = [];
    const add = (field, message) => problems.push({ field, message });
    if (!KEY.test(body.key)) add("key", "The key needs lowercase letters, digits, - and _, starting with a letter or digit.");
    if (!(body.traffic > 0 && body.traffic <= 100)) add("traffic", "Traffic must be more than 0 and at most 100 percent.");
    if (!body.primary_metric) add("primary_metric", "Choose the metric that decides the experiment.");
    if (body.variants.length < 2) add("variants", "An experiment needs a control and at least one other variant.");
    const seen = new Set();
    let total = 0;
    body.variants.forEach((variant, i) => {
      if (!KEY.test(variant.key)) add(`variants.${i}.key`, `Variant ${i + 1} needs a key: lowercase letters, digits, - and _.`);
      else if (seen.has(variant.key)) add(`variants.${i}.key`, `Two variants are called "${variant.key}".`);
      seen.add(variant.key);
      if (!(variant.weight >= 0 && variant.weight <= 100)) add(`variants.${i}.weight`, `Variant ${i + 1} needs a weight from 0 to 100.`);
      else total += variant.weight;
      variant.changes.forEach((change, j) => {
        const where = `variants.${i}.changes.${j}`;
        if (!NO_SELECTOR.includes(change.action) && !change.selector) add(`${where}.selector`, `"${change.action}" needs a CSS selector.`);
        if (!NO_VALUE.includes(change.action) && !change.value) add(`${where}.value`, `"${change.action}" needs a value.`);
        if (ATTRIBUTE.includes(change.action) && !change.attribute) add(`${where}.attribute`, `"${change.action}" needs an attribute.`);
      });
    });
    if (body.variants.length >= 2 && Math.abs(total - 100) > 1e-6) {
      add(`variants.${body.variants.length - 1}.weight`, `The variants' weights add up to ${+total.toFixed(4)}, not 100.`);
    }
    return problems;
  }

  // A problem's field as the API names it (experiments[0].variants[1].weight, variants.1.weight,
  // body.variants.1.weight) to the closest element of the form.
  function elementFor(field) {
    let path = String(field || "").replace(/\[(\d+)\]/g, ".$1").replace(/^(body\.|experiments\.\d+\.)/, "");
    while (path) {
      const found = form.querySelector(`[data-field="${CSS.escape(path)}"]`);
      if (found) return found;
      path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
    }
    return null;
  }

  function clearProblems() {
    summary.hidden = true;
    summary.replaceChildren();
    for (const note of form.querySelectorAll(".field-error")) note.remove();
    for (const field of form.querySelectorAll("[aria-invalid]")) {
      field.removeAttribute("aria-invalid");
      const described = (field.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.startsWith("err-"));
      if (described.length) field.setAttribute("aria-describedby", described.join(" "));
      else field.removeAttribute("aria-describedby");
    }
  }

  function showProblems(problems, heading) {
    clearProblems();
    const list = document.createElement("ul");
    problems.forEach((problem, n) => {
      const text = [problem.message, problem.hint ? `(${problem.hint})` : ""].join(" ").trim();
      const where = problem.file ? ` ${problem.file}${problem.line ? `:${problem.line}` : ""}` : "";
      const item = document.createElement("li");
      const target = elementFor(problem.field);
      if (target) {
        const note = Object.assign(document.createElement("p"), { className: "field-error", id: `err-${n}`, textContent: text });
        if (target.tagName === "FIELDSET") target.querySelector("legend").after(note);
        else target.after(note);
        target.setAttribute("aria-invalid", "true");
        target.setAttribute("aria-describedby", `${target.getAttribute("aria-describedby") || ""} err-${n}`.trim());
        if (!target.id) target.id = `field-${n}`;
        item.append(Object.assign(document.createElement("a"), { href: `#${target.id}`, textContent: text }));
      } else {
        item.textContent = text;
      }
      if (where) item.append(Object.assign(document.createElement("span"), { className: "subtle", textContent: where }));
      list.append(item);
    });
    const title = Object.assign(document.createElement("h2"), { textContent: heading });
    summary.append(title, list);
    summary.hidden = false;
    summary.focus();
  }

  function saved(answer, verb) {
    key = answer.key || key;
    etag = answer.etag || etag;
    form.dataset.key = key;
    form.elements.key.readOnly = true;
    const report = document.getElementById("open-report");
    report.href = `/experiments/${encodeURIComponent(key)}/report${location.search}`;
    report.hidden = false;
    document.getElementById("start").hidden = false;
    document.getElementById("qa-link").hidden = false;
    showPower(); // the plan may have changed with the experiment
    if (!location.pathname.endsWith("/edit")) {
      history.replaceState(null, "", `/experiments/${encodeURIComponent(key)}/edit${location.search}`);
    }
    status.textContent = `${verb} ${key}.`;
  }

  async function send(url, method, body) {
    const headers = { "X-CSRF-Token": csrf() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (etag) headers["If-Match"] = etag;
    const response = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    etag = response.headers.get("ETag") || etag;
    return { response, answer };
  }

  function refused(response, answer) {
    if (response.status === 422) {
      const problems = answer.errors && answer.errors.length ? answer.errors : [{ message: answer.error }];
      showProblems(problems, `The experiment was not saved: ${problems.length} problem${problems.length > 1 ? "s" : ""}`);
    } else if (response.status === 412 || response.status === 428) {
      showProblems([{ message: "Someone changed this experiment since you opened it: reload the page to see their version." }], "Not saved");
    } else if (response.status === 401) {
      showProblems([{ message: "Your session has ended: sign in again (in another tab, to keep this form)." }], "Not saved");
    } else {
      showProblems([{ message: answer.error || `The server answered ${response.status}.` }], "Not saved");
    }
    status.textContent = "";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = collect();
    const problems = check(body);
    if (problems.length) {
      showProblems(problems, `Please correct ${problems.length} problem${problems.length > 1 ? "s" : ""}`);
      return;
    }
    clearProblems();
    status.textContent = "Saving…";
    const url = key ? `/api/experiments/${encodeURIComponent(key)}` : "/api/experiments";
    try {
      const { response, answer } = await send(url, key ? "PUT" : "POST", body);
      if (response.ok) saved(answer, response.status === 201 ? "Created" : "Saved");
      else refused(response, answer);
    } catch (failure) {
      showProblems([{ message: "The dashboard cannot be reached; nothing was saved." }], "Not saved");
    }
  });

  document.getElementById("start").addEventListener("click", async () => {
    status.textContent = "Starting…";
    try {
      const { response, answer } = await send(`/api/experiments/${encodeURIComponent(key)}/start`, "POST");
      if (response.ok) {
        etag = answer.etag || etag;
        form.elements.status.value = "running";
        status.textContent = `Started ${key}: visitors see it within a second.`;
      } else {
        refused(response, answer);
      }
    } catch (failure) {
      showProblems([{ message: "The dashboard cannot be reached; the experiment was not started." }], "Not started");
    }
  });

  // A signed QA link for a saved variant (POST /api/experiments/{key}/qa-link).
  const qaVariant = document.getElementById("qa-variant");
  qaVariant.addEventListener("focus", () => {
    const chosen = qaVariant.value;
    qaVariant.replaceChildren(...collect().variants.filter((v) => KEY.test(v.key)).map((v) =>
      Object.assign(document.createElement("option"), { value: v.key, textContent: v.key, selected: v.key === chosen })));
  });
  document.getElementById("qa-make").addEventListener("click", async () => {
    const output = document.getElementById("qa-url");
    const order = {
      variant: qaVariant.value,
      hours: Number(document.getElementById("qa-hours").value),
      preview: document.getElementById("qa-preview").checked,
    };
    status.textContent = "Making a QA link…";
    try {
      const { response, answer } = await send(`/api/experiments/${encodeURIComponent(key)}/qa-link`, "POST", order);
      if (response.ok) {
        output.value = answer.url;
        output.select();
        status.textContent = `QA link for ${key}: ${order.variant}, until ${new Date(answer.expires * 1000).toLocaleString()}.`;
      } else {
        const problems = answer.errors && answer.errors.length ? answer.errors : [{ message: answer.error || `The server answered ${response.status}.` }];
        showProblems(problems, "No QA link was made");
        status.textContent = "";
      }
    } catch (failure) {
      showProblems([{ message: "The dashboard cannot be reached; no link was made." }], "No QA link");
    }
  });

  document.getElementById("add-variant").addEventListener("click", () => {
    const variant = clone("variant-template");
    const count = variants.querySelectorAll("[data-variant]").length;
    variants.append(variant);
    own(variant, '[data-name="key"]')[0].value = `v${count + 1}`;
    renumber();
    own(variant, '[data-name="key"]')[0].focus();
  });

  form.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const variant = button.closest("[data-variant]");
    if (button.matches("[data-add-change]")) {
      const change = clone("change-template");
      variant.querySelector("[data-changes]").append(change);
      renumber();
      change.querySelector("select").focus();
    } else if (button.matches("[data-remove-change]")) {
      button.closest("[data-change]").remove();
      renumber();
      own(variant, "[data-add-change]")[0].focus();
    } else if (button.matches("[data-remove-variant]")) {
      variant.remove();
      renumber();
      document.getElementById("add-variant").focus();
    }
  });
  form.addEventListener("input", (event) => {
    if (event.target.matches('[data-name="weight"]')) renumber();
  });

  // The pre-launch power check of the saved experiment (GET /api/experiments/{key}/power).
  function showPower() {
    if (!key) return;
    fetch(`/api/experiments/${encodeURIComponent(key)}/power`, { credentials: "same-origin" })
      .then(async (response) => {
        if (!response.ok) return;
        const answer = await response.json().catch(() => ({}));
        const note = document.getElementById("power-note");
        note.textContent = answer.note || "";
        note.hidden = !answer.note;
      })
      .catch(() => {});
  }
  showPower();

  if (key) { // the current version's ETag, for If-Match
    fetch(`/api/experiments/${encodeURIComponent(key)}`, { credentials: "same-origin" })
      .then(async (response) => {
        if (!response.ok) return;
        const answer = await response.json().catch(() => ({}));
        etag = response.headers.get("ETag") || answer.etag || null;
      })
      .catch(() => {});
  }
  renumber();
})();
