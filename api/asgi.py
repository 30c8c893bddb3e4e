"""ASGI entry point: `gunicorn -c gunicorn.conf.py api.asgi:app` (uvicorn workers).

The Flask app runs on a thread pool behind a2wsgi; uvicorn reads requests on its event loop,
so a client trickling its headers costs a socket, not one of the threads (a gthread worker
gave each such client a thread until the request was whole). Bodies still stream: the app
reads the upload from the event loop piece by piece.
"""

from a2wsgi import WSGIMiddleware

from api import create_app

THREADS = 16  # requests handled at once per worker process (as 8 threads x 2 gthread workers)

app = WSGIMiddleware(create_app(), workers=THREADS)  # type: ignore[arg-type]  # werkzeug vs a2wsgi typing
