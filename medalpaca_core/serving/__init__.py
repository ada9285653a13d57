"""The studio over HTTP beside the page: the OpenAI-compatible ``/v1`` API and its schema, the
per-client rate limit and whom a request counts against (``clients``).

A caller of the studio; the page's own HTTP guards are in ``ui/http``.
"""
