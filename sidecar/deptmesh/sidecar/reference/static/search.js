// Narrows search.html's list of every entry to those matching the search box (or ?q=).
// The index comes from search-index.js, a script, so that it loads from file://.
(function () {
  "use strict";
  var index = window.DEPTMESH_SEARCH_INDEX || [];
  var input = document.getElementById("site-search");
  var list = document.getElementById("search-results");
  var status = document.getElementById("search-status");
  if (!input || !list || !status) {
    return;
  }

  function matches(entry, words) {
    var text = (entry.name + " " + entry.kind + " " + entry.summary).toLowerCase();
    return words.every(function (word) { return text.indexOf(word) !== -1; });
  }

  function item(entry) {
    var li = document.createElement("li");
    var link = document.createElement("a");
    var code = document.createElement("code");
    var kind = document.createElement("span");
    link.href = entry.url;
    code.textContent = entry.name;
    link.appendChild(code);
    kind.className = "kind";
    kind.textContent = entry.kind;
    li.appendChild(link);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(kind);
    if (entry.summary) {
      li.appendChild(document.createTextNode(": " + entry.summary));
    }
    return li;
  }

  function show(query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var found = index.filter(function (entry) { return matches(entry, words); });
    list.replaceChildren.apply(list, found.map(item));
    status.textContent = words.length === 0
      ? "Every method, message and enum of the contracts, by name."
      : found.length + " found for \u201c" + query + "\u201d.";
  }

  input.value = new URLSearchParams(window.location.search).get("q") || "";
  input.addEventListener("input", function () { show(input.value); });
  show(input.value);
})();
