"""The search service (``pixseek serve``): the index over HTTP with FastAPI and uvicorn.

``backend`` (queries, pictures by id, facts: no HTTP), ``schemas`` (the JSON), ``body`` (a request
body, capped and in memory), ``app`` (routes, the Host and token guard, errors as JSON), ``run``
(start-up checks and uvicorn). It sits beside the page: it imports search and store, never the page.
"""
