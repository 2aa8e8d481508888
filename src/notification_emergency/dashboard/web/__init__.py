"""The dashboard's web layer: one Flask blueprint per responsibility, wired by
:func:`notification_emergency.dashboard.app.create_app`.

- :mod:`.security`: who is asking and may they (sessions, passwords, Basic credentials, CSRF, audit);
  :mod:`.throttle` (the login throttle) and :mod:`.inputs` (request bodies and query parameters) serve it
  and the views;
- :mod:`.auth` (``/login``, ``/logout``), :mod:`.pages` (``/``, ``/healthz``), :mod:`.api` (the read-only
  JSON API), :mod:`.actions` (``/api/actions``: the controls), :mod:`.live` (``/api/stream``, ``/metrics``).
"""
