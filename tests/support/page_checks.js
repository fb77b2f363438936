// What a dashboard page must hold once its data is drawn (tests/test_dashboard_everywhere.py,
// tests/test_demo_traffic.py): returns the problems found, each a sentence naming the
// element. Runs in the page.
() => {
  const problems = [];
  const describe = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const classes = typeof el.className === "string" && el.className
      ? `.${el.className.trim().split(/\s+/).join(".")}` : "";
    return `${el.tagName.toLowerCase()}${id}${classes}`;
  };
  const visible = (el) => {
    const style = getComputedStyle(el);
    return style.display !== "none" && style.visibility !== "hidden" && el.getClientRects().length > 0;
  };

  // WCAG 2 contrast of two CSS colours ("rgb(r, g, b)" or "#rrggbb")
  const channels = (colour) => (colour.startsWith("#")
    ? [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16))
    : colour.match(/[\d.]+/g).slice(0, 3).map(Number));
  const luminance = (colour) => {
    const [r, g, b] = channels(colour).map((v) => v / 255)
      .map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const contrast = (a, b) => {
    const [high, low] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (high + 0.05) / (low + 0.05);
  };

  // words that mean a value went missing on its way to the page
  const text = document.body.innerText;
  const chartText = [...document.querySelectorAll(".main-svg text")].map((t) => t.textContent).join(" ");
  for (const word of ["null", "undefined", "NaN", "[object Object]"]) {
    if (text.includes(word) || chartText.includes(word)) problems.push(`the page shows "${word}"`);
  }

  // every table scrolls in a region the keyboard can reach, with a name
  for (const table of document.querySelectorAll("table")) {
    const wrap = table.parentElement;
    if (!wrap.matches('.table-wrap[tabindex="0"][role="region"][aria-label]')) {
      problems.push(`${describe(table)} is not in a focusable, named .table-wrap region`);
    }
  }

  // nothing clipped: no element hides part of its text (tables scroll, they are not clipped)
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg, .js-plotly-plot, .visually-hidden, script, style") || !visible(el)) continue;
    const style = getComputedStyle(el);
    const clips = [style.overflowX, style.overflowY].some((o) => o === "hidden" || o === "clip")
      || style.textOverflow === "ellipsis";
    if (clips && el.textContent.trim()
      && (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)) {
      problems.push(`${describe(el)} cuts off its text`);
    }
  }

  // a trace's points: cells with a value (heat maps), else positions known on every axis it
  // has (a day with no lift is no point, though the day is on the axis)
  const known = (v) => v !== null && v !== undefined && !Number.isNaN(v);
  const pointsOf = (trace) => {
    if (trace.z) return Array.from(trace.z).flat().filter(known).length;
    const axes = [trace.x, trace.y].filter(Boolean).map((values) => Array.from(values));
    const length = Math.max(0, ...axes.map((values) => values.length));
    return Array.from({ length }, (_, i) => i).filter((i) => axes.every((values) => known(values[i]))).length;
  };

  // charts: drawn, of the types asked for, with data, text inside the plot and readable; or,
  // with nothing to draw, hidden behind a caption that says why
  for (const plot of document.querySelectorAll("[data-chart]")) {
    const name = plot.dataset.chart;
    if (plot.hidden) {
      const caption = plot.closest("figure")?.querySelector("figcaption");
      if (!caption || !visible(caption) || !caption.textContent.trim()) {
        problems.push(`chart ${name} is empty and no caption says why`);
      }
      continue;
    }
    const svg = plot.querySelector(".main-svg");
    if (!svg || !plot._fullData) { problems.push(`chart ${name} was not drawn`); continue; }
    let points = 0;
    plot._fullData.forEach((trace) => {
      const asked = plot.data[trace.index].type || "scatter";
      if (trace.type !== asked) problems.push(`chart ${name}: plotly.js drew a ${trace.type} for a ${asked}`);
      if (trace.hoverinfo !== "skip") points += pointsOf(trace); // skipped: interval bands
    });
    if (!points) problems.push(`chart ${name} has no data`);
    const box = plot.getBoundingClientRect();
    for (const label of plot.querySelectorAll(".main-svg text")) {
      if (!label.textContent.trim() || !visible(label)) continue;
      const r = label.getBoundingClientRect();
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1) {
        problems.push(`chart ${name}: "${label.textContent}" is cut off at the chart's edge`);
      }
    }
    // text on bars and funnel stages: against the bar when inside it, else the white paper
    for (const point of plot.querySelectorAll("g.point")) {
      const label = point.querySelector("text");
      const bar = point.querySelector("path");
      if (!label || !bar || !label.textContent.trim()) continue;
      const t = label.getBoundingClientRect();
      const b = bar.getBoundingClientRect();
      const inside = t.left >= b.left - 1 && t.right <= b.right + 1 && t.top >= b.top - 1 && t.bottom <= b.bottom + 1;
      const ratio = contrast(getComputedStyle(label).fill, inside ? getComputedStyle(bar).fill : "#ffffff");
      const words = [...label.childNodes].map((n) => n.textContent).join(" ");
      if (ratio < 4.5) problems.push(`chart ${name}: "${words}" has contrast ${ratio.toFixed(2)}:1`);
    }
    // heat map labels: against the colour of their cell (plotly mixes the scale's stops in RGB)
    const heat = plot._fullData.find((trace) => trace.type === "heatmap");
    const cell = (z) => {
      if (z === null || z === undefined) return "#ffffff";
      const f = Math.min(1, Math.max(0, (z - heat.zmin) / (heat.zmax - heat.zmin || 1)));
      const stops = heat.colorscale;
      const i = Math.max(0, stops.findIndex((_, k) => k === stops.length - 1 || f <= stops[k + 1][0]));
      const [a, b] = [stops[i], stops[Math.min(i + 1, stops.length - 1)]];
      const w = b[0] === a[0] ? 0 : (f - a[0]) / (b[0] - a[0]);
      const [ca, cb] = [channels(a[1]), channels(b[1])];
      return `rgb(${ca.map((v, k) => Math.round(v + (cb[k] - v) * w)).join(", ")})`;
    };
    for (const label of plot.querySelectorAll("g.heatmap-label text")) {
      if (!label.__data__) { problems.push(`chart ${name}: a heat map label without its cell`); continue; }
      const background = cell(label.__data__.z);
      const ratio = contrast(getComputedStyle(label).fill, background);
      if (ratio < 4.5) problems.push(`chart ${name}: "${label.textContent}" on ${background} has contrast ${ratio.toFixed(2)}:1`);
    }
  }
  return problems;
}
