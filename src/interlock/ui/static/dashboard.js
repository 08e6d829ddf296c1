// The dashboard's charts: each reads its data from a JSON endpoint under /ui/api and draws it with Chart.js.
// Charts are kept by canvas id (Chart.getChart(id)), so a test can read exactly what is drawn.
"use strict";

(function () {
  const money = (v) => (v === null || v === undefined ? "-" : "$" + Number(v).toFixed(v !== 0 && Math.abs(v) < 0.01 ? 6 : 2));
  const ms = (v) => (v === null || v === undefined ? "-" : Math.round(v) + " ms");

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    const old = Chart.getChart(canvas);
    if (old) old.destroy();
    new Chart(canvas, { ...config, options: { animation: false, responsive: true, maintainAspectRatio: false, ...config.options } });
  }

  function totals(t, referenceModel) {
    const shown = {
      requests: t.requests, errors: t.errors, p50_ms: ms(t.p50_ms), p99_ms: ms(t.p99_ms),
      spend_usd: money(t.spend_usd), reference_usd: t.reference_usd ? money(t.reference_usd) : "-",
      saved_usd: t.saved_usd === null ? "-" : money(t.saved_usd),
      saved_percent: t.saved_percent === null ? "" : "(" + t.saved_percent + "%)",
      reference_model: referenceModel || "the reference model (none configured)",
    };
    for (const el of document.querySelectorAll("[data-total]")) el.textContent = shown[el.dataset.total];
  }

  async function overview(root) {
    const days = document.getElementById("days");
    const response = await fetch(root.dataset.overviewSrc + "?days=" + (days ? days.value : "30"), { credentials: "same-origin" });
    if (!response.ok) return;
    const data = await response.json();
    totals(data.totals, data.reference_model);
    const d = data.by_day;
    draw("chart-spend", {
      type: "line",
      data: { labels: d.labels, datasets: [
        { label: "spend (USD)", data: d.spend_usd },
        { label: "same traffic on " + (data.reference_model || "the reference model"), data: d.reference_usd, borderDash: [6, 4] },
        { label: "saved (USD)", data: d.saved_usd },
      ] },
    });
    draw("chart-models", {
      type: "bar",
      data: { labels: data.by_model.labels, datasets: [
        { label: "spend (USD)", data: data.by_model.spend_usd },
        { label: "on the reference model (USD)", data: data.by_model.reference_usd },
      ] },
    });
    draw("chart-requests", {
      type: "bar",
      data: { labels: d.labels, datasets: [{ label: "requests", data: d.requests }, { label: "errors", data: d.errors }] },
    });
    draw("chart-latency", {
      type: "line",
      data: { labels: d.labels, datasets: [{ label: "p50", data: d.p50_ms }, { label: "p99", data: d.p99_ms }] },
    });
    document.body.dataset.chartsReady = "overview";
  }

  async function verdicts(canvas) {
    const response = await fetch(canvas.dataset.verdictsSrc, { credentials: "same-origin" });
    if (!response.ok) return;
    const data = await response.json();
    const datasets = Object.entries(data.actions).map(([action, counts]) => ({ label: action, data: counts }));
    datasets.push({ label: "blocked requests", data: data.blocked_requests, type: "line" });
    draw("chart-verdicts", { type: "bar", data: { labels: data.labels, datasets }, options: { scales: { x: { stacked: true }, y: { stacked: true } } } });
    document.body.dataset.chartsReady = "guardrails";
  }

  async function routing(root) {
    const days = document.getElementById("routing-days");
    const response = await fetch(root.dataset.routingSrc + "?days=" + (days ? days.value : "30"), { credentials: "same-origin" });
    if (!response.ok) return;
    const data = await response.json();
    const served = Object.entries(data.served).map(([model, counts]) => ({ label: model, data: counts }));
    draw("chart-served", { type: "bar", data: { labels: data.labels, datasets: served }, options: { scales: { x: { stacked: true }, y: { stacked: true } } } });
    for (const [alias, r] of Object.entries(data.routers)) {
      const datasets = Object.entries(r.by_target).map(([model, counts]) => ({ label: model, data: counts, yAxisID: "y" }));
      datasets.push({ label: "share past " + r.cheap, data: r.strong_share, type: "line", yAxisID: "share" });
      draw("chart-router-" + alias, {
        type: "bar", data: { labels: data.labels, datasets },
        options: { scales: { x: { stacked: true }, y: { stacked: true }, share: { position: "right", min: 0, max: 1 } } },
      });
      const share = document.querySelector('[data-router-share="' + CSS.escape(alias) + '"]');
      if (share) share.textContent = r.share === null ? "-" : Math.round(r.share * 100) + "%";
    }
    const body = document.querySelector("#routes-table tbody");
    if (body) {
      body.replaceChildren(...data.routes.map((r) => {
        const tr = document.createElement("tr");
        for (const v of [r.asked, r.served, r.requests]) {
          const td = document.createElement("td");
          td.textContent = String(v);
          tr.appendChild(td);
        }
        return tr;
      }));
    }
    document.body.dataset.chartsReady = "routing";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const routes = document.querySelector("[data-routing-src]");
    if (routes) {
      routing(routes);
      const days = document.getElementById("routing-days");
      if (days) days.addEventListener("change", () => routing(routes));
    }
    const root = document.querySelector("[data-overview-src]");
    if (root) {
      overview(root);
      const days = document.getElementById("days");
      if (days) days.addEventListener("change", () => overview(root));
    }
    const canvas = document.querySelector("[data-verdicts-src]");
    if (canvas) verdicts(canvas);
  });
})();
