"""`make reliability`: crash, outage, load and fuzz drills against real processes —
PostgreSQL, Redis, gunicorn with 4 workers, a Celery worker and beat — written up in
docs/reliability.md. The drills are in scenarios.py (one function each), the processes
in stack.py, the HTTP clients in client.py; `python -m reliability` runs them."""
