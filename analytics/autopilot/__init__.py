"""Autopilot: finding what to test on a site's pages, off the hot path.

``document`` parses a page once; ``candidates`` finds the elements worth testing on it (with
``selectors``, ``facts`` and ``structured`` for their anchors and the facts they may reuse);
``site_scan`` fetches the pages visitors view from the origin and scans them
(`refract autopilot scan`). docs/autopilot.md, "Page analysis", explains the choices.
"""
