// flask-bitmapist dashboard: the overview filter, the cohort form and the funnel's steps.
// Loaded from the blueprint's static folder; no inline script, no third party.
"use strict";

function setUpFilter(input) {
  const table = document.getElementById(input.dataset.filterTable);
  const empty = document.getElementById(input.dataset.filterTable + "-empty");
  if (!table) return;
  const rows = Array.from(table.tBodies[0].rows);
  const apply = () => {
    const needle = input.value.trim().toLowerCase();
    let shown = 0;
    for (const row of rows) {
      const match = row.dataset.event.toLowerCase().includes(needle);
      row.hidden = !match;
      if (match) shown += 1;
    }
    if (empty) empty.hidden = shown > 0;
  };
  input.addEventListener("input", apply);
  apply();
}

function cohortBody(form) {
  const data = new FormData(form);
  const names = data.getAll("additional_event");
  const operators = data.getAll("additional_op");
  return {
    primary_event: data.get("primary_event").trim(),
    secondary_event: data.get("secondary_event").trim(),
    additional_events: names
      .map((name, index) => ({ name: name.trim(), op: operators[index] }))
      .filter((item) => item.name !== ""),
    time_group: data.get("time_group"),
    num_rows: Number.parseInt(data.get("num_rows"), 10),
    num_cols: Number.parseInt(data.get("num_cols"), 10),
    as_percent: data.has("as_percent"),
    with_replacement: data.has("with_replacement"),
    cohort: data.get("cohort") || "recurring",
    retention: data.get("retention") || "on",
  };
}

function cohortQuery(form) {
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (typeof value === "string") query.append(name, value.trim());
  }
  return query;
}

function setUpCohortForm(form) {
  const rows = document.getElementById("additional-events");
  const template = document.getElementById("additional-template");
  const result = document.getElementById("cohort-result");
  const error = document.getElementById("cohort-error");
  const downloads = {
    csv: document.getElementById("download-csv"),
    json: document.getElementById("download-json"),
  };

  document.getElementById("add-additional").addEventListener("click", () => {
    const row = template.content.firstElementChild.cloneNode(true);
    rows.appendChild(row);
    row.querySelector("input").focus();
  });
  rows.addEventListener("click", (event) => {
    const button = event.target.closest("[data-remove-additional]");
    if (button) button.closest(".additional").remove();
  });

  // A stale heatmap beside an error would read as the answer to the new form.
  const showError = (message) => {
    error.textContent = message;
    error.hidden = false;
    result.replaceChildren();
    for (const link of Object.values(downloads)) link.hidden = true;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    result.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(form.dataset.api, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/html" },
        body: JSON.stringify(cohortBody(form)),
        credentials: "same-origin",
      });
      if (!response.ok) {
        const type = response.headers.get("Content-Type") || "";
        const problem = type.includes("json") ? await response.json() : null;
        showError(problem && problem.error ? problem.error : `The server answered ${response.status}.`);
        return;
      }
      // The fragment is rendered by the server, which escapes every event name.
      result.innerHTML = await response.text();
      const query = cohortQuery(form);
      history.replaceState(null, "", `${form.action}?${query}`);
      for (const [format, link] of Object.entries(downloads)) {
        query.set("format", format);
        link.href = `${form.action}?${query}`;
        link.hidden = false;
      }
    } catch (failure) {
      showError(`The cohort could not be loaded: ${failure.message}`);
    } finally {
      result.setAttribute("aria-busy", "false");
    }
  });
}

// The funnel form is a plain GET form; the script only adds and removes
// step inputs (at most data-max-steps of them).
function setUpStepList(steps) {
  const template = document.getElementById("step-template");
  const add = document.getElementById("add-step");
  const most = Number.parseInt(steps.dataset.maxSteps, 10);
  const update = () => {
    add.disabled = steps.children.length >= most;
  };
  add.addEventListener("click", () => {
    const row = template.content.firstElementChild.cloneNode(true);
    steps.appendChild(row);
    row.querySelector("input").focus();
    update();
  });
  steps.addEventListener("click", (event) => {
    const button = event.target.closest("[data-remove-step]");
    if (!button) return;
    button.closest(".step").remove();
    update();
    add.focus();
  });
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("[data-filter-table]")) setUpFilter(input);
  const form = document.getElementById("cohort-form");
  if (form) setUpCohortForm(form);
  const steps = document.getElementById("funnel-steps");
  if (steps) setUpStepList(steps);
});
