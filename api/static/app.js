// fraudscore pages: plain JavaScript over the JSON API, no build step.
const fraudscore = (() => {
  const tokenInput = () => document.getElementById("token");
  const token = () => tokenInput().value.trim();
  function keepToken() {
    const input = tokenInput();
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
  function uploadPage() {
    keepToken();
    const form = document.getElementById("upload-form");
    const message = document.getElementById("message");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      localStorage.setItem("fraudscore-token", token());
      if (!document.getElementById("unlabeled").checked) {
        message.textContent = "Only unlabeled datasets are scored here; tick the box.";
        return;
      }
      const data = new FormData();
      data.append("file", document.getElementById("file").files[0]);
      data.append("top_k", document.getElementById("top_k").value);
      const alertPercent = document.getElementById("alert_rate").value;
      if (alertPercent) data.append("alert_rate", String(Number(alertPercent) / 100));
      message.textContent = "Uploading…";
      try {
        const job = await api("/api/v1/jobs", { method: "POST", body: data });
        window.location = `/jobs/${job.job_id}`;
      } catch (error) {
        message.textContent = `Upload failed: ${error.message}`;
      }
    });
  }
  function bars(svg, labels, values, colors) {
    const max = Math.max(1, ...values);
    const width = Number(svg.getAttribute("width")), height = Number(svg.getAttribute("height")) - 30;
    const step = width / values.length;
    svg.innerHTML = values.map((value, i) => {
      const h = Math.round((value / max) * height);
      return `<rect x="${i * step + 4}" y="${height - h}" width="${step - 8}" height="${h}" fill="${colors[i % colors.length]}"><title>${labels[i]}: ${value}</title></rect>` +
        `<text x="${i * step + step / 2}" y="${height + 14}" text-anchor="middle" font-size="11">${labels[i]}</text>` +
        `<text x="${i * step + step / 2}" y="${height + 27}" text-anchor="middle" font-size="10" fill="#555">${value}</text>`;
    }).join("");
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
  function showDone(job) {
    const stats = job.stats;
    document.getElementById("done").hidden = false;
    const order = ["total_transactions", "high_risk", "medium_risk", "low_risk", "anomalies_detected", "rows_failed"];
    document.getElementById("stats").innerHTML = order
      .map((key) => `<tr><td>${key.replaceAll("_", " ")}</td><td>${stats[key]}</td></tr>`).join("");
    bars(document.getElementById("risk-chart"), ["high", "medium", "low"],
      [stats.high_risk, stats.medium_risk, stats.low_risk], ["#b3261e", "#e6a23c", "#3a9d5d"]);
    const histogram = stats.probability_histogram || [];
    bars(document.getElementById("histogram"), histogram.map((_, i) => `${i / 10}`), histogram, ["#2f7de1"]);
    document.getElementById("models").innerHTML = job.methods_used.models
      .map((m) => `<li>${m.name}: similarity ${m.similarity}, weight ${m.weight}</li>`).join("");
    document.getElementById("download").onclick = () => save(`/api/v1/jobs/${job.job_id}/result`, `${job.job_id}-predictions.csv`);
    if (job.errors_url) {
      const button = document.getElementById("download-errors");
      button.hidden = false;
      button.onclick = () => save(`/api/v1/jobs/${job.job_id}/errors`, `${job.job_id}-errors.csv`);
    }
  }
  function jobPage(jobId) {
    keepToken();
    const tick = async () => {
      try {
        const job = await api(`/api/v1/jobs/${jobId}`);
        document.getElementById("state").textContent = job.state;
        document.getElementById("stage").textContent = job.stage ? `(${job.stage})` : "";
        document.getElementById("progress").style.width = `${job.progress.percent}%`;
        const total = job.progress.rows_total ? ` of ${job.progress.rows_total}` : "";
        document.getElementById("rows").textContent = `${job.progress.rows_done}${total} rows (${job.progress.percent}%)`;
        if (job.state === "succeeded") return showDone(job);
        if (job.state === "failed" || job.state === "cancelled") {
          document.getElementById("error").textContent = job.error || job.state;
          return;
        }
      } catch (error) {
        document.getElementById("error").textContent = error.message;
      }
      setTimeout(tick, 700);
    };
    tick();
  }
  return { uploadPage, jobPage };
})();
