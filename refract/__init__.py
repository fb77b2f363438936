"""Refract: a personalization and experimentation edge server for B2B websites.

The installed namespace of the repository's four packages. In the repository they stand at the
top level, as the architecture names them (``proxy/``, ``rules/``, ``analytics/``, ``admin/``);
the entries of this folder are links to them, so that every import says ``refract.proxy`` and
the installed names cannot collide with other distributions' ``rules`` or ``proxy``.
"""
