// airec console: small progressive enhancements. Every page works without this script.
"use strict";

function fetchJSON(url) {
  return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then((response) => {
    const json = (response.headers.get("Content-Type") || "").includes("application/json");
    if (!response.ok || !json) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  });
}

// Try it: pick several items as removable chips (Enter or "Add"), each sent as an `items` field.
function itemPicker() {
  const form = document.getElementById("set-form");
  if (!form) return;
  const input = document.getElementById("item-input");
  const chosen = document.getElementById("chosen");
  const add = document.getElementById("add-item");
  add.hidden = false;

  function addChip(raw) {
    const name = raw.trim();
    if (!name) return;
    const known = Array.from(chosen.querySelectorAll("input")).some((field) => field.value === name);
    if (!known) {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = name;
      const field = document.createElement("input");
      Object.assign(field, { type: "hidden", name: "items", value: name });
      const remove = document.createElement("button");
      Object.assign(remove, { type: "button", className: "remove", textContent: "×" });
      remove.setAttribute("aria-label", `Remove ${name}`);
      item.append(label, field, remove);
      chosen.append(item);
    }
    input.value = "";
  }

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && input.value.trim()) {
      event.preventDefault();
      addChip(input.value);
    }
  });
  input.addEventListener("input", (event) => {
    if (event.inputType === "insertReplacementText") addChip(input.value); // picked from the list
  });
  add.addEventListener("click", () => {
    addChip(input.value);
    input.focus();
  });
  chosen.addEventListener("click", (event) => {
    const remove = event.target.closest("button.remove");
    if (!remove) return;
    remove.closest("li").remove();
    input.focus();
  });
}

// Autocomplete: refill the shared <datalist> with catalogue names matching what is typed.
function suggestions() {
  const datalist = document.getElementById("catalogue");
  const source = document.querySelector("[data-suggest-url]");
  if (!datalist || !source) return;
  const url = source.dataset.suggestUrl;
  let timer = null;
  let last = null;
  document.querySelectorAll('input[list="catalogue"]').forEach((input) => {
    input.addEventListener("input", (event) => {
      if (event.inputType === "insertReplacementText") return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        const query = input.value.trim();
        if (query === last) return;
        last = query;
        fetchJSON(`${url}?q=${encodeURIComponent(query)}`)
          .then((data) => {
            datalist.replaceChildren(...data.items.map((name) => Object.assign(document.createElement("option"), { value: name })));
          })
          .catch(() => {}); // suggestions are a convenience: typing the name still works
      }, 150);
    });
  });
}

// Training: while the shown run is in flight, refresh its panel (progress bar, curves) every second.
function runProgress() {
  const section = document.getElementById("run");
  if (!section || section.dataset.finished === "true") return;
  const panel = document.getElementById("run-panel");
  const status = document.getElementById("run-status");
  const poll = () => {
    fetchJSON(section.dataset.progressUrl)
      .then((data) => {
        panel.innerHTML = data.html; // rendered by the server from the same template as the page
        const text = `Run ${data.id}: ${data.status}`;
        if (status.textContent !== text) status.textContent = text;
        section.dataset.polls = String(Number(section.dataset.polls || 0) + 1);
        if (data.finished) section.dataset.finished = "true";
        else setTimeout(poll, 1000);
      })
      .catch(() => setTimeout(poll, 5000));
  };
  setTimeout(poll, 500);
}

document.addEventListener("DOMContentLoaded", () => {
  itemPicker();
  suggestions();
  runProgress();
});
