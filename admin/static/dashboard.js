/* Refract dashboard: charts (plotly.js, from the plotly package), live updates, CSV export,
   signing in and out. No framework; the pages work as plain HTML tables without it. */
(() => {
  "use strict";

  // Okabe & Ito (2008): distinguishable with the common colour-vision deficiencies.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
    "#F0E442", "#000000"];
  const BANDS = ["rgba(0,114,178,0.18)", "rgba(230,159,0,0.22)", "rgba(0,158,115,0.2)",
    "rgba(213,94,0,0.2)", "rgba(204,121,167,0.22)"];
  const CONFIG = { displayModeBar: false, responsive: true };
  // A diverging scale light enough that black text reads on every cell (9:1 or more at the
  // ends; between stops the luminance moves monotonically towards the light middle).
  const DIVERGING = [[0, "#E69F00"], [0.5, "#F7F7F7"], [1, "#56B4E9"]];

  // WCAG 2 contrast, to give text drawn on a coloured bar the ink that reads best on it:
  // black or white, whichever is further (5.2:1 or more on every palette colour).
  function luminance(hex) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
      .map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  const contrast = (a, b) => {
    const [high, low] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (high + 0.05) / (low + 0.05);
  };
  const inkOn = (fill) => (contrast("#000000", fill) >= contrast("#FFFFFF", fill) ? "#000000" : "#FFFFFF");

  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const viewData = () => JSON.parse(document.getElementById("view-data").textContent || "{}");
  const pct = (value) => (value === null || value === undefined ? null : value * 100);
  const words = (text) => String(text).replace(/_/g, " ");

  function layout(extra) {
    const merged = Object.assign({
      colorway: PALETTE,
      font: { family: "system-ui, -apple-system, 'Segoe UI', sans-serif", size: 13, color: "#1a1a1a" },
      margin: { l: 64, r: 16, t: 36, b: 48 },
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      hoverlabel: { font: { size: 13 } },
    }, extra);
    // long or rotated tick labels widen the margins instead of running off a phone's chart
    for (const axis of ["xaxis", "yaxis"]) merged[axis] = Object.assign({ automargin: true }, merged[axis]);
    return merged;
  }

  const percentAxis = (title) => ({
    title: { text: title }, ticksuffix: "%", zeroline: true, zerolinecolor: "#555",
    zerolinewidth: 1.5, gridcolor: "#e3e3e3",
  });

  const known = (values) => values.some((value) => value !== null && value !== undefined);

  // A lift axis that shows the estimates, not the widest interval: with few conversions an
  // interval can reach +10,000% and flatten every point to the zero line. The axis spans the
  // estimates (and at least -50%..+50%), intervals are cut at three times the largest estimate
  // (at least +/-100%; never below -100%, a lift's floor); ``cut`` says whether one is, and the
  // chart's caption then says so (the caption's text gives every interval in full).
  function liftAxis(title, lifts, lows, highs) {
    const values = (list) => list.filter((v) => v !== null && v !== undefined && isFinite(v)).map(pct);
    const points = values(lifts);
    const reach = Math.max(100, 3 * Math.max(0, ...points.map(Math.abs)));
    const low = Math.max(-100, Math.min(-50, ...points, ...values(lows).map((v) => Math.max(v, -reach))));
    const high = Math.max(50, ...points, ...values(highs).map((v) => Math.min(v, reach)));
    const cut = values(lows).some((v) => v < low) || values(highs).some((v) => v > high);
    return { axis: Object.assign(percentAxis(title), { range: [low * 1.05, high * 1.05] }), cut };
  }

  // Each chart: a function of the page's data (#view-data) to plotly traces and a layout, or
  // null when there is nothing to draw (its caption, from the server, says why).
  const CHARTS = {
    lift(data) {
      if (!data.over_time.some((line) => known(line.lift))) return null;
      const traces = [];
      data.over_time.forEach((line, i) => {
        const colour = PALETTE[i % PALETTE.length];
        traces.push({ x: line.days, y: line.high.map(pct), mode: "lines", line: { width: 0 },
          hoverinfo: "skip", showlegend: false });
        traces.push({ x: line.days, y: line.low.map(pct), mode: "lines", line: { width: 0 },
          fill: "tonexty", fillcolor: BANDS[i % BANDS.length], name: `${line.variant} interval`,
          hoverinfo: "skip" });
        traces.push({ x: line.days, y: line.lift.map(pct), mode: "lines+markers",
          line: { color: colour, width: 2.5, dash: ["solid", "dash", "dot"][i % 3] },
          marker: { symbol: ["circle", "square", "diamond"][i % 3], size: 7 },
          name: line.variant, hovertemplate: "%{x}: %{y:+.1f}%<extra>%{fullData.name}</extra>" });
      });
      // the axes say what is measured, the figure's heading which metric: a metric's name can
      // be longer than a phone's chart is tall
      const lines = data.over_time;
      const y = liftAxis("lift over control", lines.flatMap((l) => l.lift),
        lines.flatMap((l) => l.low), lines.flatMap((l) => l.high));
      return [traces, layout({ yaxis: y.axis, meta: { cut: y.cut },
        xaxis: { type: "category", title: { text: "day of first exposure" } } })];
    },

    conversion(data) {
      const arms = data.conversion;
      if (!arms.length) return null;
      return [[{
        type: "bar", x: arms.map((a) => a.variant), y: arms.map((a) => pct(a.rate)),
        marker: { color: arms.map((_, i) => PALETTE[i % PALETTE.length]) },
        error_y: { type: "data", symmetric: false, color: "#1a1a1a", thickness: 2, width: 8,
          array: arms.map((a) => pct(a.high - a.rate)), arrayminus: arms.map((a) => pct(a.rate - a.low)) },
        customdata: arms.map((a) => [pct(a.low), pct(a.high), a.visitors]),
        hovertemplate: "%{x}: %{y:.2f}% (%{customdata[0]:.2f}% to %{customdata[1]:.2f}%), %{customdata[2]:,} visitors<extra></extra>",
      }], layout({ showlegend: false, yaxis: percentAxis("conversion"),
        xaxis: { title: { text: "variant" } } })];
    },

    segments(data) {
      const heat = data.heat;
      if (!heat.lift.some(known)) return null;
      const z = heat.lift.map((row) => row.map(pct));
      const text = heat.lift.map((row, i) => row.map((lift, j) => (lift === null ? "n/a"
        : `${lift >= 0 ? "+" : ""}${(lift * 100).toFixed(1)}%${heat.significant[i][j] ? " *" : ""}`)));
      const largest = Math.max(1, ...z.flat().filter((v) => v !== null).map(Math.abs));
      return [[{
        type: "heatmap", x: heat.variants, y: heat.segments, z, text, texttemplate: "%{text}",
        zmin: -largest, zmax: largest, zmid: 0,
        colorscale: DIVERGING, textfont: { color: "#000000" },
        colorbar: { title: { text: "lift" }, ticksuffix: "%" }, xgap: 2, ygap: 2,
        hovertemplate: "%{y}, %{x}: %{text}<extra></extra>",
      }], layout({ margin: { l: 150, r: 16, t: 16, b: 48 }, height: 140 + 44 * heat.segments.length,
        yaxis: { autorange: "reversed" }, xaxis: { title: { text: "variant" } } })];
    },

    experiments(data) {
      const shown = data.experiments.filter((s) => s.lift !== null);
      if (!shown.length) return null;
      const y = liftAxis("primary lift", shown.map((s) => s.lift), shown.map((s) => s.ci_low),
        shown.map((s) => s.ci_high));
      return [[{
        type: "bar", x: shown.map((s) => `${s.key} (${s.variant})`), y: shown.map((s) => pct(s.lift)),
        marker: { color: shown.map((s) => (s.action === "ship" ? PALETTE[2] : PALETTE[0])) },
        error_y: { type: "data", symmetric: false, color: "#1a1a1a", thickness: 2,
          array: shown.map((s) => (s.ci_high === null ? 0 : pct(s.ci_high - s.lift))),
          arrayminus: shown.map((s) => (s.ci_low === null ? 0 : pct(s.lift - s.ci_low))) },
        hovertemplate: "%{x}: %{y:+.1f}%<extra></extra>",
      }], layout({ showlegend: false, yaxis: y.axis, meta: { cut: y.cut } })];
    },

    funnel(data) {
      const stages = data.funnel;
      const colours = stages.map((_, i) => PALETTE[i % PALETTE.length]);
      return [[{
        type: "funnel", y: stages.map((s) => s.stage), x: stages.map((s) => s.accounts),
        textinfo: "value+percent initial", marker: { color: colours },
        insidetextfont: { color: colours.map(inkOn) }, outsidetextfont: { color: "#1a1a1a" },
        customdata: stages.map((s) => Math.round(s.pipeline)),
        hovertemplate: "%{y}: %{x} accounts, %{customdata:,} expected pipeline<extra></extra>",
      }], layout({ showlegend: false, margin: { l: 120, r: 16, t: 16, b: 32 } })];
    },

    intent(data) {
      if (!data.intent.length) return null;
      return [[{
        type: "histogram", x: data.intent, xbins: { start: 0, end: 100, size: 10 },
        marker: { color: PALETTE[0], line: { color: "#fff", width: 1 } },
        hovertemplate: "intent %{x}: %{y} accounts<extra></extra>",
      }], layout({ showlegend: false, bargap: 0.05,
        xaxis: { title: { text: "intent score (0 to 100)" }, range: [0, 100] },
        yaxis: { title: { text: "accounts" }, gridcolor: "#e3e3e3" } })];
    },

    psychographics(data) {
      const names = Object.keys(data.psychographics);
      const axes = names.map((name) => data.psychographics[name]);
      return [[{
        // the guess under its axis's name, not on the bar: beside a long bar on a phone it
        // would run off the chart
        type: "bar", orientation: "h", x: axes.map((a) => pct(a.confidence)),
        y: names.map((name, i) => `${words(name)}<br><b>${words(axes[i].value)}</b>`),
        marker: { color: PALETTE[0] }, hovertemplate: "%{y}: %{x:.0f}%<extra></extra>",
      }], layout({ showlegend: false, margin: { l: 130, r: 16, t: 16, b: 48 },
        height: 100 + 44 * names.length,
        xaxis: { title: { text: "confidence" }, ticksuffix: "%", range: [0, 100] },
        yaxis: { autorange: "reversed" } })];
    },
  };

  // The caption of a chart whose intervals run past its axis says so (liftAxis).
  function noteCut(name, cut) {
    const caption = document.getElementById(`caption-${name}`);
    if (!caption) return;
    const note = caption.querySelector(".cut-note");
    if (note) note.remove();
    if (!cut) return;
    const added = document.createElement("span");
    added.className = "cut-note";
    added.textContent = " Intervals wider than the chart are cut at its edge.";
    caption.append(added);
  }

  // A chart the server describes whole (``data.figures[name]``: plotly traces and the layout's
  // own settings, merged into the common layout), for pages whose charts need no code here.
  function described(name) {
    return (data) => {
      const figure = (data.figures || {})[name];
      if (!figure || !figure.traces.length) return null;
      return [figure.traces, layout(figure.layout || {})];
    };
  }

  function drawCharts() {
    if (!window.Plotly) return; // the tables and captions still say it all
    const data = viewData();
    for (const element of document.querySelectorAll("[data-chart]")) {
      const chart = CHARTS[element.dataset.chart] || described(element.dataset.chart);
      if (!chart) continue;
      const drawn = chart(data);
      element.hidden = drawn === null; // an empty chart: its caption says why
      if (drawn === null) window.Plotly.purge(element);
      else window.Plotly.react(element, drawn[0], drawn[1], CONFIG);
      noteCut(element.dataset.chart, drawn !== null && Boolean(drawn[1].meta && drawn[1].meta.cut));
    }
  }

  // --- live: re-render when the view's data changes (at most once a second, server side) ---

  let busy = false;
  let again = false;

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (response.ok && !response.redirected) {
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const region of document.querySelectorAll("[data-live-region][id]")) {
          const next = fresh.getElementById(region.id);
          // never pull the content from under the keyboard
          if (next && next.innerHTML !== region.innerHTML && !region.contains(document.activeElement)) {
            region.innerHTML = next.innerHTML;
          }
        }
        for (const plot of document.querySelectorAll("[data-chart]")) {
          const next = fresh.getElementById(plot.id);
          if (next) plot.setAttribute("aria-label", next.getAttribute("aria-label"));
        }
        const data = fresh.getElementById("view-data");
        const mine = document.getElementById("view-data");
        if (data && data.textContent !== mine.textContent) {
          mine.textContent = data.textContent;
          drawCharts();
        }
        enableCsv();
      }
    } catch (error) {
      // offline for a moment: keep what is shown
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }

  function subscribe() {
    const view = document.body.dataset.live;
    if (!view || !window.EventSource) return;
    let last = null;
    const source = new EventSource(`/api/live?view=${encodeURIComponent(view)}`);
    // The first message is the state the page was just rendered from: fetching the page again
    // for it would download and draw everything twice. Only later changes refresh.
    source.onmessage = (event) => {
      if (event.data === last) return;
      const first = last === null;
      last = event.data;
      if (!first) refresh();
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) source.close(); // no live view: stay static
    };
  }

  // --- CSV export of tables that have no JSON endpoint ---

  function csvCell(text) {
    let value = text.replace(/\s+/g, " ").trim();
    // a spreadsheet must not run a cell as a formula (signed numbers stay numbers)
    if (/^[=@\t\r]/.test(value) || (/^[+-]/.test(value) && !/^[+-][\d.,]+%?( \*)?$/.test(value))) {
      value = `'${value}`;
    }
    return `"${value.replace(/"/g, '""')}"`;
  }

  function tableCsv(table) {
    return [...table.querySelectorAll("tr")]
      .map((row) => [...row.children].map((cell) => csvCell(cell.textContent)).join(","))
      .join("\r\n") + "\r\n";
  }

  function enableCsv() {
    for (const button of document.querySelectorAll("button.csv")) button.hidden = false;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.csv");
    if (!button) return;
    const table = document.getElementById(button.dataset.table);
    const url = URL.createObjectURL(new Blob([tableCsv(table)], { type: "text/csv" }));
    const link = Object.assign(document.createElement("a"), { href: url, download: `${table.id}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });

  // --- signing in and out ---

  function signIn(form) {
    const error = document.getElementById("login-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const username = form.elements.username.value.trim();
      const password = form.elements.password.value;
      let message = "";
      if (!username || !password) {
        message = "Enter your user name and your password.";
      } else {
        try {
          const response = await fetch("/api/login", {
            method: "POST", credentials: "same-origin",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ username, password }),
          });
          if (response.ok) { location.assign(form.dataset.next || "/overview"); return; }
          const answer = await response.json().catch(() => ({}));
          const wait = response.headers.get("Retry-After");
          message = response.status === 401 ? "Wrong user name or password."
            : response.status === 429 ? `Too many wrong passwords. Try again in ${wait} seconds.`
            : answer.error || `Signing in failed (${response.status}).`;
        } catch (failure) {
          message = "The dashboard cannot be reached. Try again in a moment.";
        }
      }
      error.textContent = message;
      error.hidden = false;
      error.focus();
    });
  }

  function signOut(button) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await fetch("/api/logout", { method: "POST", credentials: "same-origin",
          headers: { "X-CSRF-Token": csrf() } });
      } finally {
        location.assign("/login");
      }
    });
  }

  window.refractDashboard = { csrf, viewData };
  const login = document.getElementById("login");
  if (login) signIn(login);
  const out = document.getElementById("sign-out");
  if (out) signOut(out);
  enableCsv();
  drawCharts();
  subscribe();
})();
