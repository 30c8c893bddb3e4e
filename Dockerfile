# One image for api, worker, flower and release; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements/ requirements/
RUN pip install -r requirements/api.txt -r requirements/worker.txt
COPY . .
RUN useradd --create-home fraudscore && mkdir -p /var/cache/fraudscore \
    && chown fraudscore /var/cache/fraudscore
USER fraudscore
EXPOSE 5000 5555
CMD ["gunicorn", "api.wsgi:app", "--bind", "0.0.0.0:5000", "--worker-class", "gthread", "--workers", "2", "--threads", "8", "--timeout", "300"]
