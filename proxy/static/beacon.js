/* Refract beacon. Loaded async by every page Refract serves; it must never break one.
   Custom events queue in window.refract until the collector (the event pipeline) sends them. */
(function (w) {
  "use strict";
  var r = w.refract = w.refract || { q: [] };
  r.track = r.track || function (name, props) { r.q.push([String(name), props || {}, Date.now()]); };
})(window);
