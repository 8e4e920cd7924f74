// clawplane console: progressive enhancement. Every page works without this
// script; with it, forms inside <main> are sent with fetch and only <main> is
// replaced, and a <main data-poll="ms"> page re-reads itself every ms
// milliseconds (the stepper, the runtime cards, pending devices). The chat
// form streams its answer into the page instead (see chat() below). The
// "Open OpenClaw" page loads it too, to send its form.
(function () {
  "use strict";
  // The "Open OpenClaw" page: its form (the door's one-time pass) sends
  // itself; the page's policy allows no inline script, so it is done here.
  var door = document.querySelector("form[data-autosubmit]");
  if (door) { door.submit(); return; }

  var main = document.querySelector("main[data-live]");
  if (!main || !window.fetch || !window.DOMParser) return;
  document.documentElement.dataset.live = "on";

  var sending = false;   // a form is on its way
  var polling = null;    // the AbortController of a poll in flight
  var timer = null;

  // Whether the person is in the middle of typing into a field of <main>.
  function typing() {
    var a = document.activeElement;
    return !!a && main.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) &&
      a.type !== "hidden" && a.type !== "submit" && a.value !== "";
  }

  // What identifies the focused control across a swap.
  function focusKey() {
    var a = document.activeElement;
    if (!a || !main.contains(a)) return null;
    if (a.id) return "#" + CSS.escape(a.id);
    var form = a.closest("form");
    if (form && a.tagName === "BUTTON") {
      return 'form[action="' + CSS.escape(form.getAttribute("action")) + '"] button';
    }
    return null;
  }

  // Replaces <main> (and the title) with the same parts of another page.
  function swap(html, url) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var next = doc.querySelector("main");
    if (!next) return false;
    var key = focusKey();
    main.innerHTML = next.innerHTML;
    if (next.hasAttribute("data-poll")) main.setAttribute("data-poll", next.getAttribute("data-poll"));
    else main.removeAttribute("data-poll");
    if (doc.title) document.title = doc.title;
    // The sidebar marks the page landed on.
    var nav = document.querySelector("nav"), nextNav = doc.querySelector("nav");
    if (nav && nextNav) nav.innerHTML = nextNav.innerHTML;
    if (url) history.replaceState(null, "", withoutNotice(url));
    if (key) {
      var again = main.querySelector(key);
      if (again) again.focus();
    }
    schedule();
    return true;
  }

  // A notice belongs to the moment of its action, not to the address.
  function withoutNotice(url) {
    var u = new URL(url, location.href);
    u.searchParams.delete("notice");
    return u.pathname + u.search;
  }

  function signedOut(r) {
    return r.redirected && new URL(r.url).pathname === "/console/sign-in";
  }

  function setButtons(disabled) {
    Array.prototype.forEach.call(main.querySelectorAll("button"), function (b) { b.disabled = disabled; });
  }

  function schedule() {
    if (timer) clearTimeout(timer);
    timer = null;
    var every = parseInt(main.getAttribute("data-poll") || "", 10);
    if (every > 0) timer = setTimeout(poll, Math.max(every, 500));
  }

  function poll() {
    timer = null;
    if (sending || polling || document.hidden || typing()) return schedule();
    var mine = polling = new AbortController();
    fetch(withoutNotice(location.href), {
      credentials: "same-origin",
      headers: { "X-Console-Live": "1" },
      signal: mine.signal,
    })
      .then(function (r) {
        // Signed out meanwhile: go to the sign-in page.
        if (signedOut(r)) { location.assign(r.url); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (polling !== mine) return; // overtaken by a form
        polling = null;
        if (html === null || !swap(html)) schedule();
      })
      .catch(function () { if (polling === mine) { polling = null; schedule(); } });
  }

  main.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    if (form.hasAttribute("data-chat") && window.ReadableStream && window.TextDecoder) {
      event.preventDefault();
      chat(form);
      return;
    }
    event.preventDefault();
    if (sending) return; // one action at a time: the buttons say so
    sending = true;
    // A form wins over a poll: the poll's page would be older anyway.
    if (polling) { polling.abort(); polling = null; }
    if (timer) { clearTimeout(timer); timer = null; }
    var button = event.submitter || form.querySelector("button");
    var label = button ? button.textContent : "";
    setButtons(true);
    if (button) button.textContent = "Working…";
    main.setAttribute("aria-busy", "true");
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-Console-Live": "1" },
      body: new URLSearchParams(new FormData(form)),
    })
      .then(function (r) { return r.text().then(function (html) { return { r: r, html: html }; }); })
      .then(function (x) {
        sending = false;
        main.removeAttribute("aria-busy");
        if (signedOut(x.r)) { location.assign(x.r.url); return; }
        // After a redirect the address is the page landed on; a page
        // answered in place (a new token, an error) keeps the address.
        if (!swap(x.html, x.r.redirected ? x.r.url : null)) { location.assign(location.href); return; }
        var notice = main.querySelector("[role=status], [role=alert]");
        if (notice) { notice.setAttribute("tabindex", "-1"); notice.focus(); }
      })
      .catch(function () {
        sending = false;
        main.removeAttribute("aria-busy");
        setButtons(false);
        if (button) button.textContent = label;
        // Not sent again by itself: the action may have happened.
        var p = document.createElement("p");
        p.className = "problem";
        p.setAttribute("role", "alert");
        p.textContent = "The console could not be reached, so the result is unknown. Check your connection, reload the page, and try again if nothing changed.";
        main.insertBefore(p, main.firstChild);
      });
  });

  // The chat page: the message is sent with `Accept: text/event-stream` and
  // the answer appended as it is written. The stream (see the server's
  // console/chat_sse.rs) has three events, each one `data:` line of JSON:
  // `delta` (text to append), `done`, and `error` ({message, href}).
  var chatting = false;

  function chatItem(log, kind, who, text) {
    var li = document.createElement("li");
    li.className = kind;
    var label = document.createElement("span");
    label.className = "who";
    label.textContent = who;
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    li.appendChild(label);
    li.appendChild(body);
    log.appendChild(li);
    return li;
  }

  function chat(form) {
    var box = form.querySelector("textarea");
    var log = main.querySelector("#chat-log");
    if (chatting || !box || !log || !box.value.trim()) return;
    chatting = true;
    var body = new URLSearchParams(new FormData(form));
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    var draft = box.value;
    chatItem(log, "you", "You", draft.trim());
    var agent = chatItem(log, "agent", "Agent", "");
    var answer = agent.querySelector(".text");
    agent.setAttribute("aria-busy", "true");
    box.value = "";
    var ended = false;

    function problem(message, href) {
      ended = true;
      // Nothing came back: the message goes back into the box to send again.
      if (!answer.textContent && !box.value) box.value = draft;
      var p = document.createElement("span");
      p.className = "problem";
      p.setAttribute("role", "alert");
      p.textContent = message + (href ? " " : "");
      if (href) {
        var a = document.createElement("a");
        a.href = href;
        a.textContent = "Open that page";
        p.appendChild(a);
        p.appendChild(document.createTextNode("."));
      }
      agent.appendChild(p);
    }

    // One event: its name and its data lines (joined by newlines).
    function handle(block) {
      var name = "message", data = null;
      block.split(/\r?\n/).forEach(function (line) {
        if (line.indexOf("event:") === 0) name = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) {
          var value = line.slice(5).replace(/^ /, "");
          data = data === null ? value : data + "\n" + value;
        }
      });
      if (data === null) return;
      var value;
      try { value = JSON.parse(data); } catch (e) { return; }
      if (name === "delta" && typeof value === "string") {
        answer.textContent += value;
        agent.scrollIntoView({ block: "nearest" });
      } else if (name === "done") {
        ended = true;
      } else if (name === "error") {
        problem(String(value.message || "Your agent could not answer."), value.href || null);
      }
    }

    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "text/event-stream", "X-Console-Live": "1" },
      body: body,
    })
      .then(function (r) {
        if (signedOut(r)) { location.assign(r.url); return; }
        if (!/^text\/event-stream/.test(r.headers.get("content-type") || "") || !r.body) {
          // A page (an error of the console): its sentence.
          return r.text().then(function (html) {
            var doc = new DOMParser().parseFromString(html, "text/html");
            var alert = doc.querySelector("main [role=alert]");
            problem(alert ? alert.textContent : "The message could not be sent. Reload the page and try again.", null);
          });
        }
        var reader = r.body.getReader(), decoder = new TextDecoder(), buffer = "";
        function pump() {
          return reader.read().then(function (step) {
            buffer += step.done ? decoder.decode() : decoder.decode(step.value, { stream: true });
            var at;
            while ((at = buffer.search(/\r?\n\r?\n/)) >= 0) {
              handle(buffer.slice(0, at));
              buffer = buffer.slice(buffer.slice(at).match(/^\r?\n\r?\n/)[0].length + at);
            }
            if (!step.done) return pump();
            if (buffer.trim()) handle(buffer);
            if (!ended) problem("The answer stopped before its end. Send the message again.", null);
          });
        }
        return pump();
      })
      .catch(function () {
        if (!ended) problem("The console could not be reached, so the answer is unknown. Check your connection and send the message again.", null);
      })
      .then(function () {
        chatting = false;
        agent.removeAttribute("aria-busy");
        if (button) button.disabled = false;
        box.focus();
      });
  }

  // Ctrl+Enter (or Cmd+Enter) in the chat box sends the message.
  main.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || !box.form || !box.form.hasAttribute("data-chat")) return;
    event.preventDefault();
    if (box.form.requestSubmit) box.form.requestSubmit();
  });

  schedule();
})();
