# One image for api, worker, flower and release; docker-compose.yml picks the command.
FROM python:3.11.14-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 API_HOST=0.0.0.0
WORKDIR /app
COPY requirements/ requirements/
RUN pip install --require-hashes -r requirements/production.txt
COPY . .
RUN pip install --no-deps --no-build-isolation -e . \
    && useradd --create-home fraudscore && mkdir -p /var/cache/fraudscore \
    && chown fraudscore /var/cache/fraudscore
USER fraudscore
EXPOSE 5000 5555
CMD ["gunicorn", "-c", "gunicorn.conf.py", "api.asgi:app"]
