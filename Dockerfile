# The marketerapi image: the web process (gunicorn) by default; docker-compose.yml runs the
# Celery worker and beat from the same image with another command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=marketerapi.settings

WORKDIR /app

# Dependencies first, so a code change does not reinstall them (psycopg[binary] brings libpq).
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Static files are collected at build time and served by WhiteNoise. The key below exists
# only for this build step; the container gets SECRET_KEY from the environment.
RUN DEBUG=0 SECRET_KEY=collectstatic-build-step-only-not-a-real-secret-0123456789 \
    python manage.py collectstatic --noinput --verbosity 0

RUN useradd --system --uid 10001 --home-dir /app marketerapi \
    && mkdir -p /app/var && chown marketerapi /app/var
USER marketerapi

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["python", "scripts/healthcheck.py"]
# A few sync workers (WEB_CONCURRENCY, about 2 per core); persistent database
# connections (CONN_MAX_AGE) make each worker's reads cheap.
CMD ["sh", "-c", "exec gunicorn marketerapi.wsgi:application --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-3} --access-logfile -"]
