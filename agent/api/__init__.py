"""The handler runtime: the user's Handler, its model client and the HTTP server."""
