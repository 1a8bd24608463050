// The conversation log: one TurnView per turn id (the user's words, the agent's answer, a
// status line, the latency waterfall), cloned from the page's #turn-template.

import { ui } from "./view.js";
import { drawWaterfall } from "./waterfall.js";

export class TurnView {
  constructor(turnId) {
    const node = ui.turnTemplate.content.firstElementChild.cloneNode(true);
    node.dataset.turnId = turnId;
    this.node = node;
    this.final = node.querySelector(".user .final");
    this.partial = node.querySelector(".user .partial");
    this.partial.setAttribute("aria-hidden", "true"); // partials change too often to announce
    this.agent = node.querySelector(".agent .text");
    this.status = node.querySelector(".turn-status");
    this.waterfall = node.querySelector(".waterfall");
    ui.turns.append(node);
    ui.empty.hidden = true;
  }

  get isEmpty() {
    return !this.final.textContent && !this.agent.textContent;
  }

  setPartial(text) {
    this.partial.textContent = text;
  }

  setFinal(text) {
    this.final.textContent = text;
    this.partial.textContent = "";
    this.node.classList.add("heard");
  }

  appendAgent(text) {
    this.agent.textContent += text;
    this.node.classList.add("answered");
  }

  setStatus(text, kind = "") {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
  }

  showLatency(latency) {
    drawWaterfall(this.waterfall, latency);
  }
}

export class Conversation {
  constructor() {
    this.turns = new Map();
  }

  turn(turnId) {
    let view = this.turns.get(turnId);
    if (!view) {
      view = new TurnView(turnId);
      this.turns.set(turnId, view);
    }
    return view;
  }

  // Drops a turn that never got any text (a final transcript that turned out empty).
  discardIfEmpty(turnId) {
    const view = this.turns.get(turnId);
    if (view && view.isEmpty) {
      view.node.remove();
      this.turns.delete(turnId);
      ui.empty.hidden = ui.turns.children.length > 0;
    }
  }

  scroll() {
    const last = ui.turns.lastElementChild;
    if (last) last.scrollIntoView({ block: "end", behavior: "smooth" });
  }
}
