/* Live notifications: connect with the token embedded in the page, acknowledge every notification and
   show it only when the server says this acknowledgement claimed it (the database is the arbiter). */
(function () {
  "use strict";
  var configElement = document.getElementById("notification-config");
  if (!configElement || typeof io !== "function") {
    return;
  }
  var config = JSON.parse(configElement.textContent);
  var list = document.getElementById("notifications");
  var empty = document.getElementById("no-notifications");
  var status = document.getElementById("connection-status");
  var shown = new Set();

  function setStatus(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function show(notification) {
    var item = document.createElement("li");
    item.className = "notification priority-" + notification.priority;
    item.dataset.id = String(notification.id);
    var title = document.createElement("strong");
    title.textContent = notification.title;
    item.appendChild(title);
    if (notification.message) {
      var message = document.createElement("span");
      message.className = "message";
      message.textContent = notification.message;
      item.appendChild(message);
    }
    if (notification.created_at) {
      var time = document.createElement("time");
      time.dateTime = notification.created_at;
      time.textContent = new Date(notification.created_at).toLocaleString();
      item.appendChild(time);
    }
    list.insertBefore(item, list.firstChild);
    if (empty) {
      empty.hidden = true;
    }
  }

  var socket = io(config.url + config.namespace, { auth: { token: config.token } });
  socket.on("connect", function () {
    setStatus("Connected: live notifications are on.");
  });
  socket.on("disconnect", function () {
    setStatus("Disconnected; reconnecting…");
  });
  socket.on("connect_error", function (error) {
    setStatus("Cannot connect to live notifications (" + error.message + "); reload the page to retry.");
  });
  socket.on("notification", function (notification) {
    if (!notification || shown.has(notification.id)) {
      return;
    }
    socket.timeout(10000).emit("ack", { id: notification.id }, function (error, answer) {
      if (error || !answer || answer.claimed !== true || shown.has(notification.id)) {
        return;
      }
      shown.add(notification.id);
      show(notification);
    });
  });
})();
