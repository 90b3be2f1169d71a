# syntax=docker/dockerfile:1
FROM python:3.13-slim-bookworm AS app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
# WeasyPrint's Pango; libharfbuzz-subset0 makes font subsetting 2-3x faster than fontTools.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN pybabel compile --domain django --directory locale \
 && DJANGO_ENV=production SECRET_KEY=build-only DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    CELERY_BROKER_URL=redis://build ALLOWED_HOSTS=build python manage.py collectstatic --noinput \
 && useradd --system --uid 1000 --home /app finanzapro && mkdir -p /app/var && chown -R finanzapro /app/var
USER finanzapro
EXPOSE 8000
CMD ["gunicorn", "finanzapro.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]

# The dev profile's mail catcher: the same image plus maildump.
FROM app AS mailcatcher
USER root
RUN uv sync --frozen --no-dev --group mailcatcher --no-install-project
USER finanzapro
