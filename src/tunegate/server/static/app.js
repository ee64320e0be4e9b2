// tunegate analyst pages: progressive enhancement only; every form also works without JS.
"use strict";

function decrementCount() {
  const count = document.getElementById("queue-count");
  if (count) count.textContent = String(Math.max(0, Number(count.textContent) - 1));
}

async function submitDecision(event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("decide")) return;
  event.preventDefault();
  const card = form.closest("article.ticket");
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error("HTTP " + response.status);
    if (card) {
      card.classList.add("done");
      card.setAttribute("data-saved", "1");
      window.setTimeout(() => card.remove(), 250);
    }
    decrementCount();
  } catch (err) {
    buttons.forEach((b) => { b.disabled = false; });
    window.alert("Could not save: " + err.message + ". Reload the page and try again.");
  }
}

// Picking the model's own label in the override form turns it into a confirmation; show it.
function labelChanged(event) {
  const select = event.target;
  if (!(select instanceof HTMLSelectElement) || !select.classList.contains("sel-label")) return;
  const button = select.form && select.form.querySelector(".btn-override");
  const original = select.querySelector("option[selected]");
  if (button && original) {
    button.textContent = select.value === original.value ? "Confirm with reason" : "Override";
  }
}

document.addEventListener("submit", submitDecision);
document.addEventListener("change", labelChanged);
