"""``aws-like-sdk demo``: a daemon, an instrumented two-service sample app, and its traces.

The app runs in this process and the daemon in a child process, so the daemon's own
SQLite and HTTP work is never traced by the app's instrumentation.
"""
