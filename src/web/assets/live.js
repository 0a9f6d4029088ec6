// The live page: redraw the running task, its progress and the queue from the
// server-sent events of /api/live/events. Without JS the page shows the state when it
// was loaded. Only textContent is written: nothing from the server becomes markup.
"use strict";
(function () {
  var running = document.getElementById("running");
  if (!running || !window.EventSource) return;
  var progress = document.getElementById("progress");
  var queue = document.getElementById("queue");
  var next = document.querySelector("#next tbody");
  function size(b) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + " " + u[i];
  }
  function cell(tr, text) { var td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
  var es = new EventSource("/api/live/events");
  es.addEventListener("live", function (ev) {
    var l = JSON.parse(ev.data);
    running.textContent = l.running
      ? l.running.task + " (" + l.running.trigger + ", since " + l.running.started.replace("T", " ") + ")"
      : "nothing is running";
    var p = l.progress;
    progress.textContent = p
      ? p.job + ": " + p.percent + "% · " + size(p.bytes_done) + " of " + size(p.total_bytes) + " · " + p.files_done + " of " + p.total_files + " files"
      : "";
    queue.textContent = "";
    l.queue.forEach(function (q) { var li = document.createElement("li"); li.textContent = q; queue.appendChild(li); });
    if (next) {
      next.textContent = "";
      l.next.forEach(function (n) {
        var tr = document.createElement("tr");
        cell(tr, n.line); cell(tr, n.when); cell(tr, n.task); cell(tr, n.next ? n.next.replace("T", " ") : "never");
        next.appendChild(tr);
      });
    }
  });
})();
