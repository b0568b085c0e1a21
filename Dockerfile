# RestEngine API image: gunicorn serving restengine.wsgi:app on port 8000.
# Run it behind nginx (see docker-compose.yml); it has no TLS and no static files.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid, so orchestrators can check runAsNonRoot without a name lookup.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app restengine

WORKDIR /app

# Only what the package build needs, so code-only edits elsewhere keep this layer cached.
COPY pyproject.toml setup.cfg README.md ./
COPY src ./src
# gevent: RESTENGINE_WORKER_CLASS=gevent works without rebuilding.
# The sources go once installed: the app runs from site-packages, not from /app. What it
# reads at run time ships in the package: the gunicorn configuration is the module
# restengine.ops.gunicorn_conf, the nginx template restengine/ops/nginx.conf.template.
RUN pip install --no-cache-dir ".[gevent]" \
    && rm -rf src build

USER 10001:10001
EXPOSE 8000

# The packaged gunicorn configuration names the app (restengine.wsgi:app) and logs to stdout.
CMD ["gunicorn", "--config", "python:restengine.ops.gunicorn_conf", "--bind", "0.0.0.0:8000"]
