// Northbeam demo site: mobile navigation and the pricing billing toggle. No dependencies.
(function () {
  "use strict";
  var toggle = document.querySelector(".nav-toggle");
  var nav = document.getElementById("site-nav");
  if (toggle && nav) {
    toggle.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
  var billing = document.querySelector(".billing-toggle");
  if (billing) {
    billing.addEventListener("click", function () {
      var monthly = billing.getAttribute("aria-pressed") !== "true";
      billing.setAttribute("aria-pressed", monthly ? "true" : "false");
      billing.textContent = monthly ? "Show annual prices" : "Show monthly prices";
      document.querySelectorAll(".price[data-annual]").forEach(function (price) {
        price.textContent = monthly ? price.dataset.monthly : price.dataset.annual;
      });
    });
  }
})();
