// fraudscore pages: plain JavaScript over the JSON API, no build step.
const fraudscore = (() => {
  const $ = (id) => document.getElementById(id);
  const token = () => $("token").value.trim();
  function keepToken() {
    const input = $("token");
    input.value = localStorage.getItem("fraudscore-token") || "";
    input.addEventListener("change", () => localStorage.setItem("fraudscore-token", token()));
  }
  async function api(path, options = {}) {
    const headers = Object.assign({ Authorization: `Bearer ${token()}` }, options.headers || {});
    const response = await fetch(path, Object.assign({}, options, { headers }));
    const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) throw new Error(body?.error?.message || `HTTP ${response.status}`);
    return body;
  }
  // Text from files and users goes into the page as text, never as markup.
  const escape = (value) => String(value ?? "").replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const percent = (part, whole) => (whole ? (100 * part) / whole : 0);
  // A share as a percentage people read: 100%, 12%, 2.7%, 0.52%, 0.013%; never 1.0e+2%.
  const percentText = (fraction) => {
    const p = 100 * fraction;
    if (p === 0) return "0%";
    if (p >= 10) return `${p.toFixed(0)}%`;
    if (p >= 1) return `${p.toFixed(1)}%`;
    return p >= 0.01 ? `${+p.toPrecision(2)}%` : "<0.01%";
  };
  const pct = (part, whole) => percentText(whole ? part / whole : 0);
  // A sentence: a capital first letter, a full stop at the end.
  const sentence = (text) => {
    const s = String(text ?? "").trim();
    return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : "";
  };
  // A file's time as a date where it is epoch seconds or milliseconds, else as written.
  const timeText = (value) => {
    const text = String(value ?? "");
    if (!/^\d{9,13}(\.\d+)?$/.test(text)) return text;
    const n = Number(text), ms = n >= 1e12 ? n : n * 1000;
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  };
  const number = (value) => (value === null || value === undefined ? "" : Number(value).toLocaleString("en"));
  function age(iso) {
    if (!iso) return "";
    const seconds = (Date.now() - Date.parse(iso)) / 1000;
    for (const [unit, size] of [["day", 86400], ["hour", 3600], ["minute", 60]]) {
      if (seconds >= size) return `${Math.floor(seconds / size)} ${unit}${seconds >= 2 * size ? "s" : ""} ago`;
    }
    return "just now";
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString("en-GB") : "");

  function uploadPage() {
    keepToken();
    const message = $("message");
    $("upload-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      localStorage.setItem("fraudscore-token", token());
      const data = new FormData();
      data.append("file", $("file").files[0]);
      data.append("top_k", $("top_k").value);
      const alertPercent = $("alert_rate").value;
      if (alertPercent) data.append("alert_rate", String(Number(alertPercent) / 100));
      if ($("keep_columns").checked) data.append("keep_columns", "true");
      const ratePercent = $("expected_fraud_rate").value;
      if (ratePercent) data.append("expected_fraud_rate", String(Number(ratePercent) / 100));
      message.textContent = "Uploading…";
      try {
        const job = await api("/api/v1/jobs", { method: "POST", body: data });
        window.location = `/jobs/${job.job_id}`;
      } catch (error) {
        message.textContent = `Upload failed: ${error.message}`;
      }
    });
  }

  // Horizontal bars, one per risk level, as a share of the rows: a 0.5% level still shows.
  function riskChart(svg, labels, counts, colors) {
    const total = counts.reduce((a, b) => a + b, 0);
    const width = Number(svg.getAttribute("width")), left = 70, right = 150, row = 30;
    const span = width - left - right;
    svg.innerHTML = labels.map((label, i) => {
      const share = percent(counts[i], total);
      const w = counts[i] ? Math.max(3, (share / 100) * span) : 0;
      return `<text x="${left - 8}" y="${i * row + 19}" text-anchor="end" font-size="13">${label}</text>` +
        `<rect x="${left}" y="${i * row + 6}" width="${w}" height="18" fill="${colors[i]}"><title>${label}: ${counts[i]}</title></rect>` +
        `<text x="${left + w + 6}" y="${i * row + 19}" font-size="12">${pct(counts[i], total)} (${number(counts[i])} rows)</text>`;
    }).join("");
  }

  // Rows per probability bin on a log scale, so the few risky rows are drawn, with axis titles.
  function histogram(svg, counts) {
    const width = Number(svg.getAttribute("width")), height = Number(svg.getAttribute("height"));
    const left = 64, bottom = 46, top = 10, plot = height - bottom - top;
    const step = (width - left - 10) / counts.length;
    const max = Math.log10(1 + Math.max(1, ...counts));
    const total = counts.reduce((a, b) => a + b, 0);
    const ticks = [];
    for (let p = 1; p <= 10 ** Math.ceil(max); p *= 10) {
      const y = top + plot - (Math.log10(1 + p) / max) * plot;
      if (y >= top - 1) ticks.push(`<line x1="${left - 4}" x2="${width - 10}" y1="${y}" y2="${y}" stroke="#e4e8ee"/>` +
        `<text x="${left - 6}" y="${y + 4}" text-anchor="end" font-size="10" fill="#555">${number(p)}</text>`);
    }
    const bars = counts.map((count, i) => {
      const h = (Math.log10(1 + count) / max) * plot;
      const x = left + i * step;
      return `<rect x="${x + 3}" y="${top + plot - h}" width="${step - 6}" height="${h}" fill="#2f7de1"><title>${(i / 10).toFixed(1)}-${((i + 1) / 10).toFixed(1)}: ${count} rows (${pct(count, total)})</title></rect>` +
        `<text x="${x + step / 2}" y="${top + plot + 14}" text-anchor="middle" font-size="10">${(i / 10).toFixed(1)}</text>`;
    }).join("");
    svg.innerHTML = ticks.join("") + bars +
      `<text x="${left + (width - left) / 2}" y="${height - 6}" text-anchor="middle" font-size="12">fraud probability (bin start)</text>` +
      `<text transform="translate(14 ${top + plot / 2}) rotate(-90)" text-anchor="middle" font-size="12">rows (log scale)</text>`;
  }

  async function save(path, name) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  // How each risk level was drawn, with the share of rows the bars show: from its threshold,
  // an alert budget, or a riskiest share when fewer rows reached the threshold.
  function levels(thresholds, stats) {
    if (!thresholds) return "";
    const scored = stats.high_risk + stats.medium_risk + stats.low_risk;
    const level = (name, rows, from, cut, minimum) => {
      const head = `${name}: ${pct(rows, scored)} of the rows, probability ${+cut.toPrecision(3)} and above`;
      if (from === "alert budget") return `${head}, the alert budget of the riskiest ${percentText(thresholds.alert_rate)}.`;
      if (from === "riskiest share") return `${head}: fewer rows reached the usual threshold, so at least the riskiest ${percentText(minimum)} are here.`;
      return `${head}.`;
    };
    return [
      level("High", stats.high_risk, thresholds.high_from, thresholds.high, thresholds.min_high_share),
      level("Medium or above", stats.high_risk + stats.medium_risk, thresholds.medium_from, thresholds.medium, thresholds.min_medium_share),
    ].join(" ");
  }

  // The riskiest rows, without the columns this file has nothing for (no id, no card...).
  function riskiestTable(table, rows) {
    const columns = [
      ["row", (r) => r.row_number, true],
      ["id", (r) => escape(r.id), rows.some((r) => r.id)],
      ["card", (r) => escape(r.customer), rows.some((r) => r.customer)],
      ["amount", (r) => number(r.amount), rows.some((r) => r.amount !== null && r.amount !== undefined)],
      ["time", (r) => escape(timeText(r.time)), rows.some((r) => r.time)],
      ["probability", (r) => r.fraud_probability.toFixed(3), true],
      ["risk", (r) => `${escape(r.risk_level)}${r.is_anomaly ? " · anomaly" : ""}`, true],
      ["reasons", (r) => escape(r.reasons), true],
    ].filter(([, , shown]) => shown);
    table.querySelector("thead").innerHTML = `<tr>${columns.map(([name]) => `<th>${name}</th>`).join("")}</tr>`;
    table.querySelector("tbody").innerHTML = rows.map((r) =>
      `<tr class="risk-${escape(r.risk_level)}">${columns.map(([, cell]) => `<td>${cell(r)}</td>`).join("")}</tr>`).join("") ||
      `<tr><td colspan="${columns.length}">Reasons were turned off for this job.</td></tr>`;
  }

  function showDone(job) {
    const stats = job.stats, methods = job.methods_used || {};
    const total = stats.total_transactions;
    $("done").hidden = false;
    $("warnings").innerHTML = (methods.warnings || []).map((w) => `<li>${escape(sentence(w))}</li>`).join("");
    const lines = [
      ["rows scored", total, null],
      ["high risk", stats.high_risk, total],
      ["medium risk", stats.medium_risk, total],
      ["low risk", stats.low_risk, total],
      ["anomalies", stats.anomalies_detected, total],
      ["rows that could not be scored", stats.rows_failed, total + stats.rows_failed],
      ["expected frauds (sum of probabilities)", stats.expected_frauds, null],
    ];
    $("stats").innerHTML = lines.filter(([, value]) => value !== undefined)
      .map(([label, value, whole]) => `<tr><td>${label}</td><td>${number(value)}</td><td>${whole === null ? "" : pct(value, whole)}</td></tr>`).join("");
    const band = stats.fraud_rate_band, level = stats.fraud_rate_level || "estimated";
    if (level !== "estimated") {
      const from = level === "stated" ? "as you stated it" : "at your team's level, from its labels";
      $("stats").insertAdjacentHTML("beforeend",
        `<tr><td>expected fraud rate (${from})</td><td>${percentText(stats.estimated_fraud_rate)}</td><td></td></tr>`);
    } else if (band) {
      $("stats").insertAdjacentHTML("beforeend",
        `<tr><td>estimated fraud rate (plausible range, without labels)</td><td>${percentText(stats.estimated_fraud_rate)}</td>` +
        `<td>${percentText(band[0])} to ${percentText(band[1])}</td></tr>`);
    }
    riskChart($("risk-chart"), ["high", "medium", "low"],
      [stats.high_risk, stats.medium_risk, stats.low_risk], ["#b3261e", "#e6a23c", "#3a9d5d"]);
    $("levels").textContent = levels(methods.risk_thresholds, stats);
    histogram($("histogram"), stats.probability_histogram || []);
    riskiestTable($("riskiest"), stats.riskiest_rows || []);
    const blend = methods.blend;
    $("blend").textContent = (blend
      ? `Reference models weigh ${percentText(blend.reference_weight)}, the file's own anomaly ranking ${percentText(blend.anomaly_weight)} (${blend.reason}).` +
        (blend.file_model ? ` ${sentence(blend.file_model_reason)}` : "")
      : "") + (methods.team_model ? ` ${sentence(methods.team_model.reason)}` : "");
    $("models").querySelector("tbody").innerHTML = (methods.models || [])
      .map((m) => `<tr><td>${escape(m.name)}</td><td>${m.similarity}</td><td>${m.weight}</td></tr>`).join("");
    const columns = methods.columns || {};
    const list = (names) => (names && names.length ? names.map(escape).join(", ") : "none");
    $("columns").innerHTML =
      `<dt>Columns the reference models use</dt><dd>${list(columns.reference_models)}</dd>` +
      `<dt>Columns only anomaly detection uses</dt><dd>${list(columns.anomaly_only)}</dd>` +
      `<dt>Columns left out (ids, free text, constant)</dt><dd>${list(columns.ignored)}</dd>`;
    $("download").onclick = () => save(`/api/v1/jobs/${job.job_id}/result`, `${job.job_id}-predictions.csv`);
    if (job.errors_url) {
      const button = $("download-errors");
      button.hidden = false;
      button.onclick = () => save(`/api/v1/jobs/${job.job_id}/errors`, `${job.job_id}-errors.csv`);
    }
    $("labels-form").onsubmit = (event) => sendLabels(event, job.job_id);
  }

  async function sendLabels(event, jobId) {
    event.preventDefault();
    const message = $("labels-message");
    const data = new FormData();
    data.append("file", $("labels-file").files[0]);
    if ($("model-name").value.trim()) data.append("model_name", $("model-name").value.trim());
    message.textContent = "Sending…";
    try {
      const answer = await api(`/api/v1/jobs/${jobId}/labels`, { method: "POST", body: data });
      const training = answer.training_job;
      message.innerHTML = escape(sentence(answer.message)) +
        (training ? ` <a href="/jobs/${escape(training.job_id)}">Follow the training job</a>.` : "");
    } catch (error) {
      message.textContent = `Labels refused: ${error.message}`;
    }
  }

  function showTrained(job) {
    const metrics = (job.stats || {}).metrics || {};
    const trained = $("trained");
    trained.hidden = false;
    trained.textContent = `Trained ${job.model}: on your labels, out of time, it ranks fraud at ROC ` +
      `${Number(metrics.roc_auc).toFixed(3)} (the scoring without labels: ${Number(metrics.label_free_roc_auc).toFixed(3)}). ` +
      "Your next files with these columns are scored with it.";
  }

  function jobPage(jobId) {
    keepToken();
    const tick = async () => {
      try {
        const job = await api(`/api/v1/jobs/${jobId}`);
        const title = job.kind === "train" ? `Training ${job.options.name || ""}` : job.file_name;
        $("file-name").textContent = title;
        document.title = `${title} · fraudscore`;
        $("state").textContent = job.state;
        $("stage").textContent = job.stage ? `(${job.stage})` : "";
        $("progress").style.width = `${job.progress.percent}%`;
        const total = job.progress.rows_total ? ` of ${number(job.progress.rows_total)}` : "";
        const what = job.kind === "train" ? "labeled rows" : "rows";
        const parts = job.progress.parts ? ` in ${job.progress.parts} parts` : "";
        const eta = job.progress.eta_seconds !== null && job.progress.eta_seconds !== undefined
          ? ` · about ${Math.ceil(job.progress.eta_seconds)} s left` : "";
        const ahead = job.state === "queued" && job.progress.queued_ahead !== null && job.progress.queued_ahead !== undefined
          ? ` · ${number(job.progress.queued_ahead)} job${job.progress.queued_ahead === 1 ? "" : "s"} ahead in the queue` : "";
        $("rows").textContent = `${number(job.progress.rows_done)}${total} ${what}${parts} (${job.progress.percent}%)${eta}${ahead}`;
        $("times").textContent = `submitted ${when(job.created_at)}` +
          (job.finished_at ? ` · finished ${when(job.finished_at)}` : "") +
          (job.duration_seconds !== null ? ` · took ${job.duration_seconds} s` : "");
        if (job.state === "succeeded") return job.kind === "train" ? showTrained(job) : showDone(job);
        if (job.state === "failed" || job.state === "cancelled") {
          $("error").textContent = job.error || job.state;
          return;
        }
      } catch (error) {
        $("error").textContent = error.message;
      }
      setTimeout(tick, 700);
    };
    tick();
  }

  function jobsPage() {
    keepToken();
    const load = async () => {
      $("error").textContent = "";
      try {
        const body = await api("/api/v1/jobs?per_page=100");
        $("empty").hidden = body.jobs.length > 0;
        $("jobs").querySelector("tbody").innerHTML = body.jobs.map((job) =>
          `<tr><td><a href="/jobs/${job.job_id}">${escape(job.kind === "train" ? `training ${job.options.name || ""}` : job.file_name)}</a></td><td>${escape(job.state)}</td>` +
          `<td>${number(job.progress.rows_total)}</td><td>${job.stats ? number(job.stats.high_risk) : ""}</td>` +
          `<td title="${escape(job.created_at)}">${age(job.created_at)}</td></tr>`).join("");
      } catch (error) {
        $("error").textContent = error.message;
      }
    };
    $("token").addEventListener("change", load);
    load();
  }
  return { uploadPage, jobPage, jobsPage, histogram };  // histogram: drawn by the tests too
})();

// Each page names itself on <body> (no inline script: the Content-Security-Policy forbids it).
(() => {
  const { page, jobId } = document.body.dataset;
  if (page === "upload") fraudscore.uploadPage();
  else if (page === "jobs") fraudscore.jobsPage();
  else if (page === "job") fraudscore.jobPage(jobId);
})();
