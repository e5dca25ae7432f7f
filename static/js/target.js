// Live validation of the target form: the mix sums to 100%, funds are on the menu, custom fields only for "custom".
(function () {
  "use strict";
  var form = document.getElementById("target-form");
  if (!form) { return; }
  var menu = {
    stocks: (form.dataset.menuStocks || "").split(",").filter(Boolean),
    bonds: (form.dataset.menuBonds || "").split(",").filter(Boolean)
  };
  var custom = document.getElementById("custom-target");
  var total = document.getElementById("mix-total");

  function num(name) {
    var input = form.elements[name];
    var value = input ? parseFloat(input.value) : NaN;
    return isNaN(value) ? 0 : value;
  }

  function kind() {
    var checked = form.querySelector("input[name=kind]:checked");
    return checked ? checked.value : "thesis";
  }

  function checkMix() {
    var sum = num("stocks_pct") + num("bonds_pct") + num("cash_pct");
    var ok = Math.abs(sum - 100) < 0.05;
    total.textContent = ok ? "Total 100%." : "Stocks + bonds + cash must sum to 100% (now " + sum.toFixed(1) + "%).";
    total.className = ok ? "ok" : "error";
    return ok;
  }

  function checkFunds(name, sleeve, outputId) {
    var out = document.getElementById(outputId);
    var raw = (form.elements[name].value || "").trim();
    if (!raw) { out.textContent = ""; out.className = "field-live"; return true; }
    var problems = [];
    var sum = 0;
    raw.split(/[,;\n]+/).forEach(function (part) {
      part = part.trim();
      if (!part) { return; }
      var m = part.match(/^([A-Za-z0-9.\-^=]+)\s*[:=\s]\s*([0-9]+(?:\.[0-9]+)?)\s*%?$/);
      if (!m) { problems.push("'" + part + "': write a ticker and its percentage, e.g. VTI 80"); return; }
      var ticker = m[1].toUpperCase();
      if (menu[sleeve].indexOf(ticker) < 0) { problems.push(ticker + " is not a " + sleeve + " fund on the menu"); }
      sum += parseFloat(m[2]);
    });
    if (!problems.length && Math.abs(sum - 100) >= 0.05) { problems.push("shares must sum to 100% (now " + sum.toFixed(1) + "%)"); }
    out.textContent = problems.length ? problems.join("; ") + "." : "OK.";
    out.className = problems.length ? "field-live error" : "field-live ok";
    return !problems.length;
  }

  function update() {
    var isCustom = kind() === "custom";
    custom.hidden = !isCustom;
    custom.disabled = !isCustom;
    if (!isCustom) { return true; }
    var ok = checkMix();
    ok = checkFunds("stock_funds", "stocks", "stock-funds-live") && ok;
    ok = checkFunds("bond_funds", "bonds", "bond-funds-live") && ok;
    return ok;
  }

  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
})();
