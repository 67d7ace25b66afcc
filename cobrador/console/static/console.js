// Live transcript: polls for new messages and appends them as text (never HTML).
(function () {
  "use strict";
  var list = document.getElementById("transcript");
  if (!list) { return; }
  var escalation = list.getAttribute("data-escalation");
  var after = Number(list.getAttribute("data-after") || "0");
  function add(message) {
    var item = document.createElement("li");
    item.className = "msg " + message.css;
    item.setAttribute("data-id", String(message.id));
    var meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = message.who + " · " + message.at + (message.status ? " · " + message.status : "");
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    item.appendChild(meta);
    item.appendChild(text);
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
  }
  function poll() {
    fetch("/api/conversations/" + escalation + "/messages?after=" + after, {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : {messages: []}; })
      .then(function (data) {
        (data.messages || []).forEach(function (message) {
          if (message.id > after) { after = message.id; add(message); }
        });
        var status = document.getElementById("status");
        if (status && data.status) { status.textContent = data.status; }
      })
      .catch(function () {})
      .then(function () { window.setTimeout(poll, 2000); });
  }
  list.scrollTop = list.scrollHeight;
  window.setTimeout(poll, 2000);
})();
